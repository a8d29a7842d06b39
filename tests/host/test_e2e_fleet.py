"""End to end: the firmware on MicroPython -> a real broker -> validators -> SQLite.

Many sessions on several chargers; the broker is stopped and restarted mid-run and a charger's
process is killed mid-session (a power cut) and booted again on the same flash. Afterwards
every session is billed exactly once, the billed energy equals what each meter counted, and
every validator holds the same, consistent log with no rejection or evidence.
"""
import time

import pytest

from host_tools.sim.broker import make_broker
from host_tools.demo import CARDS, card_provisioning, default_tariff
from host_tools.provision import secrets
from host_tools.sim.fleet import Device, start_meter, stop
from host_tools.validator.store import LedgerDB
from host_tools.verify import merkle
from host_tools.validator.service import Validator

CARD_KEY = secrets.new_pseudonym_key()     # the operator's card pseudonym key

START_WH = 2000000


def sessions(n, minutes):
    return [{"card": CARDS[(n + i) % 3], "power_w": 11000, "minutes": m, "idle_minutes": 5}
            for i, m in enumerate(minutes)]


def device(cid, tmp_path, broker, meter, sessions_, start_wh, start_time=None):
    return Device(cid, tmp_path / "flash", broker.host, broker.port, sessions_,
                  start_time=start_time or int(time.time()) - 3 * 86400, start_wh=start_wh,
                  meter=meter, drain_s=90,
                  # A record leaves the charger only when both validators hold it.
                  config={"allow_list": card_provisioning(CARD_KEY), "meter_serial": "SIM-" + cid,
                          "validators": ["val-a", "val-b"]})


# amqtt runs in its own process here, so stopping it is a crash no connected client can delay.
@pytest.mark.parametrize("broker_kind", ["amqtt-process", "mosquitto"])
def test_fleet_billed_exactly_once_through_broker_restart_and_power_cut(tmp_path, broker_kind):
    broker = make_broker(broker_kind, **({"workdir": str(tmp_path)} if broker_kind == "mosquitto" else {}))
    broker.start()
    tariff = default_tariff()
    validators = [Validator(str(tmp_path / ("ledger-%s.sqlite" % v)), v, tariffs=[tariff])
                  .start(broker.host, broker.port) for v in ("val-a", "val-b")]
    meters, devices = [], []
    try:
        for n in range(2):
            proc, info = start_meter()
            meters.append((proc, info))
            cid = "CP-E2E-%d" % n
            plan = sessions(n, [30, 45, 600, 30] if n == 0 else [30, 45, 20, 60])
            if n == 0:
                plan[2]["cut_after_min"] = 300   # the power cut lands in the middle of session 3
            dev = device(cid, tmp_path, broker, info, plan, START_WH).start()
            for v in validators:
                v.enroll(cid, bytes.fromhex(dev.pubkey_hex), origin="chargeproof.local/" + cid)
            dev.provision(secrets.from_validators(validators, cid, CARD_KEY))
            devices.append(dev)
        for v in validators:
            assert v.subscribed.wait(10)
        for dev in devices:
            dev.go()

        # The broker goes away while the chargers keep charging and recording.
        devices[0].wait_for("SESSION 1")
        broker.stop()
        devices[1].wait_for("SESSION 2")
        time.sleep(1)
        broker.start()

        # Power cut on charger 0 in the middle of a session, then it boots on the same flash
        # (the EV gone meanwhile) and runs two more sessions.
        devices[0].wait_for("CUT 3")
        devices[0].kill()
        rebooted = device(devices[0].charger_id, tmp_path, broker, meters[0][1],
                          sessions(0, [25, 35]), start_wh=None,
                          start_time=int(time.time()) - 86400).start()   # clock after the cut
        devices.append(rebooted)
        assert rebooted.pubkey_hex == devices[0].pubkey_hex      # the key survived on flash
        rebooted.go()
        assert rebooted.wait(timeout=300) == 0
        assert devices[1].wait(timeout=300) == 0
    finally:
        for dev in devices:
            dev.close()
        for v in validators:
            v.stop()
        broker.stop()
        for proc, _ in meters:
            stop(proc)

    # Every session billed exactly once, energy = the meter's own count, one history.
    ledgers = [LedgerDB(str(tmp_path / ("ledger-%s.sqlite" % v))) for v in ("val-a", "val-b")]
    for db in ledgers:
        # After the broker restart a charger may resend before a validator has subscribed
        # again: a later record arrives first and is parked until its predecessor comes, so
        # an honest fleet leaves no rejection, no evidence (not even a transient gap) and
        # nothing parked.
        assert db.rejections() == [] and db.evidence() == [] and db.parked() == []
    for n, (_, info) in enumerate(meters):
        cid = "CP-E2E-%d" % n
        rows = ledgers[0].sessions(cid)
        assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
        assert [r["log_index"] for r in rows] == list(range(len(rows)))
        assert all(r["status"] == "accepted" for r in rows)
        final_wh = (devices[2] if n == 0 else devices[1]).meter_wh
        assert sum(r["energy_wh"] for r in rows) == final_wh - START_WH
        for a, b in zip(rows, rows[1:]):
            assert b["begin_wh"] >= a["end_wh"]
        other = ledgers[1].sessions(cid)
        assert [(r["log_index"], r["leaf_hash"]) for r in other] == \
               [(r["log_index"], r["leaf_hash"]) for r in rows]
        # The last checkpoint covers the whole log and its root is the root of these leaves.
        cp = ledgers[0].latest_checkpoint(cid)
        assert cp["size"] == len(rows)
        tree = merkle.Tree()
        for r in rows:
            tree.append_hash(bytes(r["leaf_hash"]))
        assert cp["root"] == tree.root()
    # Charger 0: two sessions, the one cut by the power failure (closed at the next boot with
    # the meter's reading), two after the reboot. Charger 1: its four sessions.
    assert len(ledgers[0].sessions("CP-E2E-0")) == 5
    assert len(ledgers[0].sessions("CP-E2E-1")) == 4
