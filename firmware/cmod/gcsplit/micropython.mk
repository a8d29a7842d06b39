# gcsplit (gcsplit.c): a poll between a collection's mark and its sweep. Built into the
# 32-bit unix port by host_tools/devtools/mp32.py; the board's image: micropython.cmake.
GCSPLIT_MOD_DIR := $(USERMOD_DIR)
SRC_USERMOD_C += $(GCSPLIT_MOD_DIR)/gcsplit.c
