# The RFID reader in the charger's loop: a card held at the simulated MFRC522 (register level,
# behind the same SPI interface as the board's) starts the session and, presented again after
# being taken away, stops it; a card nobody allowed starts nothing. Both interpreters.
from support.cards import CARD, CARD_ID, card_id
from support.rig import Rig
from hal.sim_mfrc522 import SimCard
from session import charger as ch


def _loop(rig, seconds, step_ms=50):
    for _ in range(seconds * 1000 // step_ms):
        rig.clock.advance(step_ms)
        rig.app.step()


def test_card_at_the_reader_starts_and_stops_a_session(charger_env):
    with Rig(charger_env) as rig:
        chip = rig.hw["rfid"]
        rig.ev.set_state("B")
        _loop(rig, 3)
        assert rig.charger.state != ch.AUTHORISED
        chip.card = SimCard(CARD)
        _loop(rig, 1)
        assert rig.app.last_card == (CARD_ID, None)      # its pseudonym, never its UID
        rig.ev.set_state("C")
        _loop(rig, 2)
        assert rig.charger.state == ch.CHARGING and rig.relay.contacts_closed()
        _loop(rig, 3)                           # held on the reader: not a second tap
        assert rig.charger.state == ch.CHARGING
        chip.card = None
        _loop(rig, 2)
        chip.card = SimCard(CARD)               # tapped again: the same card stops it
        _loop(rig, 2)
        assert not rig.relay.contacts_closed()
        assert rig.charger.state != ch.CHARGING


def test_unknown_card_at_the_reader_starts_nothing(charger_env):
    with Rig(charger_env) as rig:
        rig.ev.set_state("B")
        _loop(rig, 2)
        rig.hw["rfid"].card = SimCard("CAFEBABE")
        _loop(rig, 1)
        assert rig.app.last_card == (card_id("CAFEBABE"), "unknown-id")
        rig.ev.set_state("C")
        _loop(rig, 2)
        assert not rig.relay.contacts_closed()
