"""`make demo`: a simulated charger fleet with independent validators, on embedded defaults.

Starts a locked-down MQTT broker (Mosquitto with TLS, logins and the deployment's ACL where
Mosquitto is installed, else the embedded amqtt with logins and the same ACL), two validators
with their own SQLite ledgers, and three chargers running the real firmware on the MicroPython
unix port, each with a pymodbus meter on a pty. Every charger runs its scripted sessions (plug,
card, charge, unplug); the validators verify and acknowledge every receipt and checkpoint. Then the verified ledger is
printed. The first validator's ledger stays at demo-out/ledger.sqlite.

    python -m host_tools.demo [--chargers 3] [--sessions 3] [--out demo-out]

It also writes demo-out/report.html (one self-contained page: sessions, curves, bills, both
validators' verdicts) and prints how to open the live dashboard and the driver's check.
"""
import argparse
import json
import os
import pathlib
import shutil
import sys
import time

from host_tools.devtools import build_mpy
from host_tools import mqtt_conn
from host_tools.firmware_rules import default_origin
from host_tools.provision.broker_conf import Roster
from host_tools.sim.broker import AmqttBroker, MosquittoBroker, find_mosquitto
from host_tools.provision import operator_cmd, pseudonym, secrets
from host_tools.sim.fleet import Device
from host_tools.validator.store import LedgerDB
from host_tools.validator.service import Validator, proof_bundle
from host_tools.verify import units

from host_tools.paths import DEMO_OUT as OUT, ROOT
CARDS = ["04A2B3C4D5E6F7", "04118822AABBCC", "04FE00DD11EE22"]   # the drivers' card UIDs


def card_provisioning(key_hex: str) -> list[str]:
    """The chargers' allow_list under the operator's pseudonym key: the pseudonyms of CARDS
    (docs/security.md, "Card privacy"); the key itself goes into each secrets file."""
    return pseudonym.allow_list(key_hex, CARDS)


def default_tariff():
    """The tariff the firmware uses until an operator sends one (firmware/app/config.py)."""
    from host_tools.paths import firmware_on_path
    firmware_on_path()
    from app.config import DEFAULTS
    return DEFAULTS["tariff"]


def scripted_sessions(n, k):
    """k sessions for charger n: different cards, powers, durations, idle times."""
    out = []
    for i in range(k):
        out.append({"card": CARDS[(n + i) % len(CARDS)],
                    "power_w": (7400, 11000, 3700, 22000)[(n + i) % 4],
                    "minutes": 20 + 15 * ((n * 7 + i * 3) % 5),
                    "idle_minutes": (0, 10, 45)[(n + i) % 3]})
    return out


def shown(path):
    """A path as the reader can type it: relative to the repository when inside it."""
    path = pathlib.Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def print_ledger(db_path, others):
    db = LedgerDB(str(db_path))
    rows = db.sessions()
    print()
    print("Verified ledger (%s)" % shown(db_path))
    print("%-8s %4s %-16s %-20s %10s %10s  %s" % (
        "charger", "seq", "id", "begin (UTC)", "kWh", "price", "status"))
    for r in rows:
        begin = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["begin_time"]))
        print("%-8s %4d %-16s %-20s %10s %14s  %s" % (
            r["charger_id"], r["seq"], (r.get("transaction_id") or "")[:16], begin,
            units.kwh_text(r["energy_wh"]), units.money_text(r["price_minor"], r["currency"]),
            r["status"] + (" (" + r["note"] + ")" if r.get("note") else "")))
    print()
    for t in db.totals():
        print("%-8s %d sessions, %s kWh, %s" % (
            t["charger_id"], t["sessions"], units.kwh_text(t["energy_wh"]),
            units.money_text(t["price_minor"], t["currency"])))
    mine = {(r["charger_id"], r["log_index"], r["leaf_hash"]) for r in rows}
    agree = True
    for path in others:
        theirs = {(r["charger_id"], r["log_index"], r["leaf_hash"]) for r in LedgerDB(str(path)).sessions()}
        agree = agree and theirs == mine
        print("validator %s agrees on every session: %s" % (path.name, "yes" if theirs == mine else "NO"))
    evidence = db.evidence()
    rejections = db.rejections()
    print("rejections: %d, evidence of misbehaviour: %d" % (len(rejections), len(evidence)))
    return rows, agree and not evidence and not rejections


