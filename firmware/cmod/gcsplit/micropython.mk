# gcsplit (gcsplit.c): polls in the middle of a collection. Built into the 32-bit unix port by
# host_tools/devtools/mp32.py; the board's image: micropython.cmake.
GCSPLIT_MOD_DIR := $(USERMOD_DIR)
SRC_USERMOD_C += $(GCSPLIT_MOD_DIR)/gcsplit.c
# The collector's loop hook (gcsplit_hook.h) for the slices: py.mk adds CFLAGS_USERMOD to every
# C file of the image, py/gc.c among them.
CFLAGS_USERMOD += -include $(GCSPLIT_MOD_DIR)/gcsplit_hook.h
