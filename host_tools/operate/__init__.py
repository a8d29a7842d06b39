"""Running a fleet: what an operator runs beside the validators (Home Assistant discovery,
and the services that steer chargers with signed commands)."""
