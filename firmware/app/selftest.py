# Bring-up self-test of a board's pilot and contactor hardware, for the bench (no EV plugged,
# contactor unloaded). The same code runs against hal.esp32 on the board and hal.sim on the host.
#
#   results = run(hw, clock, settle_ms, switch_contactor=False)
#       hw: {"pilot_pwm", "pilot_adc", "relay", "feedback"[, "rcd_fault", "rcd_test"]} as
#       hal.esp32.devices(board) makes
#       -> [(name, ok, detail), ...]
#   run_on_board("/board.json", switch_contactor=False)   on the ESP32: prints one JSON line
#
# Pilot: steady +12 V must read state A; steady -12 V must read -12 V (negative rail and driver);
# PWM at 10 %, 50 % and 90 % must show +12 V and -12 V phases, which also proves that the ADC
# burst catches 100 us phases (high at 10 %, low at 90 %) on this board. Not 96 %: one
# ADC.read_uv() takes tens of us on the ESP32, so its 40 us low phase fits less than one read
# and a burst that runs in step with the PWM can miss it on good hardware.
# Contactor: the auxiliary contact must read open at rest; with switch_contactor=True the coil
# is pulsed and the pick-up and drop-out times are measured against the board's settle_ms.
# Residual current monitor (if the board has one): its self-test must trip and clear.
from drivers.pilot import classify
from drivers.rcd import ResidualCurrent, RcdFault

_DUTIES = (100, 500, 900)
_LINE_SETTLE_MS = 20          # let the pilot driver's output and the ADC filter settle


def _levels(pwm, adc, clock, duty):
    pwm.set_duty(duty)
    clock.sleep_ms(_LINE_SETTLE_MS)
    adc.measure()
    return adc.high_mv, adc.low_mv


def check_pilot(pwm, adc, clock):
    out = []
    try:
        h, lo = _levels(pwm, adc, clock, 1000)
        out.append(("pilot +12 V steady reads A", classify(h) == "A",
                    "high %d mV (A band 11000..13000; unplug any EV)" % h))
        h, lo = _levels(pwm, adc, clock, 0)
        out.append(("pilot -12 V steady", classify(h) == "F" and classify(lo) == "F",
                    "high %d mV, low %d mV (F band -13000..-11000)" % (h, lo)))
        for duty in _DUTIES:
            h, lo = _levels(pwm, adc, clock, duty)
            out.append(("pilot PWM %d.%d %% shows both phases" % (duty // 10, duty % 10),
                        classify(h) == "A" and classify(lo) == "F",
                        "high %d mV, low %d mV%s" % (h, lo, _burst(adc))))
    finally:
        pwm.set_duty(1000)
    return out


def _burst(adc):
    us = getattr(adc, "burst_us", 0)
    return ", ADC burst %d us" % us if us else ""


def _wait_feedback(feedback, clock, want, limit_ms):
    """ms until the feedback reads want (polled every ms), or None after limit_ms."""
    t0 = clock.ticks_ms()
    while True:
        waited = clock.ticks_diff(clock.ticks_ms(), t0)
        if feedback.value() == want:
            return waited
        if waited >= limit_ms:
            return None
        clock.sleep_ms(1)


def check_contactor(relay, feedback, clock, settle_ms, switch=False):
    relay.off()
    at_rest = feedback.value()
    out = [("contactor open at rest", at_rest == 0,
            "feedback reads %s with the coil off" % ("closed" if at_rest else "open"))]
    if not switch or at_rest:
        return out
    limit = settle_ms * 5
    try:
        relay.on()
        t_close = _wait_feedback(feedback, clock, 1, limit)
    finally:
        relay.off()
    t_open = _wait_feedback(feedback, clock, 0, limit)
    out.append(("contactor closes within settle_ms", t_close is not None and t_close <= settle_ms,
                "pick-up %s ms (settle_ms %d)" % (_ms(t_close, limit), settle_ms)))
    out.append(("contactor opens within settle_ms", t_open is not None and t_open <= settle_ms,
                "drop-out %s ms (settle_ms %d)" % (_ms(t_open, limit), settle_ms)))
    return out


def _ms(t, limit):
    return "%d" % t if t is not None else "> %d" % limit


def check_rcd(fault_in, test_out, clock, trip_ms):
    try:
        ResidualCurrent(fault_in, test_out, clock, trip_ms).self_test()
    except RcdFault as exc:
        return [("residual current monitor self-test", False, exc.reason)]
    return [("residual current monitor self-test", True,
             "trips on test and clears" if test_out is not None else "healthy (no test input)")]


def run(hw, clock, settle_ms, switch_contactor=False, rcd_trip_ms=100):
    out = check_contactor(hw["relay"], hw["feedback"], clock, settle_ms, switch_contactor)
    if hw.get("rcd_fault") is not None:
        out += check_rcd(hw["rcd_fault"], hw.get("rcd_test"), clock, rcd_trip_ms)
    return out + check_pilot(hw["pilot_pwm"], hw["pilot_adc"], clock)


def run_on_board(board_path="/board.json", switch_contactor=False):
    """On the ESP32 (mpremote exec): test the board's hardware, print one JSON line."""
    import json
    from app.board import load_board
    from hal import esp32
    board = load_board(board_path)
    hw = esp32.devices(board)
    results = run(hw, esp32.Clock(), board.contactor_settle_ms, switch_contactor,
                  board.rcd_trip_ms or 100)
    print("SELFTEST " + json.dumps({"board": board.name, "results": [
        {"check": n, "ok": ok, "detail": d} for n, ok, d in results]}))
