# Meters over a real RTU line: the firmware's master and register maps against pymodbus
# serving each model on a pty (host_tools/sim/meter.py), with faults injected on the wire.
from support.fwtest import raises
from hal.meterctl import MeterControl
from hal.serial_posix import SerialPort
from drivers import meters
from drivers.modbus import (ModbusRTU, ModbusTimeout, ModbusCRCError,
                            ModbusFrameError, ModbusEchoError, ModbusException)
from drivers.meter import Meter, MeterError, MeterCommError, UnknownMeterModel, FAULTS


def connect(sim, retries=1, timeout_ms=100):
    port = SerialPort(sim["port"], sim["baud"])
    master = ModbusRTU(port, timeout_ms=timeout_ms, retries=retries)
    return port, master, Meter(master, sim["model"], sim["address"]), MeterControl(sim["control"])


def float32_wh(wh):
    """What an Eastron meter reports for wh: the nearest float32 to wh/1000 kWh, back in Wh."""
    import struct
    kwh = struct.unpack(">f", struct.pack(">f", wh / 1000))[0]
    return int(kwh * 1000 + 0.5)


def test_every_model_reads_the_values_the_meter_holds(meter_sims):
    for model, sim in meter_sims.items():
        port, master, meter, ctl = connect(sim)
        ctl.set_energy_wh(7654300)          # a multiple of every model's resolution (0.1 kWh)
        ctl.set_power_w(11040)
        ctl.set_voltage_dv(2301, 2298, 2315)
        ctl.set_current_ma(16010, 15990, 16000)
        r = meter.read()
        assert r is meter.reading
        assert r.energy_wh == 7654300, (model, r)
        assert r.power_w == 11040, (model, r)
        if meter.plan.phases == 1:
            assert r.voltage_dv == [2301, 0, 0] and r.current_ma == [16010, 0, 0], (model, r)
        else:
            assert r.voltage_dv == [2301, 2298, 2315], (model, r)
            assert r.current_ma == [16010, 15990, 16000], (model, r)
        # As few transactions as the meter allows: exactly the planned ones went on the wire.
        assert ctl.stats()["requests"] == len(meter.plan.txns), model
        ctl.set_energy_wh(7654400)
        assert meter.read_energy_wh() == 7654400
        assert ctl.stats()["requests"] == len(meter.plan.txns) + 1, model
        ctl.close()
        port.close()


def test_transactions_per_model():
    # SDM630 allows 40 parameters per request: the whole map in one read; the others need two.
    assert len(meters.plan("SDM630").txns) == 1
    assert len(meters.plan("SDM72D-M").txns) == 2      # 30-parameter limit
    assert len(meters.plan("SDM120").txns) == 2
    assert len(meters.plan("B23").txns) == 2           # energy at 0x5000, the rest at 0x5B00
    assert meters.plan("B24") is meters.plan("B23")
    for name in meters.MODELS:
        p = meters.plan(name)
        for fc, start, count in p.txns:
            assert count <= meters.MODELS[name]["max_regs"]


def test_export_power_is_negative(meter_sims):
    for model in ("SDM630", "B23", "EM340"):
        port, master, meter, ctl = connect(meter_sims[model])
        ctl.set_power_w(-3500)
        assert meter.read().power_w == -3500, model
        ctl.close()
        port.close()


def test_float32_energy_is_rounded_once_exactly(meter_sim):
    port, master, meter, ctl = connect(meter_sim)
    for wh in (0, 1, 999, 123456789, 9999999):
        ctl.reset()
        ctl.set_energy_wh(wh)
        assert meter.read_energy_wh() == float32_wh(wh), wh
    # float32 keeps 24 bits: 98765.432 kWh is stored as 98765.4296875 kWh = 98765429.6875 Wh.
    ctl.set_energy_wh(98765432)
    assert meter.read_energy_wh() == 98765430
    ctl.close()
    port.close()


def test_each_wire_fault_raises_its_error_and_keeps_the_last_reading(meter_sim):
    port, master, meter, ctl = connect(meter_sim, retries=0)
    ctl.set_energy_wh(500000)
    good = meter.read().energy_wh
    ctl.set_energy_wh(600000)
    for fault, err in (("crc", ModbusCRCError), ("garble", ModbusCRCError),
                       ("short", ModbusFrameError), ("wrong_addr", ModbusEchoError),
                       ("silent", ModbusTimeout)):
        ctl.fault(fault)
        # The session catches MeterError; the Modbus error says what went wrong on the wire.
        assert isinstance(raises(MeterCommError, meter.read).cause, err), fault
        assert isinstance(raises(MeterError, meter.read_energy_wh).cause, err), fault
        assert meter.reading.energy_wh == good, fault
    ctl.fault("none")
    assert meter.read().energy_wh == 600000
    ctl.close()
    port.close()


def test_exception_responses(meter_sim):
    port, master, meter, ctl = connect(meter_sim, retries=2)
    ctl.exception(2)
    exc = raises(MeterCommError, meter.read).cause
    assert isinstance(exc, ModbusException) and exc.code == 2
    assert ctl.stats()["requests"] == 1                # not retried: the meter said no
    ctl.exception(0)
    # A genuine exception from pymodbus: a register this meter does not have.
    exc = raises(ModbusException, master.read_input, 1, 0x9000, 2)
    assert exc.code == 2
    exc = raises(ModbusException, master.read_holding, 1, 0x0048, 2)   # wrong function code
    assert exc.code == 2
    assert meter.read().energy_wh == 1234567           # the simulator's default
    ctl.close()
    port.close()


