# Freezes the ChargeProof firmware into an ESP32 MicroPython image, so its bytecode stays in
# flash and the heap is left for data:
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/firmware/manifest.py
# umqtt.simple comes from micropython-lib; main.py stays a file on the board's flash.
include("$(PORT_DIR)/boards/manifest.py")
require("umqtt.simple")

# The ESP32's hardware layer only: the simulated devices and the POSIX serial port stay out.
package("hal", files=("__init__.py", "clock.py", "compat.py", "esp32.py", "esp32_uart.py",
                      "esp32_spi.py", "pilot_levels.py", "net.py"))
for layer in ("store", "drivers", "ledger", "session", "uplink"):
    package(layer)
package("app", files=("__init__.py", "board.py", "board_check.py", "board_schema.py", "config.py",
                      "records.py", "safety.py", "charger_app.py", "tariffs.py", "main.py", "selftest.py",
                      "update.py", "ota.py"))
