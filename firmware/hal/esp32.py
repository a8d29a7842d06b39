# The ESP32 hardware behind the hal interfaces (the device set is declared in hal/contract.py;
# hal/sim.py has the simulated twins). With hal/esp32_uart.py and hal/esp32_spi.py the only
# firmware modules that import machine.
# Written against MicroPython >= 1.20's ESP32 port (machine.PWM(duty_u16=), ADC.read_uv(),
# ADC(atten=)); the UART with the RS-485 direction pin is hal/esp32_uart.py.
#
#   OutputPin(gpio, active_low=False)        on(), off(), value([v]); starts inactive
#   InputPin(gpio, active_low=False, pull="none"|"up"|"down")   value()
#   PilotPWM(gpio, inverted=False)           set_duty(permille 0..1000), duty()
#   PilotADC(gpio, mv_at_plus12, mv_at_minus12, samples=64)   measure() -> .high_mv/.low_mv
#   Watchdog(timeout_ms)                     feed()
#   Clock()                                  time(), status(), set_time(epoch), ticks_*, sleep_ms
#   urandom(n)                               the hardware RNG (os.urandom)
#   devices(board)                           the above, wired as a validated app.board.Board says
import os
import time

import machine

from hal import net
from hal.clock import RealClock, ticks_diff, ticks_ms, ticks_us
from hal.pilot_levels import levels

_PILOT_HZ = 1000            # IEC 61851-1 Annex A: 1 kHz pilot oscillator
_EPOCH_2000 = 946684800     # 2000-01-01 in Unix seconds


class HalError(ValueError):
    """A bad argument to the ESP32 hal (nothing was changed)."""


class OutputPin:
    """A push-pull output with a logical level (1 = active), set inactive from the start so a
    relay cannot pulse while the firmware boots."""

    def __init__(self, gpio, active_low=False):
        self._inv = 1 if active_low else 0
        self._v = 0
        self._pin = machine.Pin(gpio, machine.Pin.OUT, value=self._inv)

    def on(self):
        self._v = 1
        self._pin.value(1 ^ self._inv)

    def off(self):
        self._v = 0
        self._pin.value(self._inv)

    def value(self, v=None):
        if v is None:
            return self._v
        if v:
            self.on()
        else:
            self.off()
        return None


class InputPin:
    """A digital input with a logical level (1 = active)."""

    def __init__(self, gpio, active_low=False, pull="none"):
        P = machine.Pin
        if pull == "up":
            p = P.PULL_UP
        elif pull == "down":
            p = P.PULL_DOWN
        elif pull == "none":
            p = None
        else:
            raise HalError("pull must be up, down or none, not %r" % (pull,))
        self._inv = 1 if active_low else 0
        self._pin = P(gpio, P.IN, p)

    def value(self):
        return self._pin.value() ^ self._inv


class PilotPWM:
    """The 1 kHz pilot oscillator. duty is per mille of the +12 V phase at the pilot (after an
    inverting driver when inverted=True). 1000 and 0 are steady levels driven as a plain GPIO:
    no PWM runs, so the line is exactly +12 V (state A/B without current offer) or -12 V
    (state F), whatever the PWM peripheral does at its extremes."""

    def __init__(self, gpio, inverted=False):
        self._gpio = gpio
        self._inv = 1 if inverted else 0
        self._pwm = None
        self._duty = -1
        self.set_duty(1000)

    def set_duty(self, permille):
        if not isinstance(permille, int) or permille < 0 or permille > 1000:
            raise HalError("duty %r outside 0..1000 per mille" % (permille,))
        if permille == self._duty:
            return
        if permille == 0 or permille == 1000:
            if self._pwm is not None:
                self._pwm.deinit()
                self._pwm = None
            level = (1 if permille == 1000 else 0) ^ self._inv
            # Re-creating the Pin returns the pad from the LEDC to the GPIO matrix.
            machine.Pin(self._gpio, machine.Pin.OUT, value=level)
        else:
            u16 = (permille * 65535 + 500) // 1000
            if self._inv:
                u16 = 65535 - u16
            if self._pwm is None:
                self._pwm = machine.PWM(machine.Pin(self._gpio), freq=_PILOT_HZ, duty_u16=u16)
            else:
                self._pwm.duty_u16(u16)
        self._duty = permille

    def duty(self):
        return self._duty