def test_retries_are_bounded_and_a_transient_fault_is_absorbed(meter_sim):
    port, master, meter, ctl = connect(meter_sim, retries=2)
    ctl.fault("silent")
    assert isinstance(raises(MeterCommError, meter.read).cause, ModbusTimeout)
    assert ctl.stats()["requests"] == 3                # 1 + 2 retries, then give up
    ctl.reset()
    ctl.fault("crc", 1)                                # one damaged reply, then clean
    assert meter.read().energy_wh == 1234567
    assert ctl.stats()["requests"] == 2
    ctl.close()
    port.close()


def test_absent_meter_times_out(meter_sim):
    port = SerialPort(meter_sim["port"], meter_sim["baud"])
    meter = Meter(ModbusRTU(port, timeout_ms=50, retries=0), "SDM630", 7)
    assert isinstance(raises(MeterError, meter.read).cause, ModbusTimeout)
    port.close()


def test_nan_and_absurd_values_are_meter_errors(meter_sim):
    port, master, meter, ctl = connect(meter_sim)
    good = meter.read().energy_wh
    for regs in ((0x0048, 0x7FC0, 0x0000),            # energy NaN
                 (0x0048, 0x7F80, 0x0000),            # energy +infinity
                 (0x0048, 0xC2C8, 0x0000),            # energy -100 kWh
                 (0x0000, 0x4F00, 0x0000),            # voltage L1 2.1e9 V
                 (0x0034, 0x5F00, 0x0000)):           # power 9e18 W
        ctl.reset()
        ctl.raw(*regs)
        exc = raises(MeterError, meter.read)
        assert isinstance(exc, FAULTS)
        assert meter.reading.energy_wh == good
    ctl.close()
    port.close()


def test_energy_follows_the_register(meter_sim):
    # The driver reports the register as it is; judging a fall is the session's job.
    port, master, meter, ctl = connect(meter_sim)
    ctl.set_energy_wh(20000)
    assert meter.read_energy_wh() == 20000
    ctl.set_energy_wh(20500)                           # charging: energy rises
    assert meter.read().energy_wh == 20500
    ctl.set_energy_wh(19000)
    assert meter.read().energy_wh == 19000
    ctl.close()
    port.close()


def test_abb_not_available_marker_is_refused(meter_b23):
    port, master, meter, ctl = connect(meter_b23)
    ctl.raw(0x5B00, 0xFFFF, 0xFFFF)                    # uint32 "not available" for V L1
    raises(MeterError, meter.read)
    ctl.close()
    port.close()


def test_bad_configuration_is_refused_at_construction(meter_sim):
    port = SerialPort(meter_sim["port"], meter_sim["baud"])
    master = ModbusRTU(port)
    raises(UnknownMeterModel, Meter, master, "SDM999", 1)
    raises(MeterError, Meter, master, "SDM630", 0)
    assert Meter(master, "B24", 1).model == "B23"
    port.close()


def test_map_errors_are_caught_when_planned():
    meters.MODELS["BROKEN"] = {"rows": (("energy", 4, 0, "f32", "hi", 0, "V"),),
                               "phases": 1, "max_regs": 10, "max_gap": 0}
    try:
        raises(meters.MapError, meters.Plan, "BROKEN")      # volts are not energy
    finally:
        del meters.MODELS["BROKEN"]


def test_a_poll_allocates_almost_nothing_on_micropython(meter_sim):
    # The charger polls the meter all session long: a read must not churn the ESP32's heap.
    # Idle zeros matter: a naive float decode of 0.0 builds a 2**149 denominator.
    from support.fwtest import is_micropython
    port, master, meter, ctl = connect(meter_sim)
    for currents in (0, 16000):
        ctl.set_current_ma(currents)
        meter.read()
        if is_micropython():
            import gc
            import time
            time.sleep_ms(5)
            gc.collect()
            before = gc.mem_alloc()
            meter.read()
            assert gc.mem_alloc() - before <= 128, gc.mem_alloc() - before
    ctl.close()
    port.close()


def test_writes_against_pymodbus(meter_sim):
    # FC 16 and FC 06 into the SDM630's setup (holding) registers, read back with FC 03:
    # 40003 demand period = 60.0 (float32 0x42700000), then one register alone.
    port, master, meter, ctl = connect(meter_sim, retries=0)
    master.write_registers(1, 0x0002, [0x4270, 0x0000])
    assert bytes(master.read_holding(1, 0x0002, 2)) == b"\x42\x70\x00\x00"
    master.write_register(1, 0x0010, 5)
    assert bytes(master.read_holding(1, 0x0010, 1)) == b"\x00\x05"
    exc = raises(ModbusException, master.write_registers, 1, 0x2F, [1, 2])   # past the block
    assert exc.code == 2
    ctl.close()
    port.close()


def test_a_read_allocates_nothing_on_32_bit(meter_sims):
    # On the ESP32 (and the 32-bit build the suite runs on) a small integer has 31 bits: a
    # float32 or u32 register decoded naively is a big integer on the heap every read. With
    # the collector off, many reads of every model, idle and charging, allocate nothing.
    from support.fwtest import is_micropython
    if not is_micropython():
        return                                   # CPython has no gc.mem_alloc
    import gc
    for model, sim in meter_sims.items():
        port, master, meter, ctl = connect(sim)
        for energy, current in ((1234567, 0), (98765432, 31000)):
            ctl.set_energy_wh(energy)
            ctl.set_current_ma(current)
            ctl.set_power_w(current * 690 // 1000)
            meter.read()
            meter.read_energy_wh()
            gc.collect()
            gc.disable()
            try:
                before = gc.mem_alloc()
                for _ in range(20):
                    meter.read()
                    meter.read_energy_wh()
                used = gc.mem_alloc() - before
            finally:
                gc.enable()
            assert used == 0, (model, energy, used)
            assert meter.reading.energy_wh > 0
        ctl.close()
        port.close()