def driver_check(db_path, dev):
    """What a driver does with one bill: fetch the receipt bundle, check it offline with the
    charger's public key; and what happens to a bill someone edited."""
    from host_tools.lightclient import check as lightclient
    db = LedgerDB(str(db_path))
    bundle = proof_bundle(db, dev.charger_id, seq=1)
    path = OUT / ("receipt-%s-1.json" % dev.charger_id)
    path.write_text(json.dumps(bundle, indent=1))
    print()
    print("driver's check of %s (light client, offline):" % shown(path))
    valid = lightclient.main(["--receipt", str(path), "--pubkey", dev.pubkey_hex]) == 0
    forged = dict(bundle)
    forged["receipt"] = bundle["receipt"].replace('"price":', '"price":1', 1)
    forged_path = OUT / ("receipt-%s-1-edited.json" % dev.charger_id)
    forged_path.write_text(json.dumps(forged, indent=1))
    print("the same bill with its price edited:")
    caught = lightclient.main(["--receipt", str(forged_path), "--pubkey", dev.pubkey_hex]) == 1
    return valid and caught


def start_ocpp_bridge(url, devices, spec, operator_key):
    """Each demo charger also appears to the CSMS at url as an OCPP 1.6J charge point. spec:
    the bridge's broker login (an operator's: it reads every charger and sends commands);
    operator_key: the key the chargers trust, so the CSMS's remote start and stop and its
    refusal of a card reach them as signed commands they accept."""
    from host_tools.operate.ocpp_bridge import OcppBridge
    client = mqtt_conn.client(spec, client_id="demo-ocpp-bridge")
    chargers = {d.charger_id: {"pubkey": d.pubkey_hex} for d in devices}
    bridge = OcppBridge(url, chargers, operator_key, client,
                        str(OUT / "ocpp-bridge"))
    client.on_message = bridge.on_message
    client.connect(spec.host, spec.port)
    client.loop_start()
    bridge.subscribe()
    bridge.client = client
    print("OCPP bridge: %d chargers connecting to %s<charger id>" % (len(chargers), url))
    return bridge.start()


def stop_ocpp_bridge(bridge):
    deadline = time.time() + 20            # let queued StopTransactions reach the CSMS
    while time.time() < deadline and any(ch.state.queue for ch in bridge.chargers.values()):
        time.sleep(0.2)
    bridge.stop()
    bridge.client.loop_stop()
    bridge.client.disconnect()
    return {"StopTransaction": sum(ch.stops_sent for ch in bridge.chargers.values()),
            "receipts_refused": bridge.receipts_refused}


def start_broker(chargers, validators, use_mosquitto=None):
    """A broker that lets each party do only its own job: (broker, spec without a login,
    roster with every login's password). Its files (password file, ACL, a demo CA) stay in
    demo-out/broker/."""
    roster = Roster(list(chargers), list(validators), ["operator", "ocpp-bridge"])
    roster.make_passwords()
    workdir = OUT / "broker"
    if use_mosquitto is None:
        use_mosquitto = find_mosquitto() is not None
    if use_mosquitto:
        from host_tools.provision import pki
        ca = pki.make_ca("ChargeProof demo CA")
        tls = pki.write_pem(ca, pki.make_server_cert(ca, "127.0.0.1", "localhost"), workdir / "pki")
        broker = MosquittoBroker(workdir=str(workdir), roster=roster, tls=tls).start()
        spec = mqtt_conn.BrokerSpec(broker.host, broker.port, cafile=tls["cafile"])
        print("broker: Mosquitto on %s:%d: TLS (demo CA), a login per party, ACL from "
              "deploy/mosquitto/" % (broker.host, broker.port))
    else:
        broker = AmqttBroker(roster=roster, workdir=str(workdir)).start()
        spec = mqtt_conn.BrokerSpec(broker.host, broker.port)
        print("broker: embedded amqtt on %s:%d: a login per party, ACL from deploy/mosquitto/ "
              "(no TLS; install Mosquitto for TLS and client ids bound to logins)"
              % (broker.host, broker.port))
    return broker, spec, roster

def write_report(ledgers):
    """demo-out/report.html, and how to see the same live."""
    from host_tools.web import bill, report
    db_arg = shown(ledgers[0])
    serve = ".venv/bin/chargeproof serve --db %s --peer %s" % (db_arg, shown(ledgers[1]))
    path = OUT / "report.html"
    path.write_text(report.build(ledgers, serve_cmd=serve), encoding="utf-8")
    bundle = json.loads((OUT / ("receipt-CP-001-1.json")).read_text())
    verify = (pathlib.Path(__file__).parent / "web" / "static" / "verify.html").resolve().as_uri()
    print()
    print("report (one file, no network): %s" % shown(path))
    print("live dashboard:  %s   then open http://127.0.0.1:8080/" % serve)
    print("driver's check in a browser:  %s#%s" % (verify, bill.fragment_for(bundle)[:48] + "..."))
    print("  (the whole link: open the report, or a session page of the dashboard, and follow "
          "'Check it in the browser')")
    (OUT / "verify-link.txt").write_text("%s#%s\n" % (verify, bill.fragment_for(bundle)))
    print("  or the link in %s" % shown(OUT / "verify-link.txt"))


