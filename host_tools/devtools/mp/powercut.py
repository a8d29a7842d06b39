# Runs inside MicroPython: a power cut at every flash write of a whole charging session.
#
# The charger's flash is littlefs v2 (vfs.VfsLfs2, the ESP32's default) on a RAM block device
# that counts block writes and can stop them. A dry run of the session counts its writes W;
# then, for each cut point k, the session is replayed from the same starting image and the
# power goes after k block writes: the (k+1)th write never happens and the CPU stops (a
# BaseException the firmware cannot catch as an error, raised from the block device). Then
# the charger boots again on the same flash, with the EV gone, and runs until it is idle. At
# every cut point:
#   - the charger comes up safe: the contactor is open from boot on;
#   - the session is billed exactly once (never twice; once whenever the contactor had
#     closed), and its receipt bills what the meter counted while the contactor was closed;
#   - the log and its checkpoint verify: the receipts the validator holds plus those in the
#     outbox rebuild the log's Merkle root, every receipt's signature verifies, and the last
#     checkpoint names that root and size and carries a valid signature;
#   - every record not acknowledged before the cut is still in the outbox.
# The session: boot, plug in, card, journal before the contactor closes, readings journalled
# every minute, a tariff update mid-session, unplug, three signatures, the log commit, the
# outbox put, and the validator's acks deleting the records.
#
#   sweep(cuts=None) -> {"points": W + 1, "tried": n, "failures": [...]}
# Used by tests/host/device/test_power_cut.py (a fixed subset) and host_tools/bench/powercut.py
# (every cut point); prints "POWERCUT {json}".
import builtins
import hashlib
from binascii import hexlify
import gc
import json
import struct
import vfs

from app import config
from app.board import load_board
from app.charger_app import ChargerApp
from drivers import meters
from drivers.modbus import crc16
from hal import sim
from ledger import checkpoint, merkle, receipt
from scenario_cards import CARD, CARD_ID, provision

MOUNT = "/flash"
BLOCKS = 64
BLOCK_SIZE = 4096
T0 = 1800000000
NEW_TARIFF = ('{"v":1,"currency":"EUR","utc_offset_min":0,"session_fee_minor":100,'
              '"bands":[{"start_min":0,"kwh_price_milli":50000}],'
              '"idle_min_price_milli":0,"idle_grace_min":0,"tax_bp":0}')


class PowerCut(BaseException):
    """The power is gone: raised from the flash's write, caught only by this harness."""


