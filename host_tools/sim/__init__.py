"""Simulated surroundings for chargers: a pymodbus meter, brokers, network faults,
protocol-level simulated chargers, the fleet of firmware processes."""
