"""`chargeproof pseudonym` and host_tools/provision/pseudonym.py: the pseudonym the charger
records for a card (firmware/ledger/cards.py; the firmware agrees on both interpreters,
tests/firmware/ledger/test_cards.py), from a key file or a charger's secrets file."""
import hashlib
import hmac
import json

import pytest

from host_tools import cli
from host_tools.provision import pseudonym, secrets

KEY = "5a" * 32
PINNED = "A6D7DBB77F3545D973D684F3DF2356D7"       # tests/firmware/ledger/test_cards.py


def test_the_definition():
    mac = hmac.new(bytes.fromhex(KEY), b"cp-card/1\n04A2B3C4D5E6F7", hashlib.sha256).digest()
    assert pseudonym.pseudonym(KEY, "04A2B3C4D5E6F7") == mac[:16].hex().upper() == PINNED


def test_cli_prints_the_pseudonym_from_a_key_file_or_a_secrets_file(tmp_path, capsys):
    key_file = tmp_path / "operator-pseudonym.key"
    key_file.write_text(KEY + "\n")
    assert cli.main(["pseudonym", "--key-file", str(key_file), "--uid", "04:a2:b3:c4:d5:e6:f7"]) == 0
    assert capsys.readouterr().out == PINNED + "\n"
    sec = tmp_path / "cp-001.json"
    secrets.write(sec, secrets.build([], KEY))
    assert cli.main(["pseudonym", "--key-file", str(sec), "--uid", "04A2B3C4D5E6F7",
                     "--uid", "cafebabe"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["04A2B3C4D5E6F7 " + PINNED, "CAFEBABE " + pseudonym.pseudonym(KEY, "CAFEBABE")]


def test_cli_prints_the_cards_ocpp_id_tag(tmp_path, capsys):
    """OCPP 1.6's idTag (CiString20): the first 20 digits, what the bridge sends for the card."""
    key_file = tmp_path / "operator-pseudonym.key"
    key_file.write_text(KEY + "\n")
    assert cli.main(["pseudonym", "--ocpp", "--key-file", str(key_file), "--uid", "04A2B3C4D5E6F7"]) == 0
    assert capsys.readouterr().out == PINNED[:20] + "\n"
    assert pseudonym.ocpp_id_tag(PINNED) == "A6D7DBB77F3545D973D6"


@pytest.mark.parametrize("uid", ["", "XYZ", "04A2B", "04A2B3", "04A2B3C4D5E6F7" * 2])
def test_a_bad_uid_is_refused(tmp_path, capsys, uid):
    key_file = tmp_path / "k"
    key_file.write_text(KEY)
    assert cli.main(["pseudonym", "--key-file", str(key_file), "--uid", uid]) == 2
    assert "card UID" in capsys.readouterr().err


def test_a_bad_key_is_refused(tmp_path, capsys):
    for text in ("5a" * 31, "nothex", json.dumps({"ack_keys": {}, "pseudonym_key": None})):
        key_file = tmp_path / "k"
        key_file.write_text(text)
        assert cli.main(["pseudonym", "--key-file", str(key_file), "--uid", "CAFEBABE"]) == 2
        assert "pseudonym" in capsys.readouterr().err


def test_another_key_another_pseudonym():
    assert pseudonym.pseudonym("5b" * 32, "04A2B3C4D5E6F7") != PINNED
    assert pseudonym.allow_list(KEY, ["04a2b3c4d5e6f7", "CAFEBABE"])[0] == PINNED
