"""Deploy and provisioning over mpremote, against the MicroPython unix port as a virtual board
(socat pty, as DESIGN.md describes): the firmware lands on the board's filesystem and imports
from there, the key is made on the board and only its public half comes back."""
import json
import os
import shutil
import subprocess
import time

import pytest
from ecdsa import NIST256p, VerifyingKey

from host_tools.provision import deploy
from host_tools.devtools.mprun import MICROPYTHON, ROOT

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")


def _start_board(tmp_path, name="board", heap=None, micropython=MICROPYTHON):
    board_dir = tmp_path / name
    board_dir.mkdir()
    port = str(tmp_path / (name + "-port"))
    exe = micropython + (" -X heapsize=%d" % heap if heap else "")
    proc = subprocess.Popen(["socat", "pty,raw,echo=0,link=" + port,
                             "EXEC:%s -i,pty,raw,echo=0" % exe], cwd=str(board_dir))
    for _ in range(50):
        if os.path.exists(port):
            break
        time.sleep(0.1)
    return proc, {"port": port, "dir": board_dir}


@pytest.fixture
def virtual_board(tmp_path):
    proc, board = _start_board(tmp_path)
    yield board
    proc.terminate()
    proc.wait(5)


@pytest.fixture
def small_board(tmp_path):
    """A virtual board whose heap is an ESP32's without PSRAM (112 KB)."""
    proc, board = _start_board(tmp_path, "small", heap=112 * 1024)
    yield board
    proc.terminate()
    proc.wait(5)


def _config(tmp_path):
    cfg = tmp_path / "charger.json"
    cfg.write_text(json.dumps({"charger_id": "CP-BENCH-1", "meter_serial": "SDM-123",
                               "data_dir": "data"}))
    return cfg


DEVKITC = str(ROOT / "boards" / "esp32-devkitc-max485.json")


def test_deploy_then_provision(virtual_board, tmp_path):
    cfg = tmp_path / "charger.json"
    cfg.write_text(json.dumps({"charger_id": "CP-BENCH-1", "meter_serial": "SDM-123",
                               "data_dir": "data"}))
    assert deploy.main(["--port", virtual_board["port"], "--resume", "--mode", "mpy",
                        "--board", DEVKITC, "--config", str(cfg)]) == 0
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
    _provision_and_rotate_ack_keys(virtual_board, tmp_path, first)


_CHECK_ACK = """
import sys
sys.path.insert(0, 'lib')
from app import config
from uplink.acks import AckChecker
from uplink.outbox import BadAck
chk = AckChecker('CP-BENCH-1', config.load_secrets('secrets.json')['ack_keys'])
for raw in %r:
    try:
        print('ACK', chk.check('val-1', raw)[0])
    except BadAck as exc:
        print('ACK refused')
"""


_CARD_ID = """
import sys
sys.path.insert(0, 'lib')
from app import config
from ledger.cards import CardPseudonyms
print('CARD', CardPseudonyms(config.load_secrets('secrets.json')['pseudonym_key']).of(%r))
"""


