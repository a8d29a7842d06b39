"""Putting chargers into service: deploy over mpremote, provisioning, signed operator
commands, the hardware self-test on the bench, the board-file linter."""
