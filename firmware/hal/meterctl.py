# Client for host_tools/sim/meter.py's control channel, usable from CPython and MicroPython:
# tests drive the simulated meter (energy rising, faults on the wire) through it.
import socket


class MeterControlError(Exception):
    pass


class MeterControl:
    def __init__(self, port, host="127.0.0.1"):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.connect(socket.getaddrinfo(host, port)[0][-1])
        self._pending = b""

    def command(self, line):
        """Send one command line; return the text after "ok"; raise MeterControlError on "err"."""
        self._sock.send(line.encode() + b"\n")
        while b"\n" not in self._pending:
            chunk = self._sock.recv(256)
            if not chunk:
                raise MeterControlError("meter simulator closed the control channel")
            self._pending += chunk
        i = self._pending.index(b"\n")
        answer, self._pending = self._pending[:i].decode(), self._pending[i + 1:]
        if not answer.startswith("ok"):
            raise MeterControlError(answer)
        return answer[2:].strip()

    def set_energy_wh(self, wh):
        self.command("energy_wh %d" % wh)

    def set_power_w(self, w):
        self.command("power_w %d" % w)

    def set_voltage_dv(self, l1, l2=None, l3=None):
        self.command("voltage_dv %d %d %d" % (l1, l1 if l2 is None else l2, l1 if l3 is None else l3))

    def set_current_ma(self, l1, l2=None, l3=None):
        self.command("current_ma %d %d %d" % (l1, l1 if l2 is None else l2, l1 if l3 is None else l3))

    def fault(self, name, count=0):
        """crc, garble, short, wrong_addr, silent or none; count > 0 limits it to that many replies."""
        self.command("fault %s %d" % (name, count) if count else "fault %s" % name)

    def exception(self, code, count=0):
        """Answer with Modbus exception `code` (0 = stop); count > 0 limits it to that many replies."""
        self.command("exception %d %d" % (code, count) if count else "exception %d" % code)

    def raw(self, address, *values):
        """Override registers of the model's function code (e.g. to plant a NaN)."""
        self.command("raw %d %s" % (address, " ".join("%d" % v for v in values)))

    def stats(self):
        """{"requests": n, "replies": m}: frames the meter received and answered."""
        out = {}
        for kv in self.command("stats").split():
            k, v = kv.split("=")
            out[k] = int(v)
        return out

    def reset(self):
        self.command("reset")

    def close(self):
        self._sock.close()
