"""Fuzzing every parser that takes bytes from outside (issue 8 item 6).

  python -m host_tools.fuzz [--inputs N] [--seed S] [--only NAME]      (`make fuzz`)

Host parsers (the validator's receipt and checkpoint handling, OCMF, the light client's
bundle, the CLI's file inputs) run under hypothesis (host.py). Firmware parsers (Modbus reply
frames, operator commands, acks, tariffs, board and config files) run in ONE MicroPython
process (device.py feeds it batches that mutate.py generated on CPython from genuine seeds,
host_tools/devtools/mp/fuzz_run.py runs them). The contract for every parser: it returns, or
raises its own declared error; anything else (and any input slower than SLOW_MS) is a failure.
An input slower than SLOW_MS is timed once more and the faster run counts (a shared machine's
scheduler, not the parser, makes most single slow runs).
Rows: fuzz_inputs_<parser>, fuzz_inputs_per_parser_min, fuzz_failures, fuzz_slowest_ms.
"""
SLOW_MS = 100.0
