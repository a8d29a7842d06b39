"""A simulated charger fleet: each charger is the real firmware on the MicroPython unix port
(firmware/app/sim_main.py) with its own pymodbus meter on a pty, talking MQTT to a broker.

    dev = Device("CP-001", workdir, broker_host, broker_port, sessions=[...])
    dev.start()                 # meter simulator + MicroPython process; reads the public key
    validator.enroll(dev.charger_id, bytes.fromhex(dev.pubkey_hex))
    dev.provision(secrets.from_validators([validator], dev.charger_id))   # provision/secrets.py
    dev.go()                    # the scripted sessions run
    dev.wait()                  # until every receipt is acknowledged (or the drain timeout)
"""
import json
import os
import pathlib
import subprocess
import sys
import time

from host_tools.paths import DEFAULT_BOARD, MPY_BUILD as MPY, ROOT
# The ESP32's heap (192 KiB, see tests/conftest.py) plus room for the firmware's bytecode,
# which the board keeps frozen in flash and the unix port loads into the heap.
HEAPSIZE = (192 + 320) * 1024


def micropython():
    exe = pathlib.Path(sys.executable).parent / "micropython"
    return str(exe) if exe.exists() else "micropython"


def start_meter(model="SDM630", address=1, baud=115200):
    """A pymodbus meter simulator in its own process; returns (process, info dict)."""
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.sim.meter", "--model", model,
                             "--address", str(address), "--baud", str(baud)],
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("meter simulator did not start")
    return proc, json.loads(line)


def stop(proc, timeout=5):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Device:
    def __init__(self, charger_id, workdir, broker_host, broker_port, sessions,
                 start_time, start_wh=1000000, board=DEFAULT_BOARD, config=None, drain_s=60,
                 meter=None):
        self.charger_id = charger_id
        self.data_dir = str(pathlib.Path(workdir) / charger_id)
        self.broker = (broker_host, broker_port)
        self.sessions = sessions
        self.start_time = start_time
        self.start_wh = start_wh
        self.board = str(board)
        # Simulated time runs far faster than real time: telemetry every 30 s of charger time
        # (not the default 10 s) keeps the curves smooth without flooding the broker.
        self.config = dict({"telemetry_interval_s": 30}, **(config or {}))
        self.drain_s = drain_s
        self.meter_proc, self.meter = (None, meter) if meter else (None, None)
        self.proc = None
        self.pubkey_hex = None
        self.meter_wh = None          # the simulated meter's count when the device finished
        self.scenario_extra: dict = {}    # more scenario keys (app/sim_main.py: serve_until)
        self.lines = []

    def start(self):
        if self.meter is None:
            self.meter_proc, self.meter = start_meter()
        env = dict(os.environ, MICROPYPATH=os.pathsep.join([".frozen", str(MPY)]))
        self.proc = subprocess.Popen(
            [micropython(), "-X", "heapsize=%d" % HEAPSIZE, "-m", "app.sim_boot"],
            cwd=str(ROOT), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1)
        scenario = {"charger_id": self.charger_id, "data_dir": self.data_dir,
                    "board": self.board, "meter": self.meter,
                    "mqtt_host": self.broker[0], "mqtt_port": self.broker[1],
                    "config": self.config, "sessions": self.sessions,
                    "start_time": self.start_time, "start_wh": self.start_wh,
                    "drain_s": self.drain_s}
        scenario.update(self.scenario_extra)
        self.proc.stdin.write(json.dumps(scenario) + "\n")
        self.proc.stdin.flush()
        try:
            self.pubkey_hex = self.wait_for("PUBKEY ", timeout=60).split()[1]
        except Exception:
            self.close()                      # nothing of a device that did not boot stays
            raise
        return self

    def provision(self, secrets):
        """The charger's secrets file (host_tools/provision/secrets.py) before its first run."""
        self.proc.stdin.write("secrets %s\n" % json.dumps(secrets))
        self.proc.stdin.flush()

    def go(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def wait_for(self, prefix, timeout=120):
        """Read the device's output until a line starts with prefix; returns that line."""
        import select
        deadline = time.time() + timeout
        while time.time() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip())
            if line.startswith(prefix):
                return line.rstrip()
        raise RuntimeError("%s: no %r line:\n%s" % (self.charger_id, prefix, "\n".join(self.lines[-20:])))

    def wait(self, timeout=600):
        """Wait for the device to finish; returns the number of receipts still unacknowledged."""
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.extend(out.splitlines())
        pending = None
        for line in self.lines:
            if line.startswith("DRAINED "):
                pending, self.meter_wh = [int(x) for x in line.split()[1:3]]
        if self.proc.returncode != 0 or pending is None:
            raise RuntimeError("%s failed (exit %s):\n%s" % (
                self.charger_id, self.proc.returncode, "\n".join(self.lines[-30:])))
        return pending

    def kill(self):
        """Power cut: the process dies wherever it is."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        stop(self.meter_proc)
