# app: boot, wiring, the main loop, watchdog. Imports every layer below.
