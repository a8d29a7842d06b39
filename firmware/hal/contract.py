# The board's device set, declared once: what every hal provides to the layers above, by name
# (the keys of the hw dict app/charger_app.py takes). hal/esp32.py builds them on the board,
# hal/sim.py and app/simulated.py in simulation; tests/firmware/hal/test_contract.py checks
# both against this table. Not frozen into the board image: the table is for checking.
#
# name: (required, methods, attributes). Units and meanings:
DEVICES = {
    # time() -> int Unix s; status() -> "S" synchronised / "U" unknown (OCMF TM);
    # ticks_ms() -> ms, wrapping (hal/clock.py); ticks_add(t, ms); ticks_diff(a, b) -> a - b
    # in ms, wrap-safe; sleep_ms(ms)
    "clock": (True, ("time", "status", "ticks_ms", "ticks_add", "ticks_diff", "sleep_ms"), ()),
    # contactor coil, an output pin: on(), off(), value([v]) logical (1 = energised)
    "relay": (True, ("on", "off", "value"), ()),
    # contactor auxiliary contact, an input pin: value() 1 = main contacts closed
    "feedback": (True, ("value",), ()),
    # pilot PWM: set_duty(per mille 0..1000; 1000 = +12 V steady, 0 = -12 V), duty() -> per mille
    "pilot_pwm": (True, ("set_duty", "duty"), ()),
    # pilot ADC: measure() samples the line, leaving its levels in high_mv / low_mv (int mV at
    # the pilot line, -12000..12000), no allocation per call
    "pilot_adc": (True, ("measure",), ("high_mv", "low_mv")),
    # RS-485 UART to the meter: write(buf), readinto(buf, nbytes, timeout_ms) -> bytes read,
    # drain_input(), close(); baudrate (bit/s: the Modbus master derives t3.5 from it)
    "uart": (True, ("write", "readinto", "drain_input", "close"), ("baudrate",)),
    # the RNG: urandom(n) -> n bytes (the hardware RNG on the board)
    "urandom": (True, (), ()),
    # watchdog: feed() within its timeout (ms, set when it is made) or the board resets
    "watchdog": (True, ("feed",), ()),
    # residual-current monitor (boards with an "rcd" section): its fault output, an input pin
    # (value() 1 = tripped), and its test input, an output pin (None if it tests itself)
    "rcd_fault": (False, ("value",), ()),
    "rcd_test": (False, ("on", "off", "value"), ()),
    # RFID reader's SPI device (boards with an "rfid" section): transfer(tx, rx), equal
    # lengths, chip select held for the whole transfer
    "rfid_spi": (False, ("transfer",), ()),
    # reset(): a hard reset, after an update's switch or a trial's rollback (app/ota.py);
    # absent: the charger keeps running the old version until it is power-cycled
    "reset": (False, (), ()),
}


def problems(hw, made_elsewhere=()):
    """What hw (a dict of devices) lacks against DEVICES, as "name.member" strings; [] if
    it provides the whole set. Optional devices are checked when present (None = absent);
    made_elsewhere: names not in hw that the caller checks as classes (class_problems)."""
    out = []
    for name in DEVICES:
        required, methods, attributes = DEVICES[name]
        dev = hw.get(name)
        if dev is None:
            if required and name not in made_elsewhere:
                out.append(name)
            continue
        if not methods and not attributes and not callable(dev):
            out.append(name + "()")
        for m in methods:
            if not callable(getattr(dev, m, None)):
                out.append(name + "." + m + "()")
        for a in attributes:
            if not hasattr(dev, a):
                out.append(name + "." + a)
    return out


def class_problems(name, cls):
    """The methods of device name that class cls lacks (for a device that cannot be made
    off the board, such as the ESP32's UART)."""
    return [name + "." + m + "()" for m in DEVICES[name][1] if not callable(getattr(cls, m, None))]
