"""Rules the firmware and the host tools must agree on, run through both sides: the charger id
syntax, the default checkpoint origin, the C2SP key id (the firmware's and the validators'
independent one), and the MQTT topic tree (firmware/uplink/topics.py against the validator's
host_tools/verify/formats.py)."""
import pytest

from host_tools import firmware_rules
from host_tools.paths import ROOT, firmware_on_path
from host_tools.operate.home_assistant import valid_charger_id as ha_valid
from host_tools.sim.charger import SimCharger
from host_tools.validator.store import LedgerDB, LedgerError, key_id_hex
from host_tools.verify import checkpoint as host_checkpoint
from host_tools.verify import formats

firmware_on_path()
from app import config  # noqa: E402  (firmware import root)
from app.board import load_board  # noqa: E402
from ledger import checkpoint as fw_checkpoint  # noqa: E402
from uplink.topics import KINDS, Topics, TopicError, check_id  # noqa: E402

VALID = ["CP-0001", "CP-TEST-1", "x" * 64, "a", "~!$%&'()*,-.:;<=>?@[]^_`{|}", "0"]
INVALID = ["", "x" * 65, "has space", "a/b", "a+b", "a#", "tab\there", "\u00e9t\u00e9", "nul\x00",
           "del\x7f", None, 7]


def _firmware_accepts(name):
    try:
        check_id(name)
        return True
    except TopicError:
        return False


def _config_accepts(name):
    board = load_board(str(ROOT / "boards" / "esp32-devkitc-max485.json"))
    try:
        config.load(board, None, {"charger_id": name, "meter_serial": "S1"})
        return True
    except config.ConfigError:
        return False


def _ledger_accepts(tmp_path, name, pub):
    db = LedgerDB(str(tmp_path / "ledger.db"))
    try:
        db.enroll(name, pub)
        return True
    except LedgerError:
        return False
    finally:
        db.close()


@pytest.mark.parametrize("name", VALID + INVALID)
def test_one_charger_id_rule_everywhere(tmp_path, name):
    want = name in VALID
    pub = SimCharger(tmp_path / "cp", "CP-1", seed=3).pubkey_der()
    assert _firmware_accepts(name) == want
    assert firmware_rules.valid_charger_id(name) == want
    assert _config_accepts(name) == want
    assert _ledger_accepts(tmp_path, name, pub) == want
    if isinstance(name, str):
        assert ha_valid(name) == want


def test_one_default_origin(tmp_path):
    board = load_board(str(ROOT / "boards" / "esp32-devkitc-max485.json"))
    cfg = config.load(board, None, {"charger_id": "CP-0042", "meter_serial": "S1"})
    sim = SimCharger(tmp_path / "cp", "CP-0042", seed=4)
    db = LedgerDB(str(tmp_path / "ledger.db"))
    try:
        db.enroll("CP-0042", sim.pubkey_der())
        stored = db.charger("CP-0042")["origin"]
    finally:
        db.close()
    assert cfg["log_origin"] == sim.origin == stored == firmware_rules.default_origin("CP-0042")
    assert stored == "chargeproof.local/CP-0042"


def test_key_id_firmware_and_independent_host_agree(tmp_path):
    for seed in (1, 2, 3):
        pub = SimCharger(tmp_path / ("cp%d" % seed), "CP-1", seed=seed).pubkey_der()
        fw = fw_checkpoint.key_id(pub)
        assert fw == host_checkpoint.key_id(pub) and key_id_hex(pub) == fw.hex()
        assert len(fw) == 4


def test_topic_tree_firmware_and_validator_agree():
    t = Topics("CP-0007")
    assert tuple(KINDS) == tuple(formats.KINDS)
    for tag, kind in enumerate(KINDS):
        topic = t.outbox(tag, 12).decode()
        assert formats.route(topic) == ("CP-0007", kind)
        assert formats.outbox_seq(topic) == 12
        filt = "cp/+/%s/+" % kind
        assert filt in formats.subscriptions()
    ack = formats.ack_topic("CP-0007", "val-1").encode()
    assert t.ack_validator(ack) == "val-1"
    assert t.ack_filter == b"cp/CP-0007/ack/+"
    assert formats.route(t.telemetry) is None and formats.route(t.status) is None
    # updates: the charger's four ota topics and the fleet manifest, as the update server sees them
    for leaf, topic in (("manifest", t.ota_manifest), ("req", t.ota_req), ("chunk", t.ota_chunk),
                        ("status", t.ota_status)):
        assert topic.decode() == formats.ota_topic("CP-0007", leaf)
        assert formats.ota_route(topic) == ("CP-0007", leaf)
        assert formats.route(topic) is None             # never mistaken for an outbox record
    assert t.ota_fleet.decode() == formats.OTA_FLEET_MANIFEST
    assert formats.ota_route(formats.OTA_FLEET_MANIFEST) is None


def test_published_tariff_topics_firmware_and_validator_agree():
    from uplink import tariff_inbox, topics as fw_topics
    assert fw_topics.TARIFF_PREFIX == formats.TARIFF_PREFIX
    assert fw_topics.TARIFF_FILTER == formats.TARIFF_FILTER
    assert fw_topics.TARIFF_MAX == formats.TARIFF_MAX
    assert Topics("CP-0007").tariff_filter.decode() == formats.TARIFF_FILTER
    assert formats.validator_subscriptions()[0] == formats.TARIFF_FILTER
    for tid in ("std-2027", "a", "x.y_z"):
        topic = tariff_inbox.tariff_topic(tid)
        assert topic == formats.tariff_topic(tid)
        assert tariff_inbox.tariff_id_of(topic) == formats.tariff_route(topic) == tid
        assert tariff_inbox.tariff_id_of(topic.encode()) == tid
        assert formats.route(topic) is None           # never mistaken for a charger's record
    for bad in ("tariff/", "tariff/a/b", "cp/tariff/a", "tariffs/a"):
        assert tariff_inbox.tariff_id_of(bad) is None and formats.tariff_route(bad) is None


def test_one_display_of_energy_and_money():
    from host_tools.verify import units
    assert units.kwh_text(1234567) == "1234.567" and units.kwh_text(5) == "0.005"
    assert units.kwh_text(-1500) == "-1.500"
    assert units.money_text(1234, "EUR") == "12.34 EUR" and units.money_text(-5, "EUR") == "-0.05 EUR"
    assert units.price_mismatch((100, 19, 119), (100, 19, 119)) is None
    assert units.price_mismatch((100, 19, 119), (100, 19, 120)) == (
        "receipt says net 100 + tax 19 = 119, tariff gives 100 + 19 = 120")


def test_the_link_reads_every_message_it_takes_whole():
    from app import update
    from uplink import commands, mqtt, topics as fw_topics
    chunk = update.CHUNK_HEAD_LEN + update.MAX_PROOF * 32 + update.MAX_CHUNK
    assert max(chunk, update.MAX_MANIFEST, commands.MAX_MESSAGE, fw_topics.TARIFF_MAX) <= mqtt.MAX_READ
