"""The 32-bit builds' cputime module (host_tools/devtools/mp32_cmod/), the safety bench's
thread CPU clock: it must count this thread's CPU time, not wall time, in microseconds that
wrap like ticks_us, without allocating; and only the bench may use it, never the firmware."""
import ast
import json
import subprocess

import pytest

from host_tools.paths import FIRMWARE, MICROPYTHON_32, MICROPYTHON_32_FROZEN

# Runs inside MicroPython; prints one JSON line.
_PROBE = """
import gc, json, time
from cputime import thread_us
from time import ticks_diff, ticks_us

def schedstat_us():
    with open("/proc/self/schedstat") as f:     # sum_exec_runtime, ns (updated lazily)
        return int(f.read().split()[0]) // 1000

out = {"first": thread_us()}
c0 = thread_us()
time.sleep_ms(20)                                # asleep: wall time moves, CPU time not
out["sleep_cpu_us"] = ticks_diff(thread_us(), c0)
c0, t0 = thread_us(), ticks_us()
spins = 0
while ticks_diff(thread_us(), c0) < 20000 and ticks_diff(ticks_us(), t0) < 5000000:
    spins += 1                                   # busy: both move
out["busy_cpu_us"] = ticks_diff(thread_us(), c0)
out["busy_wall_us"] = ticks_diff(ticks_us(), t0)
out["period"] = time.ticks_add(0, -1) + 1        # ticks_us's period
out["schedstat_us"] = schedstat_us()
out["now_us"] = thread_us()
gc.collect()
a = gc.mem_alloc()
n = 0
while n < 1000:
    thread_us()
    n += 1
out["alloc"] = gc.mem_alloc() - a
print(json.dumps(out))
"""


@pytest.mark.parametrize("exe", [MICROPYTHON_32, MICROPYTHON_32_FROZEN], ids=["plain", "frozen"])
def test_thread_us_counts_cpu_not_wall(exe):
    proc = subprocess.run([exe, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # 20 ms asleep cost the thread a syscall's CPU, not the 20 ms (a wall clock would show them).
    assert out["sleep_cpu_us"] < 10000, out
    # 20 ms of CPU spent spinning: one thread cannot run longer than the time that passed.
    assert out["busy_cpu_us"] >= 20000, out
    assert out["busy_wall_us"] >= out["busy_cpu_us"], out
    # Microseconds, wrapped like ticks_us: the kernel's own count of this thread's run time
    # (microseconds of sum_exec_runtime, which lags by up to a scheduler tick) agrees.
    period = out["period"]
    assert 0 <= out["now_us"] < period and 0 <= out["first"] < period, out
    lag = (out["now_us"] - out["schedstat_us"]) % period
    assert lag < 50000, out
    # The bench reads it at every safety poll inside the app's heap: it must not allocate.
    assert out["alloc"] == 0, out


def test_firmware_never_imports_cputime():
    """cputime exists only in the unix builds of host_tools/devtools/mp32.py: no board has it."""
    users = []
    for path in sorted(FIRMWARE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] == "cputime" for n in names):
                users.append(str(path.relative_to(FIRMWARE)))
    assert users == []


# Runs inside MicroPython; prints one JSON line.
_SWITCHES = """
import gc, json, time
from array import array
from cputime import switches

def proc_status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])

c = array("i", [0, 0])
switches(c)
out = {"vol0": c[0], "invol0": c[1]}
for _ in range(5):
    time.sleep_ms(2)                             # each sleep blocks: a voluntary switch
switches(c)
out["vol5"] = c[0]
out["proc_vol"] = proc_status("voluntary_ctxt_switches")
switches(c)
out["vol_after_proc"] = c[0]
out["proc_invol"] = proc_status("nonvoluntary_ctxt_switches")
switches(c)
out["invol_after_proc"] = c[1]
n = 0                                            # every global made before the count
a = 0
gc.collect()
a = gc.mem_alloc()
while n < 1000:
    switches(c)
    n += 1
out["alloc"] = gc.mem_alloc() - a
try:
    switches(bytearray(4))
    out["short"] = "accepted"
except ValueError:
    out["short"] = "ValueError"
print(json.dumps(out))
"""


@pytest.mark.parametrize("exe", [MICROPYTHON_32, MICROPYTHON_32_FROZEN], ids=["plain", "frozen"])
def test_switches_counts_the_threads_context_switches(exe):
    """The gap meter's blocking check: a sleep is a voluntary switch, the counters are the
    kernel's own (/proc/self/status agrees), and reading them allocates nothing."""
    proc = subprocess.run([exe, "-c", _SWITCHES], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["vol5"] - out["vol0"] >= 5, out
    # The same counters as /proc/self/status's (a read of it may itself block once).
    assert out["vol5"] <= out["proc_vol"] <= out["vol_after_proc"], out
    assert out["invol0"] <= out["proc_invol"] <= out["invol_after_proc"], out
    assert out["alloc"] == 0, out
    assert out["short"] == "ValueError", out
