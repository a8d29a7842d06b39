# Both hals against the one declaration of the board's device set (hal/contract.py): the
# simulated devices as app/simulated.py wires them, and the ESP32's as hal/esp32.py wires them
# on the `machine` stand-in (tests/firmware/support/machine_stub.py).
import sys

from support import machine_stub as m
from app.board import load_board
from hal import contract


def test_the_check_finds_what_a_device_lacks():
    class Half:
        def on(self):
            pass
    assert sorted(contract.problems({})) == ["clock", "feedback", "pilot_adc", "pilot_pwm",
                                             "relay", "uart", "urandom", "watchdog"]
    assert "relay.off()" in contract.problems({"relay": Half()})
    assert "urandom()" in contract.problems({"urandom": 4})
    assert contract.class_problems("uart", Half) == [
        "uart.write()", "uart.readinto()", "uart.drain_input()", "uart.close()"]
    assert contract.problems({"rcd_test": None}) == contract.problems({})   # optional: absent


def test_simulated_devices_meet_the_contract(charger_env):
    from app.simulated import sim_hardware
    board = load_board(charger_env["board"])          # a board with RCD and RFID reader
    assert board.rcd_fault is not None and board.rfid_driver is not None
    meter = charger_env["meter"]
    hw = sim_hardware(board, meter["port"], meter["baud"])
    try:
        assert hw["rcd_fault"] is not None and hw["rfid_spi"] is not None
        assert contract.problems(hw) == []
    finally:
        hw["uart"].close()


def test_esp32_devices_meet_the_contract(charger_env):
    m.reset()
    sys.modules["machine"] = m
    for name in ("hal.esp32", "hal.esp32_uart", "hal.esp32_spi"):
        sys.modules.pop(name, None)
    try:
        from hal import esp32, esp32_uart
        board = load_board(charger_env["board"])
        hw = esp32.devices(board)                     # as app/main.py wires the board
        hw["clock"] = esp32.Clock()
        hw["urandom"] = esp32.urandom
        hw["watchdog"] = esp32.Watchdog(8000)
        assert hw["rcd_fault"] is not None and hw["rfid_spi"] is not None
        assert contract.problems(hw, made_elsewhere=("uart",)) == []
        # The UART needs the port's select.poll on a real UART: checked as a class.
        assert contract.class_problems("uart", esp32_uart.Esp32Uart) == []
    finally:
        for name in ("machine", "hal.esp32", "hal.esp32_uart", "hal.esp32_spi"):
            sys.modules.pop(name, None)
