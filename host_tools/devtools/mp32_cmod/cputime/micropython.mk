# The bench's thread CPU clock (cputime.c), built into the 32-bit unix port by
# host_tools/devtools/mp32.py as a USER_C_MODULES module.
CPUTIME_MOD_DIR := $(USERMOD_DIR)
SRC_USERMOD_C += $(CPUTIME_MOD_DIR)/cputime.c
