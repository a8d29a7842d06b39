"""A simulated energy meter: pymodbus serving a meter's registers over a serial pty.

    firmware ──pty A── relay (this file: counts, injects faults) ──pty B── pymodbus RTU server

pymodbus (its RTU framer and its server, not ours) answers the firmware's real RTU frames; the
values are encoded with pymodbus's own conversion helpers, from a register table written here
independently of firmware/drivers/meters.py, so a mistake in one does not hide in the other.

Standalone:  python -m host_tools.sim.meter --model SDM630 --address 1 --link /tmp/meter0
It prints one JSON line when ready: {"port": <pty the firmware opens>, "control": <tcp port>,
"baud", "address", "model"}.

Control channel (loopback TCP, one command per line, answer "ok ..." or "err ..."):
    energy_wh N | power_w N | voltage_dv A [B C] | current_ma A [B C]
    fault crc|garble|short|wrong_addr|silent|none [COUNT]   (COUNT replies, default: until none)
    exception CODE [COUNT]      replace replies by exception CODE (0 = off)
    raw ADDR VALUE...           override registers (of the model's function) e.g. a NaN
    stats                       "ok requests=N replies=M"
    reset                       default values, no faults, no overrides, stats zeroed
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import termios
import tty

from pymodbus import FramerType
from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.framer.rtu import FramerRTU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator.simdata import SimData
from pymodbus.simulator.simdevice import SimDevice
from pymodbus.simulator.simutils import DataType

DT = ModbusClientMixin.DATATYPE


def _eastron(n):
    """Eastron documents input registers as 3xxxx numbers: address = n - 30001."""
    return n - 30001


# model -> function code, defined register ranges (readable; everything else is an illegal
# address), word order, and quantity -> (address, pymodbus type, state -> register value).
# From the makers' documents: Eastron SDM630/SDM72D-M/SDM120 Modbus protocol tables, ABB
# B-series register map 2CMC485003M0201, Carlo Gavazzi EM300/ET300 communication protocol.
def _eastron_3p(defined):
    return {
        "fc": 4, "word_order": "big", "defined": defined,
        "values": {
            "voltage1": (_eastron(30001), DT.FLOAT32, lambda s: s["voltage_dv"][0] / 10),
            "voltage2": (_eastron(30003), DT.FLOAT32, lambda s: s["voltage_dv"][1] / 10),
            "voltage3": (_eastron(30005), DT.FLOAT32, lambda s: s["voltage_dv"][2] / 10),
            "current1": (_eastron(30007), DT.FLOAT32, lambda s: s["current_ma"][0] / 1000),
            "current2": (_eastron(30009), DT.FLOAT32, lambda s: s["current_ma"][1] / 1000),
            "current3": (_eastron(30011), DT.FLOAT32, lambda s: s["current_ma"][2] / 1000),
            "power": (_eastron(30053), DT.FLOAT32, lambda s: float(s["power_w"])),
            "energy": (_eastron(30073), DT.FLOAT32, lambda s: s["energy_wh"] / 1000),
        },
    }


SIM_MODELS = {
    "SDM630": _eastron_3p([(0, 0x50), (0x0156, 2)]),
    "SDM72D-M": _eastron_3p([(0, 0x50), (0x0156, 2)]),
    "SDM120": {
        "fc": 4, "word_order": "big", "defined": [(0, 0x50)], "phases": 1,
        "values": {
            "voltage1": (_eastron(30001), DT.FLOAT32, lambda s: s["voltage_dv"][0] / 10),
            "current1": (_eastron(30007), DT.FLOAT32, lambda s: s["current_ma"][0] / 1000),
            "power": (_eastron(30013), DT.FLOAT32, lambda s: float(s["power_w"])),
            "energy": (_eastron(30073), DT.FLOAT32, lambda s: s["energy_wh"] / 1000),
        },
    },
    "B23": {
        "fc": 3, "word_order": "big", "defined": [(0x5000, 0x18), (0x5B00, 0x30)],
        "values": {
            "energy": (0x5000, DT.UINT64, lambda s: s["energy_wh"] // 10),      # 0.01 kWh
            "voltage1": (0x5B00, DT.UINT32, lambda s: s["voltage_dv"][0]),      # 0.1 V
            "voltage2": (0x5B02, DT.UINT32, lambda s: s["voltage_dv"][1]),
            "voltage3": (0x5B04, DT.UINT32, lambda s: s["voltage_dv"][2]),
            "current1": (0x5B0C, DT.UINT32, lambda s: s["current_ma"][0] // 10),  # 0.01 A
            "current2": (0x5B0E, DT.UINT32, lambda s: s["current_ma"][1] // 10),
            "current3": (0x5B10, DT.UINT32, lambda s: s["current_ma"][2] // 10),
            "power": (0x5B14, DT.INT32, lambda s: s["power_w"] * 100),          # 0.01 W
        },
    },
    "EM340": {
        "fc": 4, "word_order": "little", "defined": [(0, 0x60)],
        "values": {
            "voltage1": (0x0000, DT.INT32, lambda s: s["voltage_dv"][0]),      # 0.1 V
            "voltage2": (0x0002, DT.INT32, lambda s: s["voltage_dv"][1]),
            "voltage3": (0x0004, DT.INT32, lambda s: s["voltage_dv"][2]),
            "current1": (0x000C, DT.INT32, lambda s: s["current_ma"][0]),      # mA
            "current2": (0x000E, DT.INT32, lambda s: s["current_ma"][1]),
            "current3": (0x0010, DT.INT32, lambda s: s["current_ma"][2]),
            "power": (0x0028, DT.INT32, lambda s: s["power_w"] * 10),          # 0.1 W
            "energy": (0x0034, DT.INT32, lambda s: s["energy_wh"] // 100),     # 0.1 kWh
        },
    },
}
SIM_MODELS["B24"] = SIM_MODELS["B23"]
FAULTS = ("none", "crc", "garble", "short", "wrong_addr", "silent")


def default_state():
    return {"energy_wh": 1234567, "power_w": 0, "voltage_dv": [2301, 2302, 2303],
            "current_ma": [0, 0, 0]}


def _rtu_len(buf, request):
    """Bytes in the RTU frame at the start of buf, or None while the header is incomplete."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc & 0x80:
        return 5
    if fc in (3, 4):
        if request:
            return 8
        return None if len(buf) < 3 else 5 + buf[2]
    if fc == 6 or (fc == 16 and not request):
        return 8
    if fc == 16:
        return None if len(buf) < 7 else 9 + buf[6]
    return len(buf)          # unknown function: pass through what we have


