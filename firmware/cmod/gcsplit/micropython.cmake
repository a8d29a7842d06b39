# gcsplit (gcsplit.c) for the ESP32 image (ESP-IDF's cmake build, USER_C_MODULES).
add_library(usermod_gcsplit INTERFACE)
target_sources(usermod_gcsplit INTERFACE ${CMAKE_CURRENT_LIST_DIR}/gcsplit.c)
target_include_directories(usermod_gcsplit INTERFACE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(usermod INTERFACE usermod_gcsplit)
