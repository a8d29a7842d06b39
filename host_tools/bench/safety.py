"""Bench rows for the safety watch (docs/firmware.md, "Safety loop").

safety_gap_max_us_micropython  the largest gap, in microseconds on the MicroPython unix port
                               (the 32-bit build with the firmware frozen and 112 KB of heap),
                               between two polls of the pilot and contactor while the whole app
                               runs: sessions started by a signed remote command against the
                               pymodbus meter, current-limit and tariff commands, telemetry,
                               three signatures per receipt, log and outbox on flash, publish
                               and acks through amqtt. Garbage collections count. An ESP32 is
                               ~150-270x slower (DESIGN.md): 250 us here stands for ~50 ms there.
                               Gaps in which the process was switched out involuntarily
                               are left out (safety_gaps_preempted counts them); the VM's
                               steal time is invisible from inside, so on a loaded machine
                               this row is an upper bound dominated by the host.
safety_gap_max_wall_us_micropython  the same with every gap counted.
safety_gaps_over_250us         how many counted gaps exceeded 250 us.
safety_gap_p99_us_micropython / safety_gap_p999_us_micropython
                               the 99th / 99.9th percentile of the counted gaps (10 us buckets).
safety_gap_code_max_us_micropython  the largest counted gap less the host's oversleep in it (a
                               wait slice of 50 us that the kernel woke up late): the
                               firmware's own time between two polls.
safety_gaps_code_over_250us    how many of those exceeded 250 us.
safety_gap_idle_max_us_micropython / safety_gap_idle_sleep_max_us_micropython
                               the host's noise floor over as long a run: a loop of nothing but
                               polls (the same watch and meter), and one with a 50 us sleep
                               between them; their gaps over 250 us are the machine's.
safety_gc_pause_us_micropython the fastest of seven full collections of the app's heap at the
                               end of the run (the collector's own pause with the least host
                               noise: the floor of the gap that holds one).
safety_polls_per_session       polls made per session in that run (the hook density).
safety_gap_sign_us_micropython / safety_gap_verify_us_micropython
                               the signer's and verifier's largest gap between two hook calls,
                               noise-free (minimum per hook position over 7 runs; a gap holding
                               a collection is left out of its run: the collector is
                               measured apart, safety_gc_pause_us_micropython).
"""
import json
import os
import subprocess
import tempfile

import paho.mqtt.client as mqtt

from host_tools import paths
from host_tools.devtools import build_mpy, mp32, mprun
from host_tools.provision import operator_cmd as op
from host_tools.sim.broker import AmqttBroker
from host_tools.sim.fleet import DEFAULT_BOARD, start_meter, stop

CHARGER = "CP-BENCH"
T0 = 1800000000
SESSIONS = 3
TARIFF = ('{"v":1,"currency":"EUR","utc_offset_min":0,"session_fee_minor":100,'
          '"bands":[{"start_min":0,"kwh_price_milli":50000}],'
          '"idle_min_price_milli":0,"idle_grace_min":0,"tax_bp":0}')


ACK_KEY = bytes(range(32))          # the bench validator's ack key, provisioned below


def _validator(broker: AmqttBroker) -> mqtt.Client:
    """Acks every receipt and checkpoint as it arrives, authenticated (the outbox empties)."""
    from host_tools.validator.acks import make_ack
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="safety-validator")

    def on_message(client, userdata, msg):
        _, charger, kind, seq = msg.topic.split("/")
        body = make_ack("bench", charger, kind, int(seq), msg.payload, "k1", ACK_KEY)
        client.publish("cp/%s/ack/bench" % charger, body, qos=1)

    c.on_message = on_message
    c.connect(broker.host, broker.port)
    c.subscribe("cp/+/receipt/+", 1)
    c.subscribe("cp/+/checkpoint/+", 1)
    c.loop_start()
    return c


def _commands(key) -> dict:
    cmds = {}
    n = 0
    for i in range(SESSIONS):
        for name, args in (("start", {"id_tag": "APP-USER-%d" % i}),
                           ("limit", None), ("tariff", None)):
            n += 1
            if name == "limit":
                cmd, args = "current_limit", {"ma": 16000 - 1000 * i}
            elif name == "tariff":
                cmd, args = "tariff", {"tariff": TARIFF}
            else:
                cmd = "start"
            cmds["%s%d" % (name, i)] = op.sign(key, CHARGER, cmd, args, n=n,
                                               exp=T0 + 36000).decode()
    return cmds


