# drivers: Modbus RTU and meters, contactor, control pilot, residual-current monitor.
