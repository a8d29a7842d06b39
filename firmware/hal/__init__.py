# hal: the hardware layer. esp32*.py use machine; sim.py and serial_posix.py serve the host.