class PilotADC:
    """Pilot voltage through the board's divider/offset network into an ADC1 pin, at 11 dB
    attenuation (usable ~150..2450 mV on the ESP32). read_uv() applies the chip's eFuse
    calibration. A burst of samples gives the high and the low level (hal/pilot_levels.py);
    the board's two calibration points turn ADC mV into pilot mV."""

    def __init__(self, gpio, mv_at_plus12, mv_at_minus12, samples=64):
        if samples < 8 or samples > 256:     # 256 x 3.1e6 uV stays a small int on 32 bits
            raise HalError("samples %r outside 8..256" % (samples,))
        if abs(mv_at_plus12 - mv_at_minus12) < 1000:
            raise HalError("pilot ADC calibration points too close")
        import array
        self._adc = machine.ADC(machine.Pin(gpio), atten=machine.ADC.ATTN_11DB)
        # Bound once: loading a method makes a bound-method object, and a burst runs in every
        # safety poll, one of them inside each collection where nothing may be allocated.
        self._read_uv = self._adc.read_uv
        self._buf = array.array("i", [0] * samples)
        self._out = array.array("i", [0, 0])
        self._n = samples
        self._m_uv = mv_at_minus12 * 1000
        self._span_mv = mv_at_plus12 - mv_at_minus12
        # Below 2 V of pilot swing the line is steady (the smallest real swing, state D
        # without diode, is 6 V); expressed in uV at the ADC pin.
        self._steady_uv = abs(self._span_mv) * 2000 * 1000 // 24000
        self.high_mv = 0
        self.low_mv = 0
        self.burst_us = 0       # duration of the last burst: burst_us / samples = read time

    def _pilot_mv(self, uv):
        # -12 V + (uv - uv(-12 V)) * 24 V / (uv(+12 V) - uv(-12 V)), in mV.
        return -12000 + (uv - self._m_uv) * 24 // self._span_mv

    def measure(self):
        read_uv = self._read_uv
        buf = self._buf
        t0 = ticks_us()
        for i in range(self._n):
            buf[i] = read_uv()
        self.burst_us = ticks_diff(ticks_us(), t0)
        out = self._out
        levels(buf, self._n, self._steady_uv, out)
        a = self._pilot_mv(out[0])
        b = self._pilot_mv(out[1])
        # An inverting front end (calibration slope < 0) swaps which ADC level is the high one.
        if a >= b:
            self.high_mv = a
            self.low_mv = b
        else:
            self.high_mv = b
            self.low_mv = a


