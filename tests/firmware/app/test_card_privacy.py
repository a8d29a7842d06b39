# Card privacy in the whole charger (ledger/cards.py, docs/security.md "Card privacy"), on both
# interpreters: a card is known by its keyed pseudonym from the moment the reader returns its
# UID; the UID is in no receipt, journal or flash file; allow-lists hold pseudonyms; without a
# pseudonym key cards are refused (free mode and remote starts still work); the pseudonym is
# the same after a reboot, so the card that started a session stops it.
import json
import os

from app import config
from app.board import load_board
from hal.sim_mfrc522 import SimCard
from session import charger as ch
from support.cards import CARD, CARD_ID, card_id
from support.fwtest import raises
from support.rig import BEGIN_WH, Rig


def _flash_bytes(root):
    """Every file under root (the charger's data directory), concatenated."""
    out = []
    for name in os.listdir(root):
        path = root + "/" + name
        if os.stat(path)[0] & 0x4000:           # a directory
            out.append(_flash_bytes(path))
        else:
            with open(path, "rb") as f:
                out.append(f.read())
    return b"".join(out)


def _loop(rig, seconds, step_ms=50):
    """The app's whole loop (the reader is polled there), as test_rfid_app.py runs it."""
    for _ in range(seconds * 1000 // step_ms):
        rig.clock.advance(step_ms)
        rig.app.step()


def _uid_forms(uid):
    from binascii import unhexlify
    return (uid.upper().encode(), uid.lower().encode(), unhexlify(uid))


def test_a_card_session_records_its_pseudonym_never_its_uid(charger_env):
    with Rig(charger_env) as rig:
        rig.ev.set_state("B")
        rig.run(2)
        rig.hw["rfid"].card = SimCard(CARD)                 # at the simulated MFRC522
        _loop(rig, 1)
        assert rig.app.last_card == (CARD_ID, None)
        assert rig.charger.session["id"] == CARD_ID
        rig.ev.set_state("C")
        rig.run(1)
        rig.run(600, step_ms=5000, power_w=11000)
        flash_mid = _flash_bytes(charger_env["data"])       # the running session's journal
        rig.hw["rfid"].card = None
        _loop(rig, 1)
        rig.unplug()
        r = rig.receipts()[0]
        assert r["energy_wh"] == rig.meter_wh - BEGIN_WH > 0
        assert '"IS":true' in r["ocmf"] and '"IT":"LOCAL"' in r["ocmf"]
        assert '"ID":"%s"' % CARD_ID in r["ocmf"]
        status = json.dumps(rig.charger.status()).encode() + rig.app.health()
        everything = flash_mid + _flash_bytes(charger_env["data"]) + status
        assert CARD_ID.encode() in everything               # the search finds what is there
        for form in _uid_forms(CARD):
            assert form not in everything, form


def test_unknown_card_is_refused_by_its_pseudonym(charger_env):
    with Rig(charger_env) as rig:
        rig.ev.set_state("B")
        rig.run(2)
        assert rig.app.present_card("CAFEBABE") == "unknown-id"
        assert rig.app.last_card == (card_id("CAFEBABE"), "unknown-id")
        # The card's UID on the allow-list does not let it in: the list holds pseudonyms.
        rig.charger.auth.allow_list.add("CAFEBABE")
        assert rig.app.present_card("CAFEBABE") == "unknown-id"
        assert rig.charger.session is None


def test_another_operator_key_makes_another_card_unknown(charger_env):
    with Rig(charger_env, pseudonym_key="77" * 32) as rig:
        rig.ev.set_state("B")
        rig.run(2)
        assert rig.app.present_card(CARD) == "unknown-id"   # CARD_ID is CARD under CARD_KEY


def test_without_a_pseudonym_key_cards_are_refused_free_and_remote_still_work(charger_env):
    with Rig(charger_env, pseudonym_key=None) as rig:
        rig.ev.set_state("B")
        rig.run(2)
        assert rig.app.present_card(CARD) == "no-pseudonym-key"
        assert rig.app.last_card == (None, "no-pseudonym-key")
        assert rig.app.present_card(CARD) == "no-pseudonym-key"
        assert rig.charger.session is None and rig.charger.state == ch.CONNECTED
        faults = [f for f in rig.app.faults.records() if f["detail"] == "no-pseudonym-key"]
        assert len(faults) == 1 and faults[0]["code"] == "refused"      # once per boot
        rig.charger.authorise("APP-USER-1", remote=True)
        assert rig.charger.state == ch.AUTHORISED
        rig.ev.set_state("C")
        rig.run(1)
        rig.run(60, step_ms=5000, power_w=7400)
        rig.unplug()
        assert '"IT":"CENTRAL","ID":"APP-USER-1"' in rig.receipts()[0]["ocmf"]
        for form in _uid_forms(CARD):
            assert form not in _flash_bytes(charger_env["data"])
    env = dict(charger_env)
    env["data"] = charger_env["data"] + "-free"
    with Rig(env, pseudonym_key=None, auth_mode="free") as rig:
        rig.ev.set_state("B")
        rig.run(3)
        assert rig.charger.state == ch.AUTHORISED        # plugging in is the authorisation


def test_the_pseudonym_survives_a_reboot(charger_env):
    rig = Rig(charger_env)
    rig.plug_and_charge(seconds=600)
    rig.close()
    # Power cut mid-session: the same card, read by the rebooted charger, still stops it.
    with Rig(charger_env, meter_wh=None, ev=rig.ev, clock=rig.clock) as rig2:
        rig2.meter_wh = rig.meter_wh
        rig2.run(6)
        assert rig2.charger.state == ch.CHARGING
        assert rig2.charger.session["id"] == CARD_ID
        assert rig2.app.present_card(CARD) is None           # the card again: stop
        rig2.run(3)
        assert rig2.charger.state == ch.STOPPED
        assert rig2.app.last_card == (CARD_ID, None)
        rig2.unplug()
        assert '"ID":"%s"' % CARD_ID in rig2.receipts()[0]["ocmf"]


def test_allow_list_of_uids_or_a_bad_key_is_refused_without_quoting_it(charger_env):
    board = load_board(charger_env["board"])
    base = {"charger_id": "CP-TEST-1", "meter_serial": "SIM0001"}
    ok = dict(base, allow_list=[CARD_ID.lower()])
    assert config.load(board, None, ok)["allow_list"] == [CARD_ID]
    for entry in (CARD, CARD_ID[:-1], CARD_ID + "0", "Z" + CARD_ID[1:], 42):
        bad = dict(base, allow_list=[CARD_ID, entry])
        msg = str(raises(config.ConfigError, config.load, board, None, bad))
        assert "entry 1" in msg and CARD not in msg
    raises(config.ConfigError, config.load, board, None, dict(base, allow_list=CARD_ID))
    path = charger_env["data"] + "-bad-secrets.json"
    with open(path, "w") as f:
        f.write(json.dumps({"ack_keys": {}, "pseudonym_key": "5a" * 31}))
    msg = str(raises(config.ConfigError, Rig, charger_env, secrets_path=path))
    assert "pseudonym_key" in msg
