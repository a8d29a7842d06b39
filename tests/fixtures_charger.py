"""Fixture: what a simulated charger needs, as JSON data for both interpreters."""
import pathlib

import pytest

_ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def charger_env(meter_sim, tmp_path):
    """A pymodbus SDM630 on a pty, a fresh flash directory, and the DevKitC board file."""
    return {"meter": meter_sim, "data": str(tmp_path / "flash"),
            "board": str(_ROOT / "boards" / "esp32-devkitc-max485.json")}
