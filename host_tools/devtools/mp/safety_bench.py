# Runs inside MicroPython for host_tools/bench/safety.py; prints one JSON line, last.
# The whole charger app on simulated pilot/contactor hardware, its meter served by pymodbus on a
# pty, its MQTT uplink on a real broker with a validator acking: sessions started by a signed
# remote command, a current limit and a tariff command while charging, telemetry, the end
# (three signatures, log, outbox, publish, ack). The safety watch polls at every call
# (safety_poll_us 0) and records every gap between two polls as the firmware thread's own time
# (CPU time + the sleeps it asked for: GapMeter) and in wall time: everything the app does
# between two calls counts, garbage collections included. Harness work (asking for the
# commands, setting the meter) is excluded with watch.resume(). The operator's commands are
# published by the host when this asks for one (a line "PUBLISH <name>" on stdout): neither
# the signed commands (~9 KB) nor an operator's MQTT client sit in the heap the app's
# collector marks (on the board it holds the app alone).
# Needs the 32-bit build's cputime module (host_tools/devtools/mp32_cmod/): the bench's only.
# stdin: {"board", "meter_port", "baud", "meter_control", "data", "host", "port", "t0",
#         "operator_spki", "sessions",
#         "labels": wrap the app's calls to file long gaps by name (default true),
#         "heap_map": print the heap's block map (micropython.mem_info(1)) at the end}
import gc

gc.threshold(2048)      # as app/main.py: the boot's long-lived objects pack low (BOOT_GC_BYTES)

import json  # noqa: E402
import sys  # noqa: E402
from time import sleep_ms, ticks_diff, ticks_us  # noqa: E402

from array import array  # noqa: E402

from cputime import switches, thread_us  # noqa: E402  the bench's C module (host_tools/devtools/mp32_cmod)

from hal import clock as clock_mod  # noqa: E402
from app import BOOT_ONLY, forget  # noqa: E402
from app.charger_app import ChargerApp  # noqa: E402
from app.simulated import sim_hardware  # noqa: E402
from hal.meterctl import MeterControl  # noqa: E402
from hal.sim import SimClock  # noqa: E402

try:
    import gcsplit                          # the firmware image's C module (firmware/cmod)
except ImportError:
    gcsplit = None


def split_failures():
    return gcsplit.failures() if gcsplit is not None else 0


NBUCKETS = 201
RUNQ_WRAP = 1000000000                  # GapMeter._runq_us() counts modulo this many us
MAX_KINDS = 48                          # kinds of long gap filed by name (each a ~60-byte str)


def _bucket(us):
    """Histogram bucket: 10 us wide below 1 ms, 1 ms wide below 100 ms, then one."""
    if us < 1000:
        return us // 10
    if us < 100000:
        return 99 + us // 1000
    return 200


def _bucket_top(i):
    return (i + 1) * 10 if i < 100 else ((i - 98) * 1000 if i < 200 else 1 << 30)


def percentile(hist, total, q):
    """The upper edge of the bucket holding the q-th quantile (q in thousandths)."""
    need = (total * q + 999) // 1000
    seen = 0
    for i in range(NBUCKETS):
        seen += hist[i]
        if seen >= need:
            return _bucket_top(i)
    return 0


_sleep_us = clock_mod.sleep_us