def main(argv=None):
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chargers", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--ocpp", default=None, help="ws://HOST:PORT/path/: also run the fleet "
                    "through the OCPP 1.6J bridge to that central system")
    ap.add_argument("--amqtt", action="store_true", help="the embedded broker even where Mosquitto is installed")
    ap.add_argument("--out", default=str(OUT), help="output directory (default demo-out)")
    args = ap.parse_args(argv)
    OUT = pathlib.Path(args.out)

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    build_mpy.build()
    tariff = default_tariff()
    ids = ["CP-%03d" % (n + 1) for n in range(args.chargers)]
    broker, spec, roster = start_broker(ids, ("val-a", "val-b"), False if args.amqtt else None)
    login = lambda name: spec.with_login(name, roster.passwords[name])   # noqa: E731
    ledgers = [OUT / "ledger.sqlite", OUT / "ledger-b.sqlite"]
    validators = [Validator(str(path), vid, tariffs=[tariff], broker=login(vid)).start()
                  for path, vid in zip(ledgers, ("val-a", "val-b"))]
    devices = []
    bridge = bridge_stats = None
    drained = True
    start_time = int(time.time()) - 3 * 86400
    # The operator's card pseudonym key, made for this run: the drivers' cards are known to the
    # chargers, the ledgers and the bills only by their pseudonyms under it.
    card_key = secrets.new_pseudonym_key()
    key_path = OUT / "operator-pseudonym.key"
    with os.fdopen(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(card_key + "\n")
    allow = card_provisioning(card_key)
    # The operator's command key, made for this run: the chargers trust its public half and
    # hold their own MAC key derived from it (the OCPP bridge signs with it).
    operator_key = operator_cmd.generate_key()
    print("cards: %d, allowed by pseudonym (a driver's: chargeproof pseudonym --key-file %s "
          "--uid UID)" % (len(allow), shown(key_path)))
    try:
        for n in range(args.chargers):
            cid = ids[n]
            config = {"allow_list": allow, "meter_serial": "SIM-%05d" % (n + 1),
                      "operator_key": operator_cmd.public_spki_hex(operator_key)}
            config.update(mqtt_conn.charger_config(login(cid)))     # its login, the broker's CA
            dev = Device(cid, OUT / "flash", broker.host, broker.port,
                         scripted_sessions(n, args.sessions), start_time=start_time + n * 3600,
                         start_wh=1000000 * (n + 1), config=config)
            devices.append(dev.start())
            for v in validators:
                v.enroll(cid, bytes.fromhex(dev.pubkey_hex), origin=default_origin(cid))
            # Enrollment made an ack key per (validator, charger): onto the charger's flash.
            dev.provision(secrets.from_validators(validators, cid, card_key, operator_key))
            print("charger %s: key %s... enrolled with %d validators" % (
                cid, dev.pubkey_hex[-16:], len(validators)))
        for v in validators:
            if not v.subscribed.wait(10):
                raise RuntimeError("validator %s did not subscribe" % v.validator_id)
        if args.ocpp:
            bridge = start_ocpp_bridge(args.ocpp, devices, login("ocpp-bridge"), operator_key)
        for dev in devices:
            dev.go()
        for dev in devices:
            pending = dev.wait()
            drained = drained and pending == 0
            done = [line for line in dev.lines if line.startswith("SESSION")]
            print("charger %s: %d sessions, %d receipts unacknowledged" % (
                dev.charger_id, len(done), pending))
        time.sleep(0.5)
    finally:
        if bridge is not None:
            bridge_stats = stop_ocpp_bridge(bridge)
        for dev in devices:
            dev.close()
        for v in validators:
            v.stop()
        broker.stop()
    rows, consistent = print_ledger(ledgers[0], ledgers[1:])
    ok = (len(rows) == args.chargers * args.sessions and consistent and drained
          and all(r["status"] == "accepted" for r in rows))
    ok = driver_check(ledgers[0], devices[0]) and ok
    if bridge_stats is not None:
        print("OCPP bridge to %s: %s" % (args.ocpp, bridge_stats))
        ok = ok and bridge_stats["StopTransaction"] == args.chargers * args.sessions
    write_report(ledgers)
    print("demo %s" % ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
