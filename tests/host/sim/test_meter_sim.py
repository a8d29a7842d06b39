"""The simulated meter and the firmware's register maps, checked against each other and against
pymodbus's own client, so the firmware tests are not a closed loop."""
import os
import random

from pymodbus.client import ModbusSerialClient
from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.framer.rtu import FramerRTU

from drivers import meters
from drivers.modbus import crc16
from host_tools.sim import meter as meter_sim
from hal.meterctl import MeterControl
from fixtures.meter import start_meter_sim, stop_meter_sim

DT = ModbusClientMixin.DATATYPE
_WIDTH = {DT.FLOAT32: 2, DT.INT32: 2, DT.UINT32: 2, DT.UINT64: 4, DT.INT16: 1, DT.UINT16: 1}


def test_firmware_maps_agree_with_the_simulators_independent_table():
    for name in meters.MODELS:
        fw = {row[0]: row for row in meters.MODELS[name]["rows"]}
        sim = meter_sim.SIM_MODELS[name]
        assert set(fw) == set(sim["values"]), name
        for quantity, (address, dtype, _) in sim["values"].items():
            row = fw[quantity]
            assert row[1] == sim["fc"], (name, quantity)
            assert row[2] == address, (name, quantity)
            assert meters.TYPES[row[3]][1] == _WIDTH[dtype], (name, quantity)
            assert (row[4] == meters.LO) == (sim["word_order"] == "little"), (name, quantity)
        # every planned read stays inside what the meter defines (no exception on a real one)
        for fc, start, count in meters.plan(name).txns:
            assert any(a <= start and start + count <= a + n for a, n in sim["defined"]), name


def test_firmware_crc_equals_pymodbus_crc():
    rnd = random.Random(7)
    for _ in range(300):
        frame = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 256)))
        c = FramerRTU.compute_CRC(frame)           # pymodbus returns the CRC byte-swapped
        assert crc16(frame) == ((c & 0xFF) << 8) | (c >> 8)


def test_pymodbus_client_reads_what_the_control_channel_set(meter_sim):
    ctl = MeterControl(meter_sim["control"])
    ctl.set_energy_wh(4567890)
    ctl.set_power_w(7400)
    client = ModbusSerialClient(meter_sim["port"], baudrate=meter_sim["baud"], timeout=1, retries=0)
    assert client.connect()
    try:
        rr = client.read_input_registers(0x0048, count=2, device_id=1)
        kwh = client.convert_from_registers(rr.registers, DT.FLOAT32)
        assert abs(kwh - 4567.890) < 0.001
        rr = client.read_input_registers(0x0034, count=2, device_id=1)
        assert client.convert_from_registers(rr.registers, DT.FLOAT32) == 7400.0
        rr = client.read_input_registers(0x9000, count=2, device_id=1)
        assert rr.isError() and rr.exception_code == 2       # unknown register
        assert ctl.stats() == {"requests": 3, "replies": 3}
    finally:
        client.close()
        ctl.close()


def test_control_channel_refuses_bad_commands(meter_sim):
    ctl = MeterControl(meter_sim["control"])
    for bad in ("fault lightning", "energy_wh lots", "voltage_dv 1 2", "exception 300", "nope", ""):
        try:
            ctl.command(bad)
        except Exception as exc:
            assert "err" in str(exc)
        else:
            raise AssertionError("accepted %r" % bad)
    ctl.close()


def test_standalone_run_with_a_link(tmp_path):
    link = tmp_path / "meter0"
    proc, info = start_meter_sim("B23", address=5, baud=9600, link=link)
    try:
        assert info["port"] == str(link) and os.path.islink(link)
        assert info["model"] == "B23" and info["address"] == 5
        ctl = MeterControl(info["control"])
        assert ctl.stats() == {"requests": 0, "replies": 0}
        ctl.close()
    finally:
        stop_meter_sim(proc)
    assert proc.returncode is not None
    assert not os.path.lexists(link)                  # removed on a clean stop
