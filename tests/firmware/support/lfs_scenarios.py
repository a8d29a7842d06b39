# Scenarios on a real littlefs v2 filesystem (the ESP32's default), mounted on a RAM block
# device inside the MicroPython unix port. Run from tests/host/test_littlefs.py (CPython has no
# littlefs); each function raises on failure.
import vfs

from store import atomic
from store.journal import Journal, JournalFull


class RamBlocks:
    """A flash chip in RAM: the block-device protocol littlefs uses (extended interface)."""

    def __init__(self, blocks, block_size=4096):
        self.block_size = block_size
        self.data = bytearray(blocks * block_size)
        self.writes = 0

    def readblocks(self, n, buf, off=0):
        start = n * self.block_size + off
        buf[:] = self.data[start:start + len(buf)]

    def writeblocks(self, n, buf, off=None):
        if off is None:                                   # erase, then write the whole block
            off = 0
        start = n * self.block_size + off
        self.data[start:start + len(buf)] = buf
        self.writes += 1

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.block_size     # block count
        if op == 5:
            return self.block_size
        if op == 6:                                       # erase
            start = arg * self.block_size
            self.data[start:start + self.block_size] = b"\xff" * self.block_size
            return 0
        return 0


def _mount(dev, mkfs=False):
    if mkfs:
        vfs.VfsLfs2.mkfs(dev)
    vfs.mount(vfs.VfsLfs2(dev), "/flash")


def _unmount():
    vfs.umount("/flash")


def _record(i):
    return b"receipt-%05d-" % i + b"x" * 1200


def full_flash_keeps_every_record(blocks=24):
    """Append receipts until littlefs is full: the journal refuses with JournalFull, and every
    record written before is still there, in order, after a remount."""
    dev = RamBlocks(blocks)
    _mount(dev, mkfs=True)
    j = Journal("/flash/outbox", segment_bytes=4096, reserve_bytes=8192)
    written = 0
    refused = False
    for i in range(10000):
        try:
            j.append(_record(i))
        except JournalFull:
            refused = True
            break
        written += 1
    assert refused, "the flash never filled"
    assert written > 10
    free = atomic.free_bytes("/flash")
    _unmount()
    _mount(dev)
    j2 = Journal("/flash/outbox", segment_bytes=4096, reserve_bytes=8192)
    got = 0
    for seq, data in j2.records():
        assert data == _record(got), "record %d lost or changed" % got
        got += 1
    assert got == written, "%d of %d records after remount" % (got, written)
    # Acknowledged records free their segments and new sessions fit again.
    j2.ack(written - 2)
    assert atomic.free_bytes("/flash") > free
    j2.append(b"after-ack")
    _unmount()
    return written


def _cut_sweep(dev, image, total, action, after_reboot):
    """Replay action() on the flash image cut short after each of its total block writes in
    turn (the power goes: EIO), then call after_reboot(cut) on the remounted flash."""
    limit = [0]
    real_write = dev.writeblocks

    def cutting(n, buf, off=None):
        if limit[0] <= 0:
            raise OSError(5)                      # EIO: the power is gone
        limit[0] -= 1
        real_write(n, buf, off)

    for cut in range(total + 1):
        dev.data[:] = image
        limit[0] = cut
        dev.writeblocks = cutting
        _mount(dev)
        try:
            action()
        except OSError:
            pass
        try:
            _unmount()
        except OSError:
            pass
        dev.writeblocks = real_write
        _mount(dev)
        after_reboot(cut)
        _unmount()


def power_cut_during_atomic_write(blocks=16):
    """Cut the power at every block write of an atomic replace: the file reads as the old
    value or the new one, whole, never anything else."""
    old, new = b"old-" + b"o" * 3000, b"new-" + b"n" * 5000
    dev = RamBlocks(blocks)
    _mount(dev, mkfs=True)
    atomic.write("/flash/state", old)
    _unmount()
    image = bytes(dev.data)
    # Count the block writes one replace takes, then replay it cut short after each of them.
    _mount(dev)
    before = dev.writes
    atomic.write("/flash/state", new)
    total = dev.writes - before
    _unmount()
    seen = set()

    def check(cut):
        value = atomic.read("/flash/state")
        assert value == old or value == new, "cut after %d writes: %r" % (cut, value and value[:12])
        seen.add(value[:3])
    _cut_sweep(dev, image, total, lambda: atomic.write("/flash/state", new), check)
    assert total > 1 and seen == {b"old", b"new"}, (total, seen)
    return total


_TARIFF_V1 = ('{"v":1,"currency":"EUR","utc_offset_min":60,"session_fee_minor":0,'
              '"bands":[{"start_min":0,"kwh_price_milli":30000}],"idle_min_price_milli":0,'
              '"idle_grace_min":30,"tax_bp":0}')


def _published(tid, valid_from, price):
    return ('{"v":2,"id":"%s","currency":"EUR","valid_from":%d,"tz":"CET-1CEST,M3.5.0,M10.5.0/3",'
            '"session_fee_minor":0,"bands":[{"start_min":0,"kwh_price_milli":%d}],'
            '"idle_min_price_milli":0,"idle_grace_min":30,"tax_bp":0}' % (tid, valid_from, price))


def power_cut_during_tariff_offer(blocks=24):
    """Cut the power at every block write while a published tariff is put in force and another
    is scheduled (session/billing.py): after the reboot the charger holds the old tariff or the
    new one, whole, and every scheduled tariff it names is on flash and parses."""
    from session.billing import Billing
    from session.tariff import Tariff
    now = 1800000000
    a, b, c = _published("a", now - 100, 31000), _published("b", now - 50, 32000), _published("c", now + 3600, 33000)
    dev = RamBlocks(blocks)
    _mount(dev, mkfs=True)
    first = Billing("/flash/tariff", _TARIFF_V1)
    first.offer(a, now)
    held = first.tariff.hash
    _unmount()
    image = bytes(dev.data)

    def offers():
        bill = Billing("/flash/tariff", _TARIFF_V1)
        bill.offer(b, now)
        bill.offer(c, now)
        return bill
    _mount(dev)
    before = dev.writes
    done = offers()
    total = dev.writes - before
    new_hash, scheduled = done.tariff.hash, done.pending[0][1]
    _unmount()
    seen = set()

    def check(cut):
        bill = Billing("/flash/tariff", _TARIFF_V1)          # the reboot
        got = bill.tariff.hash
        assert got in (held, new_hash), "cut after %d writes: tariff %s" % (cut, got[:12])
        for vf, h in bill.pending:
            raw = atomic.read("/flash/tariff/" + h)
            assert raw is not None, "cut %d: scheduled %s not on flash" % (cut, h)
            assert Tariff.parse(raw).valid_from == vf
        seen.add((got == new_hash, len(bill.pending)))
    _cut_sweep(dev, image, total, offers, check)
    assert total > 2 and (False, 0) in seen and (True, 1) in seen, (total, seen)
    assert scheduled
    return total