class Watchdog:
    """machine.WDT: once started it cannot be stopped; feed() within timeout_ms or reset."""

    def __init__(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def feed(self):
        self._wdt.feed()


class Clock(RealClock):
    """Wall clock from the RTC (Unix seconds, whichever epoch the port uses) and the port's
    ticks (hal/clock.py). status() is "U" (unknown) until set_time() is called with a
    synchronised time (NTP)."""

    def __init__(self):
        RealClock.__init__(self, "U")
        self._offset = _EPOCH_2000 if time.gmtime(0)[0] == 2000 else 0

    def time(self):
        return time.time() + self._offset

    def set_time(self, epoch, status="S"):
        t = time.gmtime(epoch - self._offset)
        # RTC.datetime: (year, month, day, weekday, hours, minutes, seconds, subseconds)
        machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
        self._status = status

    def mark_synced(self):
        """After ntptime.settime() (which sets the RTC itself)."""
        self._status = "S"


def radio_on():
    """The WiFi station interface, switched on. os.urandom is esp_random(), a true RNG only
    while the WiFi/BT radio runs (before that it is pseudo-random, the same on every boot)."""
    import network
    wlan = network.WLAN(network.STA_IF)
    if not wlan.active():
        wlan.active(True)
    return wlan


def urandom(n):
    # The radio goes on before the first byte is drawn, whoever asks first (the key on first
    # boot, signature blinding, nonces): no caller can get the weak pre-radio RNG.
    radio_on()
    return os.urandom(n)


def devices(board):
    """The board's contactor and pilot hardware: {"relay", "feedback", "pilot_pwm",
    "pilot_adc"}, plus "rcd_fault" and "rcd_test" (None without a test pin) when the board has
    a residual current monitor, and "rfid_spi" when it has an RFID reader; board is a validated
    app.board.Board (passed in, not imported)."""
    hw = {
        "relay": OutputPin(board.contactor_relay, board.contactor_relay_active_low),
        "feedback": InputPin(board.contactor_feedback, board.contactor_feedback_active_low,
                             board.contactor_feedback_pull),
        "pilot_pwm": PilotPWM(board.pilot_pwm, board.pilot_pwm_inverted),
        "pilot_adc": PilotADC(board.pilot_adc, board.pilot_adc_mv_at_plus12,
                              board.pilot_adc_mv_at_minus12),
    }
    if board.rcd_fault is not None:
        hw["rcd_fault"] = InputPin(board.rcd_fault, board.rcd_fault_active_low,
                                   board.rcd_fault_pull)
        hw["rcd_test"] = None if board.rcd_test is None else OutputPin(
            board.rcd_test, board.rcd_test_active_low)
    if board.rfid_driver is not None:
        from hal.esp32_spi import Esp32Spi
        hw["rfid_spi"] = Esp32Spi(board.rfid_spi, board.rfid_sck, board.rfid_mosi,
                                  board.rfid_miso, board.rfid_cs, board.rfid_baud, board.rfid_rst)
    return hw


class Network:
    """WiFi station and the clock's time source, never blocking past a bound.

    connect() starts the association and is not repeated while the station is connecting
    (the port raises "Wifi Internal Error" on 1.25+, and retries by itself after a drop): it
    is called again only when the station is idle or has given up, at most every retry_ms.
    sync_clock() asks NTP only when connected, resolves the host with a bounded DNS query of
    its own (getaddrinfo has no timeout on the ESP32) and keeps the address for resolve_ms;
    both waits call idle() every few ms (watchdog, safety poll)."""

    def __init__(self, ssid, password, retry_ms=60000, timeout_ms=1500,
                 resolve_ms=86400000, dns_port=None, ntp_port=None):
        import network
        self._network = network
        self._wlan = radio_on()
        self.ssid = ssid
        self.password = password
        self.retry_ms = retry_ms
        self.timeout_ms = timeout_ms
        self.resolve_ms = resolve_ms
        self.dns_port = dns_port or net.DNS_PORT
        self.ntp_port = ntp_port or net.NTP_PORT
        self.last_error = None
        self._connect_at = None       # ticks of the last connect() call
        self._ntp = None              # (host, ip, ticks resolved)

    def connect(self):
        """Start joining the network if the station is neither connected nor connecting;
        True if connect() was called."""
        if not self.ssid:
            return False
        n = self._network
        st = self._wlan.status()
        if st == n.STAT_CONNECTING or st == n.STAT_GOT_IP:
            return False
        now = ticks_ms()
        if self._connect_at is not None and ticks_diff(now, self._connect_at) < self.retry_ms:
            return False
        self._connect_at = now
        try:
            self._wlan.connect(self.ssid, self.password)
        except OSError as exc:      # the port's own retry started in between: keep polling
            self.last_error = repr(exc)
            return False
        return True

    def connected(self):
        return self._wlan.isconnected()

    def sync_clock(self, clock, host="pool.ntp.org", idle=None):
        """Set the clock from an NTP server (bounded, idle() between slices); True when
        synchronised. Nothing is sent while the station is not connected."""
        if not self.connected():
            return False
        ip = self._ntp_ip(host, idle)
        if ip is None:
            return False
        nonce = urandom(8)
        reply = net.udp_exchange(ip, self.ntp_port, net.sntp_request(nonce), self.timeout_ms,
                                 idle)
        secs = net.sntp_seconds(reply, nonce)
        if secs is None:
            self._ntp = None            # ask DNS again next time: the server may have moved
            return False
        clock.set_time(secs)
        return True

    def _ntp_ip(self, host, idle):
        c = self._ntp
        if c is not None and c[0] == host and ticks_diff(ticks_ms(), c[2]) < self.resolve_ms:
            return c[1]
        if net.is_ip(host):
            ip = host
        else:
            dns = self._wlan.ifconfig()[3]
            r = urandom(2)
            ip = net.resolve(host, dns, self.timeout_ms, idle, r[0] << 8 | r[1], self.dns_port)
        if ip is not None:
            self._ntp = (host, ip, ticks_ms())
        return ip


def reset():
    """A hard reset (the boot selector has just rolled back a version that cannot build)."""
    machine.reset()