def _provision_and_rotate_ack_keys(board, tmp_path, pubkey_hex):
    """Enrollment makes the ack key, provisioning puts it on the board, the board verifies the
    validator's acks with it; a rotation goes through current+next, then next alone."""
    from host_tools import cli
    from host_tools.provision import pseudonym, secrets
    from host_tools.validator.acks import AckKeys, make_ack
    from host_tools.validator.store import LedgerDB
    db, grant, sec = str(tmp_path / "v.sqlite"), tmp_path / "grant.json", tmp_path / "cp.secrets.json"
    assert cli.main(["enroll", "--db", db, "--charger", "CP-BENCH-1", "--pubkey", pubkey_hex,
                     "--id", "val-1", "--grant-out", str(grant)]) == 0
    assert oct(grant.stat().st_mode & 0o777) == "0o600"
    assert secrets.main(["add", "--secrets", str(sec), "--grant", str(grant)]) == 0
    deploy.main(["--port", board["port"], "--resume", "--secrets", str(sec)])

    def acks_by(kid):
        with LedgerDB(db) as ledger:
            keys = AckKeys(ledger)
            key = dict(keys.provisioning("val-1", "CP-BENCH-1")["ack_keys"])[kid]
        return make_ack("val-1", "CP-BENCH-1", "receipt", 7, b"r", kid, bytes.fromhex(key))

    def board_says(raws):
        out = deploy.mpremote(board["port"], ["exec", _CHECK_ACK % (raws,)], resume=True)
        return [line for line in out.splitlines() if line.startswith("ACK")]

    k1 = acks_by("k1")
    assert board_says([k1]) == ["ACK 7"]
    assert cli.main(["ack-key", "rotate", "--db", db, "--id", "val-1", "--charger", "CP-BENCH-1",
                     "--grant-out", str(grant)]) == 0
    k2 = acks_by("k2")
    assert board_says([k1, k2]) == ["ACK 7", "ACK refused"]      # not provisioned yet
    secrets.main(["add", "--secrets", str(sec), "--grant", str(grant)])
    deploy.main(["--port", board["port"], "--resume", "--secrets", str(sec)])
    assert board_says([k1, k2]) == ["ACK 7", "ACK 7"]            # during the rotation: both
    assert cli.main(["ack-key", "activate", "--db", db, "--id", "val-1", "--charger", "CP-BENCH-1",
                     "--grant-out", str(grant)]) == 0
    secrets.main(["add", "--secrets", str(sec), "--grant", str(grant)])
    deploy.main(["--port", board["port"], "--resume", "--secrets", str(sec)])
    assert board_says([k1, k2]) == ["ACK refused", "ACK 7"]      # the old key is retired
    assert json.loads((board["dir"] / "secrets.json").read_text())["ack_keys"] == {
        "val-1": {"k2": json.loads(grant.read_text())["ack_keys"]["k2"]}}
    # The operator's card pseudonym key, made and provisioned the same way: the board then
    # names a card exactly as `chargeproof pseudonym` does on the host.
    key_file = tmp_path / "operator-pseudonym.key"
    assert secrets.main(["pseudonym-key", "--out", str(key_file)]) == 0
    assert secrets.main(["set-pseudonym", "--secrets", str(sec), "--key-file", str(key_file)]) == 0
    deploy.main(["--port", board["port"], "--resume", "--secrets", str(sec)])
    out = deploy.mpremote(board["port"], ["exec", _CARD_ID % "04A2B3C4D5E6F7"], resume=True)
    on_board = [line.split()[1] for line in out.splitlines() if line.startswith("CARD ")]
    assert on_board == [pseudonym.pseudonym(key_file.read_text(), "04A2B3C4D5E6F7")]


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