class GapMeter:
    """Wraps the app's safety watch (every_us 0: every call polls) and measures every gap
    between two polls three ways, filed by where it started and ended: the main loop's phase
    (watch.phase) and the innermost labelled call (self.where).

    own   the firmware thread's own time: its CPU time in the gap (cputime.thread_us(),
          CLOCK_THREAD_CPUTIME_ID: user + system) plus the sleeps it asked for in the gap (its
          wait slices and Modbus frame-gap slices, all through hal.clock.sleep_us, timed
          here). On an ESP32 the firmware runs alone on its core, so its gap is exactly that.
          Time this process waited for a CPU, was preempted, or the hypervisor stole, and the
          kernel's lateness in waking it from a sleep, are not in it. The headline.
    wall  ticks_us() between the two polls: everything, the host included.
    clean the wall time of the gaps in which the kernel did not switch this process out
          involuntarily (getrusage(RUSAGE_THREAD)'s ru_nivcsw) and the hypervisor stole
          nothing (the steal column of /proc/stat's cpu line; read around long gaps only,
          below); "code" is a clean gap less the host's oversleep in it (the wall-clock
          method before the CPU clock).

    What own cannot see is a wait that is not a timed sleep (a blocking read, a DNS lookup):
    it would pass neither as CPU nor as an asked sleep. So every gap is also checked for it,
    twice. By count: each time the thread blocks, the kernel counts a voluntary context
    switch (ru_nvcsw); a gap with more of them than timed sleeps waited on something else
    ("untimed wait": the row must be 0). By time:
    unaccounted = wall - CPU - asked sleeps - the time it waited on a run queue (run_delay,
    the second field of /proc/self/schedstat) is what the thread spent off the CPU and not
    runnable beyond what it asked to sleep: a blocking call would show here whole; otherwise
    it holds the kernel's timer slack and wake-up lateness (tens of us per sleep) and
    hypervisor time that /proc/stat's 10 ms steal ticks do not show. A collection (the heap's
    allocated bytes went down) is marked "+gc".

    The meter reads its clocks and counters into buffers made once, outside the gap (after the
    poll, before the next one), and allocates nothing per poll except when it files a new kind
    of long gap: the app's collections come when the app's own allocations ask.
    What it does between two gaps must not slow the next one down either. Its first version read
    /proc/self/status, /proc/stat and /proc/self/schedstat twice per poll: the kernel formatted
    ~5 KB of text each time and the parsing walked it, and the app's next gap paid for the
    caches that work had emptied (a collection, which walks the whole live heap, 20-30 us more:
    gaps holding one p50 170-180 us against 150 without the reads, the same firmware). So the
    switch counters come from one system call (cputime.switches: getrusage, no text) and
    /proc/stat only when a gap was long: steal is counted in 10 ms ticks, and a tick that came
    in a short gap stands in the next long gap's reading (it is then counted stolen: the
    conservative side, its unaccounted time is not judged)."""

    def __init__(self, watch):
        self.watch = watch
        self.fs = open("/proc/stat", "rb")
        self.fq = open("/proc/self/schedstat", "rb")
        self.buf = bytearray(256)         # /proc/stat's cpu line (first) or /proc/self/schedstat
        self.sw_now = array("i", [0, 0])  # cputime.switches: voluntary, involuntary
        self.port_sw = array("i", [0, 0])  # the same, around a read of the meter's port
        self.port_t = self.port_v0 = 0    # that read's start: ticks_us, voluntary switches
        self.st_now = self._steal()
        self.hist = [0] * NBUCKETS       # every gap, by its own time
        self.hist_wall = [0] * NBUCKETS  # every clean gap, by its wall time
        self.hist_gc = [0] * NBUCKETS    # every gap with a collection, by its own time
        self.long = {}                   # kind hash -> [count, max own us, max unaccounted us, kind]
        self.reset()
        inner = watch.poll

        def poll():
            self._note()
            inner()
            self.resume()
        watch.poll = poll
        mark = watch.mark

        def marked():
            self._note()
            mark()
            self.resume()
        watch.mark = marked

    def reset(self):
        self.max_own = 0           # every gap: CPU + asked sleeps
        self.max_own_clean = 0     # the same, gaps without an involuntary switch or steal
        self.own_over = 0          # of those, above 250 us
        self.max_cpu = 0           # every gap: CPU alone
        self.max_unacc = 0         # every gap not stolen from: wall - CPU - asked - run queue
        self.unacc_over = 0        # of those, above 250 us
        self.untimed = 0           # gaps in which the thread blocked more often than it slept
        self.max_wall = 0          # every gap
        self.max_clean = 0         # gaps without an involuntary switch or steal
        self.preempted = 0         # gaps with an involuntary switch
        self.stolen = 0            # gaps with hypervisor steal
        self.gaps = 0
        self.port_waits = 0        # waits inside the meter port's reads (time_port)
        self.over = 0              # clean gaps above 250 us of wall time
        self.gc_gaps = 0           # gaps with a collection inside
        self.gc_max = 0            # the largest of those, own time
        self.busy_us = 0           # the sum of all gaps' wall time
        self.max_code = 0          # clean gaps less the host's oversleep in them
        self.code_over = 0         # of those, above 250 us
        self.overslept = 0         # oversleep so far in the gap running now
        self.asked = 0             # sleep asked for so far in the gap running now
        for i in range(NBUCKETS):
            self.hist[i] = 0
            self.hist_wall[i] = 0
            self.hist_gc[i] = 0
        self.long.clear()
        self.long[-2] = [0, 0, 0, "(inside a collection, new kind)"]
        self.resume()

    def _number_after(self, f, key, skip, n=0):
        """The skip-th number after key in f (read now; or, with n, the n bytes in buf)."""
        b = self.buf
        if not n:
            f.seek(0)
            n = f.readinto(b)
        i = b.find(key, 0, n) + len(key)
        while skip:                          # the skip-th number after the key
            while b[i] == 32 or b[i] == 9:
                i += 1
            while b[i] > 32:
                i += 1
            skip -= 1
        while b[i] == 32 or b[i] == 9:
            i += 1
        v = 0
        while 48 <= b[i] <= 57:
            v = v * 10 + b[i] - 48
            i += 1
        return v

    def _switches(self):
        """The involuntary context switches so far; the voluntary ones (the thread blocked:
        a sleep or any other wait) into self.vol, from the same system call."""
        c = self.sw_now
        switches(c)
        self.vol = c[0]
        return c[1]

    def _steal(self):
        return self._number_after(self.fs, b"cpu ", 7)

    def _runq_us(self):
        """run_delay (ns, the second field of /proc/self/schedstat) in us modulo RUNQ_WRAP:
        the last three digits dropped and the rest folded as it is read, so the value stays a
        small int (a big one would allocate)."""
        b = self.buf
        f = self.fq
        f.seek(0)
        f.readinto(b)
        i = 0
        while b[i] != 32:
            i += 1
        i += 1
        j = i
        while 48 <= b[j] <= 57:
            j += 1
        v = 0
        while i < j - 3:
            v = (v % 100000000) * 10 + b[i] - 48
            i += 1
        return v

    def _note(self):
        cpu_now = thread_us()
        now = ticks_us()
        # Polled from inside a collection (gcsplit, between its mark and its sweep): the
        # allocation table is mid-collection (gc.mem_alloc would miscount) and nothing may be
        # allocated. The gap that ends here holds the collection's first part.
        in_gc = self.watch.in_collection
        alloc = self.alloc if in_gc else gc.mem_alloc()
        sw = self._switches()
        waits = self.vol - self.vol0 - self.sleeps   # blocked other than in a timed sleep
        rq = (self._runq_us() - self.rq) % RUNQ_WRAP
        wall = ticks_diff(now, self.last)
        cpu = ticks_diff(cpu_now, self.cpu)
        own = cpu + self.asked
        st = self.st
        if wall > 250 or own > 250:                  # a long gap: was anything stolen?
            st = self.st_now = self._steal()
        self.gaps += 1
        self.busy_us += wall
        if wall > self.max_wall:
            self.max_wall = wall
        if cpu > self.max_cpu:
            self.max_cpu = cpu
        self.hist[_bucket(own)] += 1
        if own > self.max_own:
            self.max_own = own
        if own > 250:
            self.own_over += 1
        collected = in_gc or alloc < self.alloc - 2048   # not a buffer shrunk or freed in place
        if collected:
            self.gc_gaps += 1
            self.hist_gc[_bucket(own)] += 1
            if own > self.gc_max:
                self.gc_max = own
        unacc = 0
        if st != self.st:
            self.stolen += 1              # steal is neither CPU nor run queue: not judged
        else:
            unacc = wall - own - rq - self.port_wait_us
            if unacc > self.max_unacc:
                self.max_unacc = unacc
            if unacc > 250:
                self.unacc_over += 1
        if waits > 0:
            self.untimed += 1
        if own > 250 or unacc > 250 or waits > 0:
            self._file(own, unacc, collected, waits > 0)
        if sw != self.sw:
            self.preempted += 1
            return
        if st != self.st:
            return
        if own > self.max_own_clean:
            self.max_own_clean = own
        self.hist_wall[_bucket(wall)] += 1
        if wall > self.max_clean:
            self.max_clean = wall
        code = wall - self.overslept
        if code > self.max_code:
            self.max_code = code
        if wall > 250:
            self.over += 1
        if code > 250:
            self.code_over += 1

    def _file(self, own, unacc, collected, waited):
        """A long gap (own or unaccounted time over 250 us) filed by where it started and
        ended, under a small-int hash of the labels (all constant strings), so it allocates
        nothing unless its kind is new (the meter's own garbage would bring the collector on
        sooner than the app's does); past MAX_KINDS kinds, under one "(other)"."""
        # Multiplied, not shifted: with shifts of 5 into 24 bits the first labels' hashes
        # (16 bits) were mostly shifted out, and kinds that differed only in where they
        # started were filed under one name. h * 31 + x stays a small int (below 2**25).
        h = hash(self.start_phase) & 0xFFFFF
        h = (h * 31 + (hash(self.start_where) & 0xFFFFF)) & 0xFFFFF
        h = (h * 31 + (hash(self.watch.phase) & 0xFFFFF)) & 0xFFFFF
        h = (h * 31 + (hash(self.where) & 0xFFFFF)) & 0xFFFFF
        h = (h * 31 + (hash(self.trail) & 0xFFFFF)) & 0xFFFFF
        if collected:
            h ^= 0x1000000
        if waited:
            h ^= 0x2000000
        e = self.long.get(h)
        if e is None and self.watch.in_collection:
            e = self.long[-2]               # made beforehand: nothing is allocated in there
        if e is None and len(self.long) >= MAX_KINDS:
            h = -1
            e = self.long.get(h)
        if e is None and h == -1:
            self.long[h] = [1, own, unacc, "(other)"]
        elif e is None:
            key = "%s/%s > %s/%s%s%s%s" % (
                self.start_phase, self.start_where, self.watch.phase, self.where,
                " +gc" if collected else "", " +untimed wait" if waited else "",
                " (last entered: %s)" % self.trail if self.trail else "")
            self.long[h] = [1, own, unacc, key]
        else:
            e[0] += 1
            if own > e[1]:
                e[1] = own
            if unacc > e[2]:
                e[2] = unacc

    def resume(self):
        self.start_phase = self.watch.phase
        self.start_where = self.where
        self.sw = self._switches()
        self.vol0 = self.vol
        self.sleeps = 0
        self.port_wait_us = 0
        self.st = self.st_now
        if not self.watch.in_collection:  # else the level before the collection stays
            self.alloc = gc.mem_alloc()
        self.overslept = 0
        self.asked = 0
        self.trail = ""
        self.rq = self._runq_us()
        self.last = ticks_us()
        self.cpu = thread_us()

    def sleep_us(self, us):
        """The firmware's sleeps (wait slices, the Modbus frame gap), timed: the time asked for
        is part of the firmware's own gap (a sliced wait on the board); what the host adds
        beyond it is the host scheduler's wake-up latency, not the firmware."""
        self.asked += us
        self.sleeps += 1
        t = ticks_us()
        _sleep_us(us)
        late = ticks_diff(ticks_us(), t) - us
        if late > 0:
            self.overslept += late

    def time_port(self, port):
        """The meter's serial port (a pty here, hal/serial_posix.py) read through a timer: the
        master reads it without waiting (timeout 0, its own sleeps between), but the kernel's
        pty poll may wait for the pty's pending input work to finish (tty_buffer_flush_work),
        a voluntary switch no timed sleep explains. On the board a UART read takes what its
        ring buffer holds and never waits, so such a wait is counted apart (self.port_waits),
        not as an untimed wait: that row keeps meaning a wait of the firmware's own. Its time
        is the host's (the flush work, then the scheduler's wake-up: 100-500 us on this VM), so
        like a sleep's oversleep it stays out of the gap's own time, and out of its unaccounted
        time too (the read's wall time, self.port_wait_us): that row keeps meaning time nothing
        explains. Only a read that does not wait (timeout 0, how the master reads when it has a
        watch) is judged so: a read that was asked to wait and blocked stays an untimed wait."""
        readinto = port.readinto
        drain = port.drain_input

        def timed_readinto(buf, nbytes, timeout_ms):
            if timeout_ms:
                return readinto(buf, nbytes, timeout_ms)
            self._port_read_starts()
            got = readinto(buf, nbytes, 0)
            self._port_read_ended()
            return got

        def timed_drain():
            self._port_read_starts()
            drain()
            self._port_read_ended()
        port.readinto = timed_readinto
        port.drain_input = timed_drain

    def _port_read_starts(self):
        self.port_t = ticks_us()
        switches(self.port_sw)
        self.port_v0 = self.port_sw[0]

    def _port_read_ended(self):
        c = self.port_sw
        switches(c)
        d = c[0] - self.port_v0
        if d:
            self.sleeps += d
            self.port_waits += d
            self.port_wait_us += ticks_diff(ticks_us(), self.port_t)

    def summary(self, prefix=""):
        n = self.gaps
        nc = self.gaps - self.preempted - self.stolen
        # Untimed waits first (they must be 0), then by count and length.
        top = sorted(self.long.items(), key=lambda kv: (
            -(kv[0] > 0 and kv[0] & 0x2000000 > 0), -kv[1][0] * 1000000 - kv[1][1]))
        return {prefix + "max_gap_us": self.max_own, prefix + "gaps_over_250us": self.own_over,
                prefix + "max_gap_clean_us": self.max_own_clean,
                prefix + "p99_us": percentile(self.hist, n, 990),
                prefix + "p999_us": percentile(self.hist, n, 999),
                prefix + "max_gap_cpu_us": self.max_cpu,
                prefix + "unaccounted_max_us": self.max_unacc,
                prefix + "unaccounted_over_250us": self.unacc_over,
                prefix + "untimed_wait_gaps": self.untimed,
                prefix + "port_waits": self.port_waits,
                prefix + "max_gap_wall_us": self.max_wall,
                prefix + "max_gap_wall_clean_us": self.max_clean,
                prefix + "gaps": self.gaps, prefix + "preempted_gaps": self.preempted,
                prefix + "stolen_gaps": self.stolen,
                prefix + "clean_gaps_over_250us": self.over,
                prefix + "wall_p99_us": percentile(self.hist_wall, nc, 990),
                prefix + "wall_p999_us": percentile(self.hist_wall, nc, 999),
                prefix + "gc_gaps": self.gc_gaps, prefix + "gc_gap_max_us": self.gc_max,
                prefix + "gc_gap_p50_us": percentile(self.hist_gc, self.gc_gaps, 500),
                prefix + "gc_gap_p99_us": percentile(self.hist_gc, self.gc_gaps, 990),
                prefix + "busy_us": self.busy_us,
                prefix + "code_max_gap_us": self.max_code,
                prefix + "code_gaps_over_250us": self.code_over,
                # [kind, count, max own us, max unaccounted us]
                prefix + "long_by_phase": [[v[3], v[0], v[1], v[2]] for k, v in top[:40] if v[0]]}

    where = ""


