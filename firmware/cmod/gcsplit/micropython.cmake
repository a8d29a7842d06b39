# gcsplit (gcsplit.c) for the ESP32 image (ESP-IDF's cmake build, USER_C_MODULES).
add_library(usermod_gcsplit INTERFACE)
target_sources(usermod_gcsplit INTERFACE ${CMAKE_CURRENT_LIST_DIR}/gcsplit.c)
target_include_directories(usermod_gcsplit INTERFACE ${CMAKE_CURRENT_LIST_DIR})
# The collector's loop hook (gcsplit_hook.h) for the slices: an interface option of usermod
# reaches every source of the target that links it, py/gc.c among them. esp32_image.sh checks
# that it did (compile_commands.json); without it slices are off (gcsplit.hooked() is False).
target_compile_options(usermod_gcsplit INTERFACE "SHELL:-include ${CMAKE_CURRENT_LIST_DIR}/gcsplit_hook.h")
target_link_libraries(usermod INTERFACE usermod_gcsplit)