def run_gap(interp: str = "32") -> dict:
    """interp "32": the frozen 32-bit build with an ESP32's 112 KB heap (bytecode in flash,
    so the collector walks only live data, as on the board); "64": the 64-bit port with the
    firmware's .mpy files loaded into the heap beside the suite's 192 KiB."""
    if interp == "32":
        _, frozen = mp32.build(log=lambda *a: None)
        exe, heap, path = str(frozen), mprun.HEAP_32, [".frozen"]
    else:
        build_mpy.build()
        exe, heap = paths.MICROPYTHON, mprun.DATA_HEAP + mprun.CODE_ROOM
        path = [".frozen", str(paths.MPY_BUILD), str(paths.MPLIB)]
    broker = AmqttBroker().start()
    meter_proc, meter = start_meter()
    val = _validator(broker)
    key = op.generate_key()
    try:
        # The flash on tmpfs when the host has one: an ESP32's littlefs write is CPU work in
        # the firmware's own thread; a host disk's journal waits are not (and vary with load).
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        with tempfile.TemporaryDirectory(dir=shm) as tmp:
            secrets = tmp + "/secrets.json"
            with open(secrets, "w") as f:
                json.dump({"ack_keys": {"bench": {"k1": ACK_KEY.hex()}}}, f)
            cfg = {"board": str(DEFAULT_BOARD), "meter_port": meter["port"], "secrets": secrets,
                   "baud": meter["baud"], "meter_control": meter["control"],
                   "data": tmp + "/flash", "host": broker.host, "port": broker.port, "t0": T0,
                   "operator_spki": op.public_spki_hex(key), "cmds": _commands(key),
                   "sessions": SESSIONS}
            env = dict(os.environ)
            env["MICROPYPATH"] = os.pathsep.join(path)
            cmd = [exe, "-X", "heapsize=%d" % heap, str(paths.MP_SIDE / "safety_bench.py")]
            proc = subprocess.run(cmd, input=json.dumps(cfg) + "\n", env=env,
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError("safety bench failed:\n%s\n%s" % (proc.stdout, proc.stderr))
            return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        val.loop_stop()
        val.disconnect()
        stop(meter_proc)
        broker.stop()


def run() -> dict:
    out = run_gap()
    if out["sessions"] != SESSIONS or out["pending"] != 0:
        raise RuntimeError("safety bench did not complete its sessions: %r" % (out,))
    sig = out["signer"]
    return {"safety_gap_max_us_micropython": out["max_gap_us"],
            "safety_gap_max_wall_us_micropython": out["max_gap_wall_us"],
            "safety_gaps_preempted": out["preempted_gaps"],
            "safety_gaps_over_250us": out["clean_gaps_over_250us"],
            "safety_gap_p99_us_micropython": out["p99_us"],
            "safety_gap_p999_us_micropython": out["p999_us"],
            "safety_gap_code_max_us_micropython": out["code_max_gap_us"],
            "safety_gaps_code_over_250us": out["code_gaps_over_250us"],
            "safety_gap_idle_max_us_micropython": out["idle_max_gap_us"],
            "safety_gaps_idle_over_250us": out["idle_clean_gaps_over_250us"],
            "safety_gap_idle_sleep_max_us_micropython": out["idle_sleep_max_gap_us"],
            "safety_gc_pause_us_micropython": out["gc_pause_min_us"],
            "safety_polls_per_session": out["polls"] // SESSIONS,
            "safety_gap_sign_us_micropython": sig["sign_gap_us"],
            "safety_gap_verify_us_micropython": sig["verify_gap_us"]}


if __name__ == "__main__":
    import sys
    # The whole measurement, with the long gaps filed by phase ("start > end" of the gap:
    # loop phase / innermost labelled call, "+gc" when a collection ran inside).
    print(json.dumps(run_gap(sys.argv[1] if len(sys.argv) > 1 else "32"), indent=2))
