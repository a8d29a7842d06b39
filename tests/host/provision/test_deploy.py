"""Deploy and provisioning over mpremote, against the MicroPython unix port as a virtual board
(socat pty, as DESIGN.md describes): the firmware lands on the board's filesystem and imports
from there, the key is made on the board and only its public half comes back."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from ecdsa import NIST256p, VerifyingKey

from host_tools.provision import deploy
from host_tools.devtools.mprun import MICROPYTHON, ROOT

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")


@pytest.fixture
def virtual_board(tmp_path):
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    port = str(tmp_path / "port")
    proc = subprocess.Popen(["socat", "pty,raw,echo=0,link=" + port,
                             "EXEC:%s -i,pty,raw,echo=0" % MICROPYTHON], cwd=str(board_dir))
    for _ in range(50):
        if os.path.exists(port):
            break
        time.sleep(0.1)
    yield {"port": port, "dir": board_dir}
    proc.terminate()
    proc.wait(5)


def test_deploy_then_provision(virtual_board, tmp_path):
    cfg = tmp_path / "charger.json"
    cfg.write_text(json.dumps({"charger_id": "CP-BENCH-1", "meter_serial": "SDM-123",
                               "data_dir": "data"}))
    deploy.main(["--port", virtual_board["port"], "--resume",
                 "--board", str(ROOT / "boards" / "esp32-devkitc-max485.json"),
                 "--config", str(cfg)])
    on_board = virtual_board["dir"]
    assert (on_board / "lib" / "session" / "charger.mpy").exists()
    assert json.loads((on_board / "config.json").read_text())["charger_id"] == "CP-BENCH-1"
    assert (on_board / "main.py").read_text() == (ROOT / "firmware" / "main.py").read_text()

    first = deploy.public_key(virtual_board["port"], "data", resume=True)
    again = deploy.public_key(virtual_board["port"], "data", resume=True)
    assert first == again                       # made once on the board, then kept
    key = VerifyingKey.from_der(bytes.fromhex(first))
    assert key.curve == NIST256p
    # The board imported the deployed .mpy files, not the source tree.
    out = deploy.mpremote(virtual_board["port"], ["exec", "import sys; sys.path.insert(0, 'lib');"
                          "import session.charger as m; print(m.__file__)"], resume=True)
    assert "lib/session/charger.mpy" in out


def test_bad_board_file_is_refused_before_anything_is_written(virtual_board, tmp_path):
    bad = json.loads((ROOT / "boards" / "esp32-devkitc-max485.json").read_text())
    bad["contactor"]["relay"] = 34                # input-only GPIO cannot drive a relay
    board = tmp_path / "esp32-devkitc-max485.json"
    board.write_text(json.dumps(bad))
    cfg = tmp_path / "charger.json"
    cfg.write_text(json.dumps({"charger_id": "CP-X", "meter_serial": "S"}))
    with pytest.raises(Exception) as err:
        deploy.main(["--port", virtual_board["port"], "--resume", "--board", str(board),
                     "--config", str(cfg)])
    assert "contactor.relay" in str(err.value)
    assert not (virtual_board["dir"] / "lib").exists()
