# Runs inside MicroPython (host_tools/fuzz/device.py starts it): feeds batches of inputs to the
# firmware's parsers, one process for all of them, and reports per parser the inputs run,
# the exceptions other than the parser's own declared error, and the slowest input.
#   micropython fuzz_run.py MANIFEST.json
# MANIFEST: {"work": dir, "board": path, "targets": [{"name", "file", "extra"}]}; each file
# holds one input per line, in hex.
import json
import sys
import time
from binascii import unhexlify


class _Port:
    """A UART whose reply is the fuzz input (drivers/modbus.py's port interface)."""
    baudrate = 115200

    def __init__(self):
        self.data = b""
        self.pos = 0

    def drain_input(self):
        pass

    def write(self, buf):
        return len(buf)

    def readinto(self, buf, n, timeout_ms):
        chunk = self.data[self.pos:self.pos + n]
        for i in range(len(chunk)):
            buf[i] = chunk[i]
        self.pos += len(chunk)
        return len(chunk)


def _modbus(extra, work):
    from drivers import modbus
    port = _Port()
    m = modbus.ModbusRTU(port, timeout_ms=1, char_timeout_ms=1, retries=0)
    m.gap_us = 0

    def call(data):
        port.data = data[1:]
        port.pos = 0
        sel = data[0] % 3 if data else 0
        if sel == 0:
            got = m.read_input(1, 0x48, 2)
            assert len(got) == 4, "read_input returned %d bytes" % len(got)
        elif sel == 1:
            got = m.read_holding(1, 0x5000, 4)
            assert len(got) == 8, "read_holding returned %d bytes" % len(got)
        else:
            m.write_register(1, 0x10, 1)
    return call, (modbus.ModbusError,)


def _command(extra, work):
    from uplink import commands
    v = commands.Verifier(work + "/cmd_state", extra["pub_hex"], extra["charger"], lambda: extra["now"],
                          cmd_key=extra.get("cmd_key"))
    return v.verify, (commands.CommandRejected,)


def _ack(extra, work):
    # host_tools/fuzz/seeds.py ACK_*: authentic acks of that key get past the MAC to the checks.
    from uplink import outbox
    from uplink.acks import AckChecker
    chk = AckChecker("CP-FUZZ", {"v1": {"k1": "11" * 32}})
    return (lambda raw: chk.check("v1", raw)), (outbox.BadAck,)


def _tariff(extra, work):
    from session import tariff
    return tariff.Tariff.parse, (tariff.TariffError,)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _board(extra, work):
    from app import board
    path = work + "/board.json"

    def call(data):
        _write(path, data)
        board.load_board(path)
    return call, (board.BoardError,)


def _config(extra, work):
    from app import board, config
    b = board.load_board(extra["board"])
    path = work + "/config.json"

    def call(data):
        _write(path, data)
        cfg = config.load(b, path)
        assert isinstance(cfg["charger_id"], str)
    return call, (config.ConfigError,)


SETUPS = {"modbus_reply": _modbus, "command": _command, "ack": _ack, "tariff": _tariff,
          "board": _board, "config": _config}


SLOW_US = 100000


def _retime(call, data):
    # A slow input is timed again: on a shared machine one slow run is often the scheduler.
    t0 = time.ticks_us()
    try:
        call(data)
    except Exception:
        pass
    return time.ticks_diff(time.ticks_us(), t0)


def run(target, work):
    call, allowed = SETUPS[target["name"]](target.get("extra") or {}, work)
    n = 0
    failures = []
    nfail = 0
    slow_us = 0
    slow_i = -1
    f = open(target["file"])
    while True:
        line = f.readline()
        if not line:
            break
        line = line.strip()
        data = unhexlify(line)
        t0 = time.ticks_us()
        try:
            call(data)
        except allowed:
            pass
        except Exception as exc:
            nfail += 1
            if len(failures) < 5:
                failures.append([n, repr(exc)[:200], line[:8000]])
        dt = time.ticks_diff(time.ticks_us(), t0)
        if dt > SLOW_US:
            dt = min(dt, _retime(call, data))
        if dt > slow_us:
            slow_us = dt
            slow_i = n
        n += 1
    f.close()
    return {"name": target["name"], "inputs": n, "failures": nfail, "examples": failures,
            "slowest_us": slow_us, "slowest_input": slow_i}


def main():
    with open(sys.argv[1]) as f:
        manifest = json.load(f)
    for target in manifest["targets"]:
        print("FUZZ " + json.dumps(run(target, manifest["work"])))


main()
