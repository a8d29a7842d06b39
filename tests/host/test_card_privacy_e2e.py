"""End to end: a card's UID never leaves the charger (docs/security.md, "Card privacy").

The firmware on MicroPython (app.sim_main: the driver's card at the charger, present_card)
-> real Mosquitto -> a validator -> SQLite -> the proof server. Two sessions started by cards
on the allow-list and one card refused. Afterwards the UID of each card (upper- and lower-case
hex, and its raw bytes) is in nothing published on the broker (a client subscribed to `#`),
nothing in the validator's store (the SQLite files' bytes), nothing the proof server serves and
nothing on the charger's flash (journal, outbox, log, keys) or in its output; the card's
pseudonym, as `chargeproof pseudonym` computes it on the host, is in the receipts, and the
light client prints it as the card.
"""
import contextlib
import io
import json
import pathlib
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt

from host_tools.demo import CARDS, default_tariff
from host_tools.lightclient import check as lightclient
from host_tools.provision import secrets
from host_tools.provision.pseudonym import pseudonym
from host_tools.sim.broker import make_broker
from host_tools.sim.fleet import Device
from host_tools.validator.proofserver import make_server
from host_tools.validator.service import Validator
from host_tools.validator.store import LedgerDB

CID = "CP-PRIV-1"
ALLOWED = CARDS[:2]              # on the allow-list (by pseudonym); CARDS[2] is refused


class Everything:
    """A broker client that keeps every message on every topic (#)."""

    def __init__(self, broker):
        self.messages = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="eavesdropper")
        self.c.on_message = self._on
        self.c.on_connect = lambda c, *_: c.subscribe("#", 1)
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()

    def _on(self, client, userdata, msg):
        with self.lock:
            self.messages.append(msg.topic.encode() + b" " + msg.payload)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def _uid_forms(uid):
    return [uid.upper().encode(), uid.lower().encode(), bytes.fromhex(uid)]


def _files(root):
    return b"".join(p.read_bytes() for p in sorted(pathlib.Path(root).rglob("*")) if p.is_file())


def test_no_card_uid_is_published_stored_served_or_left_on_flash(tmp_path):
    key = secrets.new_pseudonym_key()
    ids = [pseudonym(key, uid) for uid in ALLOWED]
    broker = make_broker("mosquitto", workdir=str(tmp_path))
    broker.start()
    ledger = tmp_path / "ledger" / "val-a.sqlite"
    ledger.parent.mkdir()
    validator = Validator(str(ledger), "val-a", tariffs=[default_tariff()]).start(broker.host, broker.port)
    spy = Everything(broker)
    plan = [{"card": CARDS[0], "power_w": 11000, "minutes": 20, "idle_minutes": 0},
            {"card": CARDS[2], "power_w": 11000, "minutes": 5, "idle_minutes": 0},
            {"card": CARDS[1], "power_w": 7400, "minutes": 15, "idle_minutes": 5}]
    dev = Device(CID, tmp_path / "flash", broker.host, broker.port, plan,
                 start_time=int(time.time()) - 86400, drain_s=60,
                 config={"allow_list": ids, "meter_serial": "SIM-PRIV"})
    try:
        dev.start()
        validator.enroll(CID, bytes.fromhex(dev.pubkey_hex), origin="chargeproof.local/" + CID)
        dev.provision(secrets.from_validators([validator], CID, key))
        assert validator.subscribed.wait(10)
        dev.go()
        assert dev.wait(timeout=300) == 0
        time.sleep(0.5)                              # the last messages reach the eavesdropper
    finally:
        dev.close()
        validator.stop()
        spy.close()
        broker.stop()
    assert any(line.startswith("SESSION 2 refused unknown-id") for line in dev.lines)

    db = LedgerDB(str(ledger))
    rows = db.sessions(CID)
    assert [r["status"] for r in rows] == ["accepted", "accepted"]
    server = make_server(str(ledger))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served = []
    try:
        base = "http://127.0.0.1:%d" % server.server_port
        for path in ["/chargers", "/checkpoint/" + CID] + [
                "/proof/" + server.service.token_for(CID, seq=r["seq"]) for r in rows]:
            with urllib.request.urlopen(base + path, timeout=10) as resp:
                served.append(resp.read())
    finally:
        server.shutdown()
        server.server_close()

    # The light client names the card by its pseudonym: how the driver finds their bill.
    out = io.StringIO()
    bundle = tmp_path / "bill.json"
    bundle.write_bytes(served[2])
    with contextlib.redirect_stdout(out):
        assert lightclient.main(["--receipt", str(bundle), "--pubkey", dev.pubkey_hex]) == 0
    assert ", card %s:" % ids[0] in out.getvalue()
    assert '"IT":"LOCAL"' in json.loads(served[2])["receipt"].replace('\\"', '"')

    places = {"broker": b"\n".join(spy.messages), "validator store": _files(ledger.parent),
              "proof server": b"\n".join(served), "charger flash": _files(tmp_path / "flash"),
              "charger output": "\n".join(dev.lines).encode()}
    assert any(b"/receipt/" in m for m in spy.messages)          # the spy heard the receipts
    for where in ("broker", "validator store", "proof server", "charger flash"):
        assert ids[0].encode() in places[where], where            # the search finds what is there
    for uid in CARDS:
        for form in _uid_forms(uid):
            for where, blob in places.items():
                assert form not in blob, (uid, form, where)