def _with_crc(frame):
    return bytes(frame) + FramerRTU.compute_CRC(bytes(frame)).to_bytes(2, "big")


def _open_pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


class MeterSim:
    def __init__(self, model, address=1, baud=9600):
        if model not in SIM_MODELS:
            raise SystemExit("unknown model %s (known: %s)" % (model, ", ".join(SIM_MODELS)))
        self.model = model
        self.spec = SIM_MODELS[model]
        self.address = address
        self.baud = baud
        self.state = default_state()
        self.raw = {}
        self.fault, self.fault_left = "none", -1
        self.exc_code, self.exc_left = 0, -1
        self.requests = self.replies = 0
        self._req = bytearray()
        self._rep = bytearray()
        self._last_fc = 3

    # ---- registers served by pymodbus ---------------------------------------------------
    def _device(self):
        blocks = [SimData(address=a, count=n, values=0, datatype=DataType.REGISTERS)
                  for a, n in self.spec["defined"]]
        dummy_bits = [SimData(address=0, values=False, datatype=DataType.BITS)]
        # Meters read with FC 04 keep their setup in holding registers (Eastron 4xxxx: demand
        # period, system type...; written with FC 16): plain storage here, values not modelled.
        setup = [SimData(address=0, count=0x30, values=0, datatype=DataType.REGISTERS)]
        unused = [SimData(address=0xFF00, count=2, values=0, datatype=DataType.REGISTERS)]
        hr, ir = (blocks, unused) if self.spec["fc"] == 3 else (setup, blocks)
        return SimDevice(id=self.address, simdata=(dummy_bits, list(dummy_bits), hr, ir),
                         action=self._action)

    async def _action(self, function_code, start_address, address, count, registers, values):
        """Called by pymodbus on every access: refresh the live values into its registers."""
        if (function_code == 4) != (self.spec["fc"] == 4):
            return None
        for addr, dtype, fn in self.spec["values"].values():
            regs = ModbusClientMixin.convert_to_registers(
                fn(self.state), dtype, word_order=self.spec["word_order"])
            for i, r in enumerate(regs):
                if 0 <= addr - start_address + i < len(registers):
                    registers[addr - start_address + i] = r
        for addr, r in self.raw.items():
            if 0 <= addr - start_address < len(registers):
                registers[addr - start_address] = r
        return None

    # ---- the relay between the firmware's pty and pymodbus's pty --------------------------
    def _from_firmware(self):
        try:
            data = os.read(self.fw_master, 512)
        except (BlockingIOError, OSError):
            return
        self._req += data
        while True:
            n = _rtu_len(self._req, True)
            if n is None or len(self._req) < n:
                break
            frame, self._req = bytes(self._req[:n]), self._req[n:]
            self.requests += 1
            # Only our meter is on this bus: a frame for another slave id gets no answer.
            # (pymodbus 3.16's SimDevice core answers unknown ids with exception 4 instead.)
            if frame[0] != self.address:
                continue
            self._last_fc = frame[1]
            os.write(self.meter_master, frame)

    def _from_meter(self):
        try:
            data = os.read(self.meter_master, 512)
        except (BlockingIOError, OSError):
            return
        self._rep += data
        while True:
            n = _rtu_len(self._rep, False)
            if n is None or len(self._rep) < n:
                break
            frame, self._rep = bytearray(self._rep[:n]), self._rep[n:]
            out = self._mangle(frame)
            if out:
                self.replies += 1
                os.write(self.fw_master, bytes(out))

    def _take_fault(self):
        """The fault for this reply, counting down a limited one."""
        kind = self.fault
        if kind != "none" and self.fault_left > 0:
            self.fault_left -= 1
            if self.fault_left == 0:
                self.fault, self.fault_left = "none", -1
        return kind

    def _take_exception(self):
        code = self.exc_code
        if code and self.exc_left > 0:
            self.exc_left -= 1
            if self.exc_left == 0:
                self.exc_code, self.exc_left = 0, -1
        return code

    def _mangle(self, frame):
        code = self._take_exception()
        if code:
            frame = bytearray(_with_crc([frame[0], (self._last_fc | 0x80) & 0xFF, code]))
        kind = self._take_fault()
        if kind == "none":
            return frame
        if kind == "silent":
            return None
        if kind == "crc":
            frame[-1] ^= 0x5A
        elif kind == "garble":
            # Flip bits in the payload (after the header) as line noise would; the CRC stays.
            for i in range(3, max(4, len(frame) - 2), 3):
                frame[i] ^= 0x24
        elif kind == "short":
            frame = frame[:max(3, len(frame) // 2)]
        elif kind == "wrong_addr":
            frame = bytearray(_with_crc([(frame[0] % 247) + 1] + list(frame[1:-2])))
        return frame

    # ---- control channel ----------------------------------------------------------------
    def command(self, line):
        parts = line.split()
        if not parts:
            return "err empty command"
        cmd, args = parts[0], parts[1:]
        try:
            nums = [int(a, 0) for a in args] if cmd not in ("fault",) else None
            if cmd in ("energy_wh", "power_w") and len(nums) == 1:
                self.state[cmd] = nums[0]
            elif cmd in ("voltage_dv", "current_ma") and len(nums) in (1, 3):
                self.state[cmd] = (nums * 3)[:3] if len(nums) == 1 else nums
            elif cmd == "fault" and 1 <= len(args) <= 2 and args[0] in FAULTS:
                self.fault = args[0]
                self.fault_left = int(args[1]) if len(args) == 2 else -1
            elif cmd == "exception" and 1 <= len(nums) <= 2 and 0 <= nums[0] <= 255:
                self.exc_code = nums[0]
                self.exc_left = nums[1] if len(nums) == 2 else -1
            elif cmd == "raw" and len(nums) >= 2:
                for i, v in enumerate(nums[1:]):
                    self.raw[nums[0] + i] = v & 0xFFFF
            elif cmd == "stats" and not args:
                return "ok requests=%d replies=%d" % (self.requests, self.replies)
            elif cmd == "reset" and not args:
                self.state = default_state()
                self.raw = {}
                self.fault, self.fault_left, self.exc_code, self.exc_left = "none", -1, 0, -1
                self.requests = self.replies = 0
                self._req = bytearray()
                self._rep = bytearray()
            else:
                return "err bad command: %s" % line.strip()
        except ValueError as exc:
            return "err %s" % exc
        return "ok"

    async def _client(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                writer.write((self.command(line.decode("ascii", "replace")) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def run(self, link=None, control_port=0, ready=None):
        self.fw_master, self.fw_slave, fw_path = _open_pty()
        self.meter_master, self.meter_slave, meter_path = _open_pty()
        if link:
            if os.path.islink(link):
                os.unlink(link)
            os.symlink(fw_path, link)
        loop = asyncio.get_running_loop()
        self.server = ModbusSerialServer(self._device(), framer=FramerType.RTU,
                                         port=meter_path, baudrate=self.baud)
        await self.server.serve_forever(background=True)
        loop.add_reader(self.fw_master, self._from_firmware)
        loop.add_reader(self.meter_master, self._from_meter)
        ctl = await asyncio.start_server(self._client, "127.0.0.1", control_port)
        info = {"port": link or fw_path, "baud": self.baud, "address": self.address,
                "model": self.model, "control": ctl.sockets[0].getsockname()[1]}
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):       # a clean stop removes the link
            loop.add_signal_handler(sig, stop.set)
        if ready:
            ready(info)
        try:
            await stop.wait()
        finally:
            ctl.close()
            await self.server.shutdown()
            if link and os.path.islink(link):
                os.unlink(link)


def spawn(model="SDM630", address=1, baud=115200, link=None):
    """Run this simulator in a process of its own; (process, info dict: port, baud, control).
    The caller stops it with stop()."""
    import subprocess
    from host_tools.paths import ROOT
    cmd = [sys.executable, "-m", "host_tools.sim.meter", "--model", model,
           "--address", str(address), "--baud", str(baud)]
    if link:
        cmd += ["--link", str(link)]
    proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("meter simulator for %s did not start" % model)
    return proc, json.loads(line)


def stop(proc):
    import subprocess
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="SDM630", choices=sorted(SIM_MODELS))
    ap.add_argument("--address", type=int, default=1)
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--link", help="symlink to the pty the firmware opens")
    ap.add_argument("--control-port", type=int, default=0)
    args = ap.parse_args(argv)
    sim = MeterSim(args.model, args.address, args.baud)

    def ready(info):
        print(json.dumps(info), flush=True)

    try:
        asyncio.run(sim.run(args.link, args.control_port, ready))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
