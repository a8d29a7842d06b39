"""The OCPP 1.6J bridge against a central system built in this test with the same `ocpp`
library (its JSON schemas check every message both ways), a real Mosquitto, and real signed
receipts (host_tools.sim.charger: the firmware's ledger code). Whole sessions: remote start as
a signed command, StartTransaction from the charger's telemetry, meter values, StopTransaction
carrying the signed OCMF record in both encodings; the CSMS dropping mid-session; a resent or
forged receipt; a charging profile becoming a signed current limit."""
import base64
import json
import time

import paho.mqtt.client as mqtt
import pytest
from ocpp.v16 import call

from host_tools.operate.ocpp_bridge import OcppBridge, session_identity
from host_tools.paths import firmware_on_path
from host_tools.provision import operator_cmd as op
from host_tools.provision.pseudonym import ocpp_id_tag
from host_tools.sim.broker import MosquittoBroker, free_port
from host_tools.sim.charger import CARD_ID, SimCharger
from host_tools.sim.csms import CentralSystem

CID = "CP-OCPP-1"


class Charger:
    """The MQTT side of a charger: what the firmware publishes, and the commands it gets."""

    def __init__(self, port, tmp_path):
        self.sim = SimCharger(tmp_path / "charger", CID)
        self.cmds = []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=CID)
        self.c.on_message = lambda c, u, m: self.cmds.append(bytes(m.payload))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe("cp/%s/cmd" % CID, 1)[0]

    def pub(self, kind, payload, retain=False):
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        self.c.publish("cp/%s/%s" % (CID, kind), payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def _wait(cond, timeout=20):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("not reached")
        time.sleep(0.05)


@pytest.fixture
def rig(tmp_path):
    broker = MosquittoBroker(workdir=str(tmp_path)).start()
    csms = CentralSystem(free_port())
    charger = Charger(broker.port, tmp_path)
    key = op.generate_key()
    bridges = []

    def bridge(form="plain"):
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ocpp-bridge-%d" % len(bridges))
        b = OcppBridge("ws://127.0.0.1:%d/ocpp/" % csms.port,
                       {CID: {"pubkey": charger.sim.pubkey_der().hex(), "rated_a": 32,
                              "phases": 3}},
                       key, client, str(tmp_path / ("state-%d" % len(bridges))), signed_form=form)
        client.on_message = b.on_message
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        b.subscribe()
        b.start()
        bridges.append((b, client))
        return b
    yield {"csms": csms, "charger": charger, "key": key, "bridge": bridge, "tmp": tmp_path}
    for b, client in bridges:
        b.stop()
        client.loop_stop()
        client.disconnect()
    charger.close()
    csms.stop()
    broker.stop()


def _verify_command(raw, key, tmp_path, name):
    firmware_on_path()
    from uplink.commands import Verifier
    v = Verifier(str(tmp_path / ("counter-" + name)), op.public_spki_hex(key), CID, time.time,
                 cmd_key=op.command_key(key, CID).hex())       # the MAC screen too
    return v.verify(raw)


def _session(charger, begin_wh, energy_wh):
    """A session as the charger shows it: charging health, telemetry, then its receipt."""
    charger.pub("health", {"state": "charging", "fault": None})
    charger.pub("telemetry", {"w": 11000, "wh": 0, "price": 0, "reg": begin_wh})
    charger.pub("telemetry", {"w": 11000, "wh": energy_wh // 2, "price": 100,
                              "reg": begin_wh + energy_wh // 2})
    msgs = charger.sim.charge(energy_wh=energy_wh)
    return msgs[0]


def test_whole_session_through_the_bridge(rig):
    csms, charger = rig["csms"], rig["charger"]
    charger.pub("status", b"online", retain=True)
    charger.pub("health", {"state": "connected", "fault": None}, retain=True)
    rig["bridge"]("plain")
    boot = csms.wait("BootNotification")
    assert boot and boot[0][0] == CID
    _wait(lambda: any(c[2]["status"] == "Preparing" for c in csms.wait("StatusNotification")))

    res = csms.remote(CID, call.RemoteStartTransaction(id_tag="DRIVER-42", connector_id=1))
    assert res.status == "Accepted"
    _wait(lambda: charger.cmds)
    cmd = _verify_command(charger.cmds[0], rig["key"], rig["tmp"], "start")
    assert cmd.name == "start" and cmd.args == {"id_tag": "DRIVER-42"}

    begin_wh = charger.sim.meter_wh
    topic, record = _session(charger, begin_wh, 7400)
    start = csms.wait("StartTransaction")[0][2]
    assert start["meter_start"] == begin_wh and start["id_tag"] == "DRIVER-42"
    assert csms.wait("MeterValues")
    charger.pub(topic.split("/", 2)[2], record)
    stop = csms.wait("StopTransaction")[0][2]
    assert stop["meter_stop"] == begin_wh + 7400 and stop["transaction_id"] == csms.tx
    values = [sv for m in stop["transaction_data"] for sv in m["sampled_value"]]
    ocmf = json.loads(record.decode().rsplit("|", 1)[0])["ocmf"]
    assert [v["context"] for v in values] == ["Transaction.Begin", "Transaction.End"]
    assert all(v["format"] == "SignedData" and v["value"] == ocmf for v in values)
    # The charger resends until a validator acks: the same receipt stops nothing again.
    charger.pub(topic.split("/", 2)[2], record)
    # A forged copy (one byte of the record changed) ends no transaction either.
    forged = record.replace(b'"energy_wh":7400', b'"energy_wh":7401')
    charger.pub("receipt/99", forged)
    time.sleep(1.5)
    assert len(csms.wait("StopTransaction")) == 1
    assert csms.remote(CID, call.GetConfiguration(key=["MeterPublicKey[1]"])).configuration_key[0][
        "value"] == charger.sim.pubkey_der().hex()


def test_csms_outage_mid_session_loses_and_repeats_nothing(rig):
    csms, charger = rig["csms"], rig["charger"]
    charger.pub("status", b"online", retain=True)
    charger.pub("health", {"state": "idle", "fault": None}, retain=True)
    rig["bridge"]("json")
    csms.wait("BootNotification")
    topic, record = _session(charger, charger.sim.meter_wh, 3000)
    assert csms.wait("StartTransaction")
    csms.stop()                                       # the CSMS goes away mid-session
    charger.pub(topic.split("/", 2)[2], record)       # the session ends while it is away
    time.sleep(1.0)
    csms.start()
    assert len(csms.wait("BootNotification", count=2)) == 2      # the bridge came back
    stops = csms.wait("StopTransaction")
    assert len(stops) == 1
    time.sleep(1.5)
    assert len(csms.wait("StopTransaction")) == 1
    value = json.loads(stops[0][2]["transaction_data"][1]["sampled_value"][0]["value"])
    assert value["encodingMethod"] == "OCMF"
    assert base64.b64decode(value["signedMeterValue"]).decode().startswith("OCMF|")
    assert base64.b64decode(value["publicKey"]) == charger.sim.pubkey_der()


def test_charging_profile_and_availability_become_signed_limits(rig):
    csms, charger = rig["csms"], rig["charger"]
    charger.pub("status", b"online", retain=True)
    rig["bridge"]("plain")
    csms.wait("BootNotification")
    profile = {"chargingProfileId": 1, "stackLevel": 0,
               "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
               "chargingSchedule": {"chargingRateUnit": "W", "chargingSchedulePeriod": [
                   {"startPeriod": 0, "limit": 11040.0, "numberPhases": 3}]}}
    res = csms.remote(CID, call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile))
    assert res.status == "Accepted"
    _wait(lambda: charger.cmds)
    cmd = _verify_command(charger.cmds[-1], rig["key"], rig["tmp"], "limit")
    assert cmd.name == "current_limit" and cmd.args == {"ma": 16000}   # 11.04 kW / (3 x 230 V)
    res = csms.remote(CID, call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert res.status == "Accepted"
    _wait(lambda: len(charger.cmds) >= 2)
    assert json.loads(op.split(charger.cmds[-1])[1])["args"] == {"ma": 0}
    _wait(lambda: any(c[2]["status"] == "Unavailable" for c in csms.calls
                      if c[1] == "StatusNotification"))


def _bridge_then_csms_away(rig):
    """The charger online, the bridge booted at the CSMS, then the CSMS gone: the bridge."""
    rig["charger"].pub("status", b"online", retain=True)
    bridge = rig["bridge"]("plain")
    rig["csms"].wait("BootNotification")
    _csms_down(rig, bridge)
    return bridge


def _csms_down(rig, bridge):
    rig["csms"].stop()
    _wait(lambda: bridge.chargers[CID].cp is None)     # the bridge knows the CSMS is gone


def test_csms_unreachable_at_authorize_time_leaves_the_chargers_decision(rig):
    """LocalAuthorizeOffline: a card the charger's allow-list let in charges on while the CSMS
    is away; once it is back, Start and StopTransaction name the card by its idTag (the first
    20 digits of its pseudonym), and no Authorize is sent after the fact."""
    csms, charger = rig["csms"], rig["charger"]
    _bridge_then_csms_away(rig)
    begin_wh = charger.sim.meter_wh
    charger.pub("health", {"state": "charging", "fault": None})
    charger.pub("telemetry", {"w": 11000, "wh": 0, "price": 0, "reg": begin_wh,
                              "id": CARD_ID, "it": "LOCAL"})
    topic, record = charger.sim.charge(energy_wh=3000, stop_reason="ev-unplugged")[0]
    time.sleep(1.0)
    assert charger.cmds == []                         # nobody stopped it
    charger.pub(topic.split("/", 2)[2], record)
    csms.start()
    stop = csms.wait("StopTransaction")[0][2]
    start = csms.wait("StartTransaction")[0][2]
    assert start["id_tag"] == stop["id_tag"] == CARD_ID[:20]
    assert start["meter_start"] == begin_wh and stop["reason"] == "EVDisconnected"
    assert csms.wait("Authorize", timeout=0) == []
    assert charger.cmds == []


def test_a_card_refused_in_start_transactions_answer_is_stopped(rig):
    """StopTransactionOnInvalidId: the session began while the CSMS was away; its queued
    StartTransaction is answered Blocked once the CSMS is back, while the session still runs:
    the bridge sends a signed stop and the StopTransaction's reason is DeAuthorized."""
    csms, charger = rig["csms"], rig["charger"]
    csms.id_tag_status[CARD_ID[:20]] = "Blocked"
    _bridge_then_csms_away(rig)
    charger.pub("health", {"state": "charging", "fault": None})
    charger.pub("telemetry", {"w": 11000, "wh": 0, "price": 0, "reg": charger.sim.meter_wh,
                              "id": CARD_ID, "it": "LOCAL"})
    time.sleep(0.5)
    assert charger.cmds == []
    csms.start()
    _wait(lambda: charger.cmds)
    cmd = _verify_command(charger.cmds[0], rig["key"], rig["tmp"], "deauthorized")
    assert cmd.name == "stop" and cmd.args == {}
    topic, record = charger.sim.charge(energy_wh=500, stop_reason="remote")[0]
    charger.pub(topic.split("/", 2)[2], record)
    stop = csms.wait("StopTransaction")[0][2]
    assert stop["reason"] == "DeAuthorized" and stop["id_tag"] == CARD_ID[:20]
    assert stop["transaction_id"] == csms.tx
    assert csms.wait("Authorize", timeout=0) == []
    assert len(charger.cmds) == 1


def test_telemetry_ids_that_are_no_card_pseudonym_or_remote_id_are_ignored():
    assert session_identity({"id": CARD_ID, "it": "LOCAL"}) == (CARD_ID, "LOCAL")
    assert session_identity({"id": "DRIVER-42", "it": "CENTRAL"}) == ("DRIVER-42", "CENTRAL")
    for t in ({"id": "04A2B3C4D5E6F7", "it": "LOCAL"},          # a UID is never a pseudonym
              {"id": CARD_ID.lower(), "it": "LOCAL"}, {"id": CARD_ID, "it": "EMAID"},
              {"id": "x" * 65, "it": "CENTRAL"}, {"id": "a\nb", "it": "CENTRAL"},
              {"id": 42, "it": "CENTRAL"}, {"id": CARD_ID}, {}):
        assert session_identity(t) == (None, None), t
    assert ocpp_id_tag(CARD_ID) == CARD_ID[:20] and ocpp_id_tag("DRIVER-42") == "DRIVER-42"


def test_a_stop_owed_while_the_charger_is_offline_goes_out_when_it_is_back(rig):
    """The CSMS refuses the card while the charger's link is down (its last will says offline):
    the signed stop is owed, on disk, and published once the charger is online again."""
    csms, charger = rig["csms"], rig["charger"]
    csms.id_tag_status[CARD_ID[:20]] = "Expired"
    b = _bridge_then_csms_away(rig)
    charger.pub("telemetry", {"w": 11000, "wh": 0, "price": 0, "reg": charger.sim.meter_wh,
                              "id": CARD_ID, "it": "LOCAL"})
    charger.pub("status", b"offline", retain=True)
    _wait(lambda: not b.chargers[CID].online)
    csms.start()
    assert csms.wait("StartTransaction")
    _wait(lambda: b.chargers[CID].state.stop_owed)
    time.sleep(0.5)
    assert charger.cmds == []                          # nothing sent into the void
    charger.pub("status", b"online", retain=True)
    _wait(lambda: charger.cmds)
    assert _verify_command(charger.cmds[0], rig["key"], rig["tmp"], "owed").name == "stop"
    assert not b.chargers[CID].state.stop_owed
    topic, record = charger.sim.charge(energy_wh=400, stop_reason="remote")[0]
    charger.pub(topic.split("/", 2)[2], record)
    assert csms.wait("StopTransaction")[0][2]["reason"] == "DeAuthorized"


def test_a_start_transaction_refused_as_a_call_loses_neither_the_end_nor_the_link(rig):
    """A CSMS that answers StartTransaction with a CallError: the session's end is still
    reported (transactionId -1, as for a start the CSMS lost) and the bridge goes on with the
    next session instead of losing the charger's link."""
    csms, charger = rig["csms"], rig["charger"]
    csms.start_errors = 1
    charger.pub("status", b"online", retain=True)
    rig["bridge"]("plain")
    csms.wait("BootNotification")
    for n in range(2):
        charger.pub("telemetry", {"w": 11000, "wh": 0, "price": 0, "reg": charger.sim.meter_wh,
                                  "id": CARD_ID, "it": "LOCAL"})
        _wait(lambda n=n: len(csms.wait("StartTransaction", timeout=0)) > n)
        topic, record = charger.sim.charge(energy_wh=1000, stop_reason="ev-unplugged")[0]
        charger.pub(topic.split("/", 2)[2], record)
        _wait(lambda n=n: len(csms.wait("StopTransaction", timeout=0)) > n)
    stops = csms.wait("StopTransaction")
    assert [s[2]["transaction_id"] for s in stops] == [-1, csms.tx]
    assert charger.cmds == []