class Flash:
    """A flash chip in RAM behind the block-device protocol littlefs uses (extended
    interface). After `limit` block writes (programs or erases) the power goes: that write
    does not happen and PowerCut is raised, again for any write the dying code still tries
    (a `with` block's close must not turn the cut into an ordinary error). Once the harness
    has caught the cut the chip is buried: writes reaching it (a file finaliser of the dead
    mount) are dropped, never written to the flash the next boot sees."""

    def __init__(self, data, limit=-1):
        self.data = data
        self.writes = 0
        self.limit = limit
        self.dead = False
        self.buried = False

    def _write(self):
        if self.buried:
            return False
        if self.dead or self.writes == self.limit:
            self.dead = True
            raise PowerCut()
        self.writes += 1
        return True

    def readblocks(self, n, buf, off=0):
        start = n * BLOCK_SIZE + off
        buf[:] = self.data[start:start + len(buf)]

    def writeblocks(self, n, buf, off=None):
        if self._write():
            start = n * BLOCK_SIZE + (off or 0)
            self.data[start:start + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // BLOCK_SIZE
        if op == 5:
            return BLOCK_SIZE
        if op == 6:                                   # erase
            if self._write():
                start = arg * BLOCK_SIZE
                self.data[start:start + BLOCK_SIZE] = b"\xff" * BLOCK_SIZE
            return 0
        return 0


class MeterPort:
    """An Eastron SDM630 answering Modbus RTU function 04 from its register image (the
    firmware's own map, drivers/meters.py), in-process: the serial-port interface the
    Modbus master uses (baudrate, drain_input, write, readinto, close). energy_wh only moves
    when the owner adds to it; the reply is computed when the request is written."""
    baudrate = 115200

    def __init__(self, energy_wh):
        self.energy_wh = energy_wh
        self.power_w = 0
        self._rows = {}
        for q, fc, addr, kind, order, scale, unit in meters.MODELS["SDM630"]["rows"]:
            self._rows[addr] = q
        self._out = bytearray(256)
        self._n = 0
        self._pos = 0

    def _value(self, q):
        if q == "energy":
            return self.energy_wh / 1000
        if q == "power":
            return self.power_w
        if q.startswith("voltage"):
            return 230.0
        return self.power_w / 690.0                   # current per phase (A), 3 x 230 V

    def drain_input(self):
        self._n = self._pos = 0

    def write(self, req):
        addr, fc, start, count = req[0], req[1], (req[2] << 8) | req[3], (req[4] << 8) | req[5]
        out = self._out
        out[0], out[1], out[2] = addr, fc, 2 * count
        for i in range(count):
            out[3 + 2 * i] = out[4 + 2 * i] = 0
        for reg, q in self._rows.items():
            if start <= reg and reg + 2 <= start + count:
                o = 3 + 2 * (reg - start)
                out[o:o + 4] = struct.pack(">f", self._value(q))
        n = 3 + 2 * count
        c = crc16(out, n)
        out[n], out[n + 1] = c & 0xFF, c >> 8
        self._n, self._pos = n + 2, 0
        return len(req)

    def readinto(self, buf, nbytes, timeout_ms):
        k = min(nbytes, self._n - self._pos)
        buf[:k] = self._out[self._pos:self._pos + k]
        self._pos += k
        return k

    def close(self):
        pass


class _Cmd:
    def __init__(self, name, args):
        self.name, self.args = name, args


class Charger:
    """One boot of the charger on the flash: the real app on simulated devices."""

    def __init__(self, flash, meter, clock):
        vfs.mount(vfs.VfsLfs2(flash), MOUNT)
        board = load_board(_BOARD[0])
        cfg = config.load(board, None, {
            "charger_id": "CP-CUT-1", "data_dir": MOUNT + "/data", "allow_list": [CARD_ID],
            "secrets_path": MOUNT + "/secrets.json",
            "meter_serial": "SIM-CUT", "mqtt_host": None, "recover_settle_ms": 2000})
        self.clock = clock
        self.meter = meter
        relay = sim.SimRelay(clock)
        pilot = sim.SimPilot(sim.SimEV())
        self.relay, self.ev = relay, pilot.ev
        hw = {"clock": clock, "relay": relay, "feedback": relay.feedback, "pilot_pwm": pilot,
              "pilot_adc": pilot, "uart": meter, "urandom": sim.urandom,
              "watchdog": sim.SimWatchdog(clock)}
        if board.rcd_fault is not None:
            rcd = sim.SimRcd()
            hw.update(rcd=rcd, rcd_fault=rcd.fault_out, rcd_test=rcd.test)
        self.was_closed = False
        self.unsafe = None
        self.app = ChargerApp(board, cfg, hw)
        # The app collects every few KiB allocated (app/charger_app.py), sized for a 112 KiB
        # heap; this heap also holds the simulated flash and its image (over 512 KiB), which
        # every collection would scan. What is tested here is the flash, not the heap.
        gc.threshold(-1)
        self._check_safe("boot")

    def _check_safe(self, when):
        if self.relay.contacts_closed() and self.ev.state not in ("C", "D") and self.unsafe is None:
            self.unsafe = when

    def run(self, seconds, step_ms=100, power_w=0):
        left = seconds * 1000
        flow = sim.EnergyFlow()
        while left > 0:
            self.clock.advance(step_ms)
            left -= step_ms
            closed = self.relay.contacts_closed()
            self.meter.power_w = power_w if closed else 0
            self.was_closed = self.was_closed or closed
            self.meter.energy_wh += flow.add(self.meter.power_w, step_ms)
            self.app.step()
            self._check_safe("running")

    def session(self, validator):
        """The whole session; validator(list) takes the records the app hands out."""
        self.ev.set_state("B")
        self.run(3)
        refused = self.app.present_card(CARD)
        if refused:
            raise AssertionError("card refused: %s" % refused)
        self.ev.set_state("C")
        self.run(2)
        self.run(100, step_ms=5000, power_w=11000)
        running = self.app.charger.session["tariff"]
        result = self.app.execute(_Cmd("tariff", {"tariff": NEW_TARIFF}))
        if result[0] != "ok":
            raise AssertionError("tariff update refused: %r" % (result,))
        if self.app.billing.tariff.hash == running:
            raise AssertionError("tariff did not change")
        self.run(100, step_ms=5000, power_w=11000)
        self.ev.set_state("B")
        self.run(3)
        self.ev.set_state("A")
        self.run(3)
        self.ack_all(validator)

    def ack_all(self, validator):
        box = self.app.outbox
        for seq, tag, payload in box.items(limit=100):
            validator.append(bytes(payload))
            # The outbox's own check (uplink/acks.py authenticates acks before this): the digest
            # of the bytes the validator holds.
            box.ack(seq, "val-1", hexlify(hashlib.sha256(payload).digest()).decode(), tag)
        box.sync()


_BOARD = [None]
_OPEN = builtins.open
_FILES = []


def _recording_open(*args, **kwargs):
    """open(), remembering the file: the dying code's files are closed by the harness once
    the chip is buried, not later by the collector (a finaliser runs with the heap locked,
    where reading the simulated flash cannot allocate)."""
    f = _OPEN(*args, **kwargs)
    _FILES.append(f)
    return f


def _close_files():
    while _FILES:
        f = _FILES.pop()
        try:
            f.close()
        except BaseException:
            pass


def _unmount():
    try:
        vfs.umount(MOUNT)
    except OSError:
        pass


def _receipts(records):
    out = []
    for rec in records:
        if rec.startswith(b"{"):
            out.append(rec)
    return out


def _check(ch, held, meter_begin, meter_end, was_closed):
    """Everything that must hold after the reboot; returns a failure text or None."""
    app = ch.app
    log = app.records.log
    pending = [bytes(p) for _, _, p in app.outbox.items(limit=100)]
    if ch.unsafe:
        return "contactor closed without an EV charging (%s)" % ch.unsafe
    # Every receipt ever handed to the validator or still waiting, by its log index.
    by_index = {}
    for rec in _receipts(held + pending):
        body, sig = receipt.split(rec)
        b = json.loads(body)
        if not app.keys.verify(body, sig):
            return "receipt %d: bad signature" % b["seq"]
        old = by_index.get(b["index"])
        if old is not None and old != rec:
            return "two different receipts at log index %d" % b["index"]
        by_index[b["index"]] = rec
    if sorted(by_index) != list(range(log.size)):
        return "log of %d leaves, receipts held or queued for %r" % (log.size, sorted(by_index))
    f = merkle.Frontier()
    for i in range(log.size):
        f.append(by_index[i])
    if f.root() != log.root():
        return "the receipts do not rebuild the log's root"
    if log.size:
        cp = log.last_checkpoint
        origin, size, root, t, text, sigs = checkpoint.parse(cp)
        if size != log.size or root != log.root() or not checkpoint.verify(cp, app.keys):
            return "last checkpoint does not verify against the log"
    # The session: billed once at most; once whenever the contactor closed, for what the
    # meter counted.
    bills = [json.loads(receipt.split(r)[0]) for r in by_index.values()]
    if len(bills) > 1:
        return "session billed %d times" % len(bills)
    if was_closed and not bills:
        return "energy flowed and no receipt"
    for b in bills:
        if b["energy_wh"] != meter_end - meter_begin:
            return "billed %d Wh, the meter counted %d" % (b["energy_wh"], meter_end - meter_begin)
    if app.charger.session is not None or app.charger.fault is not None:
        return "not idle after the reboot: %r %r" % (app.charger.state, app.charger.fault)
    return None


_RAM = [None]          # the chip's contents: one buffer for every replay (no 256 KiB churn)


def _one(image, limit, meter_begin):
    """Replay the session with the power cut after limit writes (-1: no cut); returns
    (writes done, failure or None)."""
    data = _RAM[0]
    data[:] = image
    flash = Flash(data, limit)
    meter = MeterPort(meter_begin)
    clock = sim.SimClock(epoch=T0)
    held = []                                        # what the validator received
    cut = False
    ch = None
    try:
        ch = Charger(flash, meter, clock)
        ch.session(held)
    except PowerCut:
        cut = True
    flash.buried = True
    _close_files()
    was_closed = ch.was_closed if ch is not None else False
    writes = flash.writes
    ch = None
    _unmount()
    gc.collect()
    # The power is back, minutes later; the EV has gone.
    clock.advance(300000)
    meter.power_w = 0
    flash = Flash(data)                              # the same chip; the old one stays dead
    try:
        ch = Charger(flash, meter, clock)
        ch.run(10)
        ch.ack_all(held)
        ch.run(2)
        fail = _check(ch, held, meter_begin, meter.energy_wh, was_closed)
    except Exception as exc:                         # a boot that fails is a failure too
        fail = "reboot failed: %r" % (exc,)
    flash.buried = True                              # nothing late may reach the next replay
    _close_files()
    _unmount()
    if limit >= 0 and not cut:
        fail = fail or "the session ended before write %d" % limit
    return writes, fail


def _base_image(data):
    """A charger provisioned and booted once (key made, tariff and log in place)."""
    flash = Flash(data)
    vfs.VfsLfs2.mkfs(flash)
    ch = Charger(flash, MeterPort(1000000), sim.SimClock(epoch=T0 - 3600))
    provision(MOUNT + "/secrets.json")              # after the first boot, as deploy.py does
    ch.run(5)
    ch = None
    flash.buried = True
    _close_files()
    _unmount()
    return flash.data                               # never written again: the image


def sweep(board, cuts=None, every=1):
    """Cut after every write (or those in cuts, or every n-th); print and return the result."""
    _BOARD[0] = board
    builtins.open = _recording_open
    try:
        return _sweep(cuts, every)
    finally:
        builtins.open = _OPEN


def _sweep(cuts, every):
    # Both chip-sized buffers first, while the heap is in one piece.
    gc.collect()
    _RAM[0] = bytearray(BLOCKS * BLOCK_SIZE)
    image = _base_image(bytearray(BLOCKS * BLOCK_SIZE))
    total, fail = _one(image, -1, 1000000)
    if fail:
        raise AssertionError("the session fails without a power cut: " + fail)
    points = list(range(0, total, every)) if cuts is None else [c for c in cuts if c < total]
    failures = []
    for k in points:
        _, fail = _one(image, k, 1000000)
        if fail:
            failures.append([k, fail])
    out = {"writes": total, "points": total, "tried": len(points), "failures": failures}
    print("POWERCUT " + json.dumps(out))
    return out


def session_power_cut(board, cuts=None, every=1):
    """The test entry (host_tools/devtools/mprun.py): fails on any failing cut point."""
    out = sweep(board, cuts, every)
    assert not out["failures"], out["failures"]
    assert out["tried"] > 0
