# What app/board.py (the loaded board) and app/board_check.py (the checks, imported only while
# a board file loads) share, so neither imports the other: the pin roles and the error.

# Pins that drive something (must be able to output) and pins that are read.
OUTPUT_PINS = ("rs485.tx", "rs485.de", "contactor.relay", "pilot.pwm", "rcd.test",
               "rfid.sck", "rfid.mosi", "rfid.cs", "rfid.rst")
INPUT_PINS = ("rs485.rx", "contactor.feedback", "pilot.adc", "rcd.fault", "rfid.miso")


class BoardError(ValueError):
    pass
