"""host_tools.provision.board_lint: the firmware's board check, run on the host at provisioning time."""
import json

from host_tools.provision import board_lint
from host_tools.paths import ROOT


def test_shipped_boards_pass(capsys):
    assert board_lint.main([]) == 0
    out = capsys.readouterr().out
    assert out.count("OK   ") == len(list((ROOT / "boards").glob("*.json")))


def test_a_bad_board_fails_naming_the_field(tmp_path, capsys):
    good = json.loads((ROOT / "boards" / "olimex-esp32-evb.json").read_text())
    good["contactor"]["relay"] = 35          # input-only on the ESP32
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(good))
    assert board_lint.main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert "BAD  %s: field 'contactor.relay': GPIO 35 is input-only" % bad in out
