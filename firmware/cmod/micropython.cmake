# The firmware's C modules, for the board's image: make esp32-image passes this file to the
# ESP32 port as USER_C_MODULES (host_tools/devtools/esp32_image.sh).
include(${CMAKE_CURRENT_LIST_DIR}/gcsplit/micropython.cmake)
