# ESP32 entry point: load the board and configuration, build the charger, run the loop.
# A bad board or config file stops here with a message naming the field (contactor never
# energised). Copied to the board as /main.py by host_tools/provision/deploy.py (mpremote).
import gc

# Collect often while the firmware is imported and the charger built: what is made then lives
# for the whole run and packs low (app/charger_app.py, BOOT_GC_BYTES; the app sets its own
# threshold once built).
gc.threshold(2048)

import sys  # noqa: E402
import time  # noqa: E402

from app import BOOT_ONLY, forget  # noqa: E402
from app.charger_app import ChargerApp  # noqa: E402
from store import bootsel  # noqa: E402

OTA_ROOT = "/ota"


def run(board_path="/board.json", config_path="/config.json"):
    from hal import esp32, esp32_uart
    from app import config                  # boot only: forgotten once the charger is built
    from app.board import BoardError, load_board
    try:
        board = load_board(board_path)
        cfg = config.load(board, config_path)
        cfg["ota_root"] = OTA_ROOT
        cfg["firmware_version"] = bootsel.active(OTA_ROOT)[1]
    except (BoardError, config.ConfigError) as exc:
        print("boot refused:", exc)
        return
    hw = esp32.devices(board)       # contactor coil off and pilot at +12 V before anything else
    # The radio before the key: os.urandom is a true RNG only while WiFi runs (hal.esp32.urandom
    # switches it on itself too, whoever draws first).
    net = esp32.Network(cfg["wifi_ssid"], cfg["wifi_password"])
    hw["clock"] = esp32.Clock()
    hw["urandom"] = esp32.urandom
    hw["watchdog"] = esp32.Watchdog(cfg["watchdog_ms"])
    hw["reset"] = esp32.reset       # after an update's switch (app/ota.py)
    hw["uart"] = esp32_uart.Esp32Uart(board.rs485_uart, board.rs485_tx, board.rs485_rx,
                                      board.rs485_de, board.rs485_baud, board.rs485_parity,
                                      board.rs485_stop_bits)
    try:
        app = ChargerApp(board, cfg, hw)
    except Exception as exc:
        if bootsel.on_trial(OTA_ROOT):     # a new version that cannot build: back to the old one
            bootsel.rollback(OTA_ROOT)
            esp32.reset()
        # Flash that cannot be read as it must (a damaged log or key) must not become a boot
        # loop: contactor off, watchdog fed, the reason repeated for whoever connects.
        hw["relay"].off()
        while True:
            print("charger halted:", repr(exc))
            for _ in range(60):
                hw["watchdog"].feed()
                time.sleep_ms(1000)
    del config, load_board, BoardError
    forget(*BOOT_ONLY)              # their functions and dicts: heap the charger needs later
    print("charger", cfg["charger_id"], "key", app.public_key_hex())
    net.connect()                   # once; later only when the station is idle or gave up
    loop(app, net, hw["clock"], hw["watchdog"], cfg)


def loop(app, net, clock, watchdog, cfg):
    """The main loop: a pass of the app, WiFi/NTP while no energy flows, the pause."""

    def net_idle():                 # between the slices of a DNS or NTP wait
        app.charger.safety_poll()
        watchdog.feed()
    next_sync = clock.ticks_ms()
    # An update on trial confirms itself (or rolls back) inside app.step(): app/ota.py.
    while True:
        try:
            app.step()
        except Exception as exc:     # fail safe: the fault path opens, records and closes
            app.charger.contactor.open()
            sys.print_exception(exc)
            try:
                app.charger.fail("loop", repr(exc))
            except Exception as exc2:
                sys.print_exception(exc2)
        # WiFi and NTP while no energy can flow: DNS and NTP waits are bounded (1.5 s each)
        # and feed the watchdog every few ms; nothing is sent while the station is offline.
        if not app.charger.contactor.closed and clock.ticks_diff(clock.ticks_ms(), next_sync) >= 0:
            try:
                net.connect()
                ok = net.sync_clock(clock, cfg["ntp_host"], net_idle)
            except Exception as exc:
                sys.print_exception(exc)
                ok = False
            next_sync = clock.ticks_add(clock.ticks_ms(), 3600000 if ok else 60000)
        # The loop's pause, in slices with the safety watch between them.
        left = cfg["loop_ms"]
        while left > 0:
            time.sleep_ms(5 if left > 5 else left)
            left -= 5
            app.safety()


if __name__ == "__main__":
    run()
