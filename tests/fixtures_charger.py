"""Fixture: what a simulated charger needs, as JSON data for both interpreters."""
import pathlib

import pytest

_ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def charger_env(meter_sim, tmp_path):
    """A pymodbus SDM630 on a pty, a fresh flash directory, and the DevKitC board file."""
    return {"meter": meter_sim, "data": str(tmp_path / "flash"),
            "board": str(_ROOT / "boards" / "esp32-devkitc-max485.json")}


@pytest.fixture(scope="session")
def app_commands():
    """Operator commands for the rig's charger, signed on the host with `cryptography`."""
    from host_tools import operator_cmd as op
    key = op.generate_key()
    cid, t0 = "CP-TEST-1", 1800000000

    def signed(n, cmd, args=None):
        return op.sign(key, cid, cmd, args, n=n, exp=t0 + 3600).decode()

    tariff = ('{"v":1,"currency":"EUR","utc_offset_min":0,"session_fee_minor":100,'
              '"bands":[{"start_min":0,"kwh_price_milli":50000}],'
              '"idle_min_price_milli":0,"idle_grace_min":0,"tax_bp":0}')
    return {"charger": cid, "t0": t0, "operator_spki": op.public_spki_hex(key), "msgs": {
        "start": signed(1, "start", {"id_tag": "APP-USER-7"}),
        "limit": signed(2, "current_limit", {"ma": 16000}),
        "bad_limit": signed(3, "current_limit", {"ma": 40000}),
        "stop": signed(4, "stop"),
        "tariff": signed(5, "tariff", {"tariff": tariff}),
        "reserve": signed(6, "reserve", {"id_tag": "04A2B3C4D5E6F7", "until": t0 + 7200}),
    }}
