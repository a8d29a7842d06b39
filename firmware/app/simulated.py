# Simulated hardware for a whole charger: the hal.sim devices plus the POSIX serial port that
# reaches a meter served by pymodbus (host_tools/sim/meter.py). Used by the firmware tests and
# the fleet simulator, on the MicroPython unix port and on CPython.
from hal import sim
from hal.serial_posix import SerialPort


def sim_hardware(board, meter_port, baud, clock=None, ev=None):
    """The hw dict app.charger_app.ChargerApp takes; the EV and relay are in it to drive."""
    clock = clock or sim.SimClock()
    relay = sim.SimRelay(clock)
    pilot = sim.SimPilot(ev or sim.SimEV())
    hw = {
        "clock": clock, "relay": relay, "feedback": relay.feedback,
        "pilot_pwm": pilot, "pilot_adc": pilot, "ev": pilot.ev,
        "uart": SerialPort(meter_port, baud), "urandom": sim.urandom,
        "watchdog": sim.SimWatchdog(clock),
    }
    if board.rfid_driver is not None:
        from hal.sim_mfrc522 import SimMFRC522
        chip = SimMFRC522()             # hw["rfid"]: the chip, to put cards in its field
        hw.update(rfid=chip, rfid_spi=chip)
    if board.rcd_fault is not None:
        rcd = sim.SimRcd()
        hw.update(rcd=rcd, rcd_fault=rcd.fault_out, rcd_test=rcd.test)
    return hw