def idle_gaps(watch, gm, busy_us, slice_us):
    """The host's noise floor: nothing but safety polls (the same watch and meter) for as long
    as the app ran, so whatever long gaps remain here are the machine's, not the firmware's;
    then the same with a wait slice's sleep between the polls (the host's wake-up latency)."""
    out = {}
    for name, sleep in (("idle_", 0), ("idle_sleep_", slice_us)):
        gm.reset()
        watch.phase = name
        t0 = ticks_us()
        while ticks_diff(ticks_us(), t0) < busy_us:
            for _ in range(100):
                watch()
                if sleep:
                    clock_mod.sleep_us(sleep)
        out.update(gm.summary(name))
    return out


def signer_gaps(reps=7):
    """The signer's and verifier's largest gap between two hook calls, noise-free: the same
    computation repeated, the gap at each hook position taken at its minimum over the runs
    (scheduling noise only ever adds), then the largest position. Deterministic work, so
    the positions line up run to run, and so do the collector's: a gap with a collection in
    it (the heap's allocated bytes went down) is left out of that run, and a position with one
    in every run is not the signer's (collections are measured apart: gc_pause_us). The
    hook runs a watch.heavy set up as the app's (it collects by the bytes allocated) between
    two timestamps."""
    from hashlib import sha256
    from ledger import p256
    from app.charger_app import ChargerApp
    from app.safety import SafetyWatch
    gc_bytes, call_bytes = ChargerApp._collector()
    ChargerApp._collector(gc_bytes)               # as the app leaves it once built
    watch = SafetyWatch(lambda: None, 0, gc_bytes, call_bytes)
    heavy = watch.heavy
    d = 0x1F2E3D4C5B6A79881F2E3D4C5B6A79881F2E3D4C5B6A79881F2E3D4C5B6A7988
    pub = p256.public_key(d)
    dig = sha256(b"safety bench").digest()
    r, s = p256.sign_digest(d, dig)
    out = {}
    # Lists made once, before the arithmetic fragments the heap (the app's heap is full here).
    gaps = [0] * 1024
    best = [0] * 1024
    for name, fn in (("sign", lambda: p256.sign_digest(d, dig, 0x1234567)),
                     ("verify", lambda: p256.verify_digest(pub, dig, r, s))):
        for run in range(reps):
            gc.collect()
            st = [0, gc.mem_alloc(), 0]                  # last call, heap then, calls

            def hook(gaps=gaps, st=st):
                now = ticks_us()
                gap = ticks_diff(now, st[0])
                n = st[2]
                gaps[n] = gap if gc.mem_alloc() >= st[1] - 2048 else -1
                st[2] = n + 1
                heavy()
                st[1] = gc.mem_alloc()
                st[0] = ticks_us()
            prev = p256.set_idle(hook)
            st[0] = ticks_us()
            try:
                fn()
            finally:
                p256.set_idle(prev)
            n = st[2]
            gaps[n] = ticks_diff(ticks_us(), st[0])      # the tail after the last call
            for i in range(n + 1):                       # -1: a collection in that gap
                a, b = best[i], gaps[i]
                best[i] = b if run == 0 or a < 0 else (a if b < 0 else min(a, b))
        top = 0
        for i in range(n + 1):
            if best[i] > top:
                top = best[i]
        out[name + "_gap_us"] = top
        out[name + "_hooks"] = n
    return out


