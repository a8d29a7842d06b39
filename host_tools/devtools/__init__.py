"""Developer tooling: bootstrap, the mpy-cross build, the MicroPython runner, table generation.
mp/ holds host code that runs inside MicroPython (the test runner, bench workloads)."""
