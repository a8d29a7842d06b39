# Fixtures for the board-file tests: where the shipped board files are.
import pathlib

import pytest

_ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def boards_dir():
    return str(_ROOT / "boards")