def gc_pauses(watch, n=7):
    """A full collection's pause with the app's heap as it is now: the slowest and the
    fastest of n in wall time, the fastest in CPU time (the collector's own cost, without the
    host's noise), and the heap's live bytes. The watch's slices are off meanwhile: the pause
    is the collector's alone, not its polls."""
    if gcsplit is not None:
        gcsplit.slices(None, 0)
    worst = 0
    best = 1 << 29
    best_cpu = 1 << 29
    for _ in range(n):
        t = ticks_us()
        c = thread_us()
        gc.collect()
        c = ticks_diff(thread_us(), c)
        d = ticks_diff(ticks_us(), t)
        worst = max(worst, d)
        best = min(best, d)
        best_cpu = min(best_cpu, c)
    if gcsplit is not None and watch.gc_slice_us:
        gcsplit.slices(watch._slice, watch.gc_slice_us)
    return worst, best, best_cpu, gc.mem_alloc()


def main():
    gc.collect()
    heap0 = gc.mem_alloc()
    cfg = json.loads(sys.stdin.readline())
    gc.collect()
    cfg_bytes = gc.mem_alloc() - heap0    # the configuration
    labels = cfg.get("labels", True)
    # The signer first, on an empty heap: at the end the app's heap is nearly full (with this
    # harness in it) and an allocation's search for a free block costs more than on the board.
    # After a pause: the broker, the meter and the validator have just started beside us.
    sleep_ms(3000)
    signer = signer_gaps()
    from app import config                  # boot only, as app/main.py: forgotten below
    from app.board import load_board
    board = load_board(cfg["board"])
    conf = config.load(board, None, {
        "charger_id": "CP-BENCH", "meter_serial": "SIM0001", "data_dir": cfg["data"],
        "mqtt_host": cfg["host"], "mqtt_port": cfg["port"],
        "operator_key": cfg["operator_spki"], "telemetry_interval_s": 1,
        "health_interval_s": 5, "safety_poll_us": 0, "wait_slice_us": 50,
        "gc_slice_us": cfg["gc_slice_us"],
        "meter_poll_ms": 1000, "secrets_path": cfg["secrets"]})
    meter = MeterControl(cfg["meter_control"])
    wh = 1000000
    meter.set_energy_wh(wh)
    clock = SimClock(epoch=cfg["t0"])
    hw = sim_hardware(board, cfg["meter_port"], cfg["baud"], clock)
    app = ChargerApp(board, conf, hw)
    del config, load_board
    forget(*BOOT_ONLY)                      # as app/main.py once the charger is built
    gc.collect()
    heap1 = gc.mem_alloc()
    gm = GapMeter(app.safety)
    clock_mod.sleep_us = gm.sleep_us              # the firmware's sleeps, timed
    gm.time_port(app.charger.meter.master.port)   # and the pty's waits (GapMeter.time_port)
    ev = hw["ev"]
    relay = hw["relay"]
    # Where each long gap ended: the innermost labelled call running at that poll.
    labelled = []                   # (obj, name, own attribute replaced or None): undone at the end

    def label(obj, name):
        if not labels:
            return
        f = getattr(obj, name)
        labelled.append((obj, name, f if name in obj.__dict__ else None))

        def g(*a, **k):
            outer = gm.where
            gm.where = name
            gm.trail = name              # the last labelled call entered in this gap
            try:
                return f(*a, **k)
            finally:
                gm.where = outer

        def g0():                        # no arguments: no tuple or dict made for them
            outer = gm.where
            gm.where = name
            gm.trail = name
            try:
                return f()
            finally:
                gm.where = outer
        # The calls a poll makes from inside a collection (gcsplit), where nothing may be
        # allocated, take no arguments.
        setattr(obj, name, g0 if name in ("poll", "open") else g)
    ch = app.charger
    for obj, names in ((ch, ("step", "enter", "take_reading", "finish", "record", "_poll_meter",
                             "read_energy", "status", "set_current_limit", "authorise",
                             "_step_session", "_step_idle", "_step_connected", "_close_contactor",
                             "end_charging", "_close_session", "_last_reading", "_suspend",
                             "set_phase")),
                       (ch.contactor, ("open", "close", "check")), (ch.flow, ("check",)),
                       (ch.watch, ("poll",)), (ch.safety, ("check",)), (ch.lease, ("ran_out",)),
                       (ch.pilot, ("poll", "set_current", "set_idle")),
                       (ch.books, ("take_reading", "close", "journal", "price_so_far")),
                       (ch.sessions, ("save", "finish")), (ch.faults, ("add", "record")),
                       (app.link, ("poll", "telemetry", "health", "reply", "_receive", "_send",
                                   "_keepalive", "_verify_one", "_on_message", "_publish")),
                       (app, ("execute", "health")), (app.records, ("record", "_queue")),
                       (app.keys, ("sign",)), (app.outbox, ("put", "sync", "ack", "items")),
                       (ch.meter, ("read",)),
                       (ch.meter.master.port, ("write", "readinto", "drain_input"))):
        for n in names:
            if hasattr(obj, n):
                label(obj, n)
    gc.collect()
    heap2 = gc.mem_alloc()
    harness = heap2 - heap1               # the meter and its labels

    def step(n=1, ms=100):
        for _ in range(n):
            clock.advance(ms)
            app.step()

    def command(name):
        sys.stdout.write("PUBLISH %s\n" % name)    # the host publishes it (QoS 1)
        gm.resume()

    def until(cond, limit=3000):
        for _ in range(limit):
            if cond():
                return True
            step()
        return False

    until(lambda: app.link.connected)
    gc.collect()
    heap3 = gc.mem_alloc()
    c = app.link.client
    for obj, names in ((c, ("check_msg", "publish", "wait_msg")),
                       (app.billing, ("set_tariff",)), (app.records.log, ("append_session",))):
        for n in names:
            if hasattr(obj, n):
                label(obj, n)
    if app.link.verifier is not None:
        label(app.link.verifier, "verify")
    label(app.safety, "collect")
    label(c, "cb")
    gc.collect()
    harness += gc.mem_alloc() - heap3     # the labels on the uplink's objects
    gm.reset()
    polls0 = app.safety.polls
    steps = 0
    for i in range(cfg["sessions"]):
        ev.set_state("B")
        step(5)
        command("start%d" % i)
        until(lambda: app.charger.session is not None)
        ev.set_state("C")
        step(20)
        command("limit%d" % i)
        for k in range(60):                        # a minute of charging, 11 kW
            if relay.contacts_closed():
                wh += 11000 * 1000 // 3600000
                meter.set_energy_wh(wh)
                gm.resume()
            step(10)
            if k == 30:
                command("tariff%d" % i)
        ev.set_state("B")
        step(20)
        ev.set_state("A")
        until(lambda: app.charger.session is None)
        until(lambda: app.outbox.pending() == 0)
        steps += 1
    out = gm.summary()
    master = app.charger.meter.master
    out.update({"modbus_attempts": master.attempts, "modbus_failures": master.failures,
                "collects": app.safety.collects, "heap_looks": app.safety.looks,
                "gc_splits": app.safety.splits, "gc_slices": app.safety.slices,
                "gc_split_failures": split_failures()})
    out.update({"polls": app.safety.polls - polls0,
                "sessions": steps, "pending": app.outbox.pending(),
                "receipts": app.records.log.seq, "state": app.charger.state})
    # The collector's pause as the run paid it (the harness's meter, labels and client in the
    # heap beside the app's), then, after the idle loops, of the app's heap alone.
    (out["gc_pause_harness_us"], out["gc_pause_harness_min_us"], out["gc_pause_harness_cpu_min_us"],
     out["heap_live_harness_bytes"]) = gc_pauses(app.safety)
    out["signer"] = signer
    # The bench's own share of the app's heap: what it measures with (the meter, labels), and
    # its configuration.
    out["harness_bytes"] = harness
    out["harness_cfg_bytes"] = cfg_bytes
    out.update(idle_gaps(app.safety, gm, min(gm.busy_us, cfg.get("idle_us", 20000000)),
                         conf["wait_slice_us"]))
    clock_mod.sleep_us = _sleep_us
    gm.fs.close()
    gm.fq.close()
    gm = None
    for obj, name, own in labelled:
        if own is None:
            delattr(obj, name)              # the class's method again
        else:
            setattr(obj, name, own)
    labelled = None
    port = app.charger.meter.master.port
    delattr(port, "readinto")                 # GapMeter.time_port's timers: the class's methods
    delattr(port, "drain_input")
    port = None
    app.safety.poll = app.charger.safety_poll
    del app.safety.mark                       # GapMeter's wrapper: the class's method again
    (out["gc_pause_us"], out["gc_pause_min_us"], out["gc_pause_cpu_min_us"],
     out["heap_live_bytes"]) = gc_pauses(app.safety)
    if cfg.get("heap_map"):                 # the heap's block map, before the JSON line
        import micropython
        micropython.mem_info(1)
    app.link.close()
    meter.close()
    # One line of JSON written piece by piece: the app's heap is nearly full here and the
    # whole document (3-4 KB) may find no block that large.
    gc.collect()
    sep = "{"
    for k in out:
        sys.stdout.write(sep)
        sys.stdout.write(json.dumps(k))
        sys.stdout.write(":")
        v = out[k]
        if isinstance(v, list):                 # the histogram: one entry at a time
            sys.stdout.write("[")
            for i in range(len(v)):
                sys.stdout.write((", " if i else "") + json.dumps(v[i]))
            sys.stdout.write("]")
        else:
            sys.stdout.write(json.dumps(v))
        sep = ", "
    sys.stdout.write("}\n")


main()
