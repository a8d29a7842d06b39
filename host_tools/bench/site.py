"""Smart charging bench: `site_limit_overshoot_max_a`, the most the 8 chargers of a simulated
site ever drew over their 32 A feeder in a whole day under a solar curve (host_tools/sim/site.py,
the real SiteController); `limit_fallback_ms`, how long after a site controller's limit lease
ran out the firmware's pilot offered the safe current (CPython, the firmware on simulated
hardware, 20 ms loop passes as on the board)."""
import tempfile

from host_tools.sim.site import simulate


def _fallback_ms():
    from host_tools.paths import DEFAULT_BOARD, firmware_on_path
    from host_tools.sim import meter as meter_sim
    firmware_on_path()
    from app import config
    from app.board import load_board
    from app.charger_app import ChargerApp
    from app.simulated import sim_hardware
    from hal.meterctl import MeterControl
    proc, info = meter_sim.spawn()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            board = load_board(str(DEFAULT_BOARD))
            cfg = config.load(board, None, {"charger_id": "CP-BENCH", "meter_serial": "S",
                                            "data_dir": tmp, "auth_mode": "free",
                                            "mqtt_host": None, "fallback_current_ma": 6000})
            hw = sim_hardware(board, info["port"], info["baud"])
            meter = MeterControl(info["control"])
            app, clock = ChargerApp(board, cfg, hw), hw["clock"]
            hw["ev"].set_state("B")
            for _ in range(150):
                clock.advance(20)
                app.step()
            hw["ev"].set_state("C")
            for _ in range(150):
                clock.advance(20)
                app.step()
            clock.advance(7)                # expiry falls between two 20 ms passes
            app.charger.set_current_limit(16000, ttl_s=2)
            expires = clock.ticks_add(clock.ticks_ms(), 2000)
            while app.charger.pilot.offered_ma() > 6000:
                clock.advance(20)
                app.step()
            meter.close()
            hw["uart"].close()
            return clock.ticks_diff(clock.ticks_ms(), expires)
    finally:
        meter_sim.stop(proc)


def run():
    day = simulate(seconds=86400, chargers=8, feeder_a=32, mode="solar", peak_w=40000)
    return {"site_limit_overshoot_max_a": day["overshoot_max_a"],
            "site_energy_kwh_per_day": day["energy_kwh"],
            "site_commands_per_day": day["commands"],
            "limit_fallback_ms": _fallback_ms()}