def test_mode_that_cannot_fit_is_refused_with_its_figures(small_board, tmp_path, capsys):
    # 112 KB of heap: the bytecode of .mpy files in /lib does not fit beside the data.
    assert deploy.main(["--port", small_board["port"], "--resume", "--mode", "mpy",
                        "--board", DEVKITC, "--config", str(_config(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "deploy refused: mpy needs" in err and "KiB" in err and "PSRAM" in err, err
    assert not (small_board["dir"] / "lib").exists()
    assert not (small_board["dir"] / "main.py").exists()


def test_frozen_mode_needs_an_image_with_the_firmware(virtual_board, tmp_path, capsys):
    # The board file's own mode (frozen) on a stock MicroPython: refused, nothing written.
    assert deploy.main(["--port", virtual_board["port"], "--resume",
                        "--board", DEVKITC, "--config", str(_config(tmp_path))]) == 2
    assert "no frozen ChargeProof firmware" in capsys.readouterr().err
    assert not (virtual_board["dir"] / "board.json").exists()


def test_romfs_image_deploys_and_the_firmware_imports_from_it(virtual_board, tmp_path):
    assert deploy.main(["--port", virtual_board["port"], "--resume", "--mode", "romfs",
                        "--board", DEVKITC, "--config", str(_config(tmp_path))]) == 0
    on_board = virtual_board["dir"]
    assert not (on_board / "lib").exists()
    assert (on_board / "romfs.img").read_bytes()[:3] == b"\xd2\xcd\x31"    # ROMFS header
    main_py = (on_board / "main.py").read_text()
    assert "VfsRom" in main_py and main_py.endswith((ROOT / "firmware" / "main.py").read_text())
    key = deploy.public_key(virtual_board["port"], "data", resume=True)
    assert VerifyingKey.from_der(bytes.fromhex(key)).curve == NIST256p
    out = deploy.mpremote(virtual_board["port"], ["exec", "import session.charger as m; "
                          "print(m.__file__)"], resume=True)
    assert "/rom/session/charger.mpy" in out


def test_board_files_declare_a_mode_that_suits_them():
    from host_tools.paths import firmware_on_path
    firmware_on_path()
    from app.board import BoardError, load_board
    for path in sorted((ROOT / "boards").glob("*.json")):
        b = load_board(str(path))
        assert b.firmware in ("frozen", "romfs", "mpy")
        assert b.firmware != "mpy" or b.psram
    bad = json.loads((ROOT / "boards" / "esp32-devkitc-max485.json").read_text())
    bad["firmware"] = "mpy"                       # no PSRAM on this board
    with pytest.raises(BoardError, match="PSRAM"):
        load_board(bad, "boards/x.json")


def test_esp32_image_script_says_what_it_needs(tmp_path):
    env = dict(os.environ, MICROPY_DIR=str(tmp_path / "nowhere"))
    proc = subprocess.run(["bash", str(ROOT / "host_tools" / "devtools" / "esp32_image.sh")],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "MICROPY_DIR" in proc.stderr
    (tmp_path / "mp" / "ports" / "esp32").mkdir(parents=True)
    env = dict(env, MICROPY_DIR=str(tmp_path / "mp"), PATH="/usr/bin:/bin")
    proc = subprocess.run(["bash", str(ROOT / "host_tools" / "devtools" / "esp32_image.sh")],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "ESP-IDF" in proc.stderr


def test_esp32_image_builds_the_collector_as_the_virtual_esp32_does():
    """The board's image and the 32-bit unix build agree on the collector's mark stack (a
    collection's pause on the virtual ESP32 stands for the board's only if they do)."""
    import re
    from host_tools.devtools import mp32
    script = (ROOT / "host_tools" / "devtools" / "esp32_image.sh").read_text()
    assert re.findall(r'^GC_DEFINE="([^"]+)"', script, re.M) == mp32.GC_DEFINES
    assert any("-DMICROPY_ALLOC_GC_STACK_SIZE=" in f for f in mp32._MAKE_FLAGS)


def test_the_collectors_loop_hook_reaches_every_c_file_of_both_images():
    """gcsplit's slices need py/gc.c compiled with gcsplit_hook.h: the unix build gets it from
    the module's makefile (py.mk adds CFLAGS_USERMOD to every C file), the board's image from
    the module's cmake (an interface option of usermod reaches the whole firmware target), and
    esp32_image.sh refuses an image in which it did not reach the compiler."""
    gcsplit = ROOT / "firmware" / "cmod" / "gcsplit"
    assert (gcsplit / "gcsplit_hook.h").is_file()
    mk = (gcsplit / "micropython.mk").read_text()
    assert "CFLAGS_USERMOD += -include $(GCSPLIT_MOD_DIR)/gcsplit_hook.h" in mk
    cmake = (gcsplit / "micropython.cmake").read_text()
    assert ('target_compile_options(usermod_gcsplit INTERFACE '
            '"SHELL:-include ${CMAKE_CURRENT_LIST_DIR}/gcsplit_hook.h")') in cmake
    script = (ROOT / "host_tools" / "devtools" / "esp32_image.sh").read_text()
    assert 'grep -q "gcsplit_hook.h"' in script
