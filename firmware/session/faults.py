# Fault codes, and fault records on flash: every fault is stored before anything else is done
# with it.
import json

from store.journal import Journal, JournalFull

# How a fault clears (the charger leaves its fault state):
UNPLUG = "unplug"           # once the fault has been signalled and the EV is unplugged (A)
OPERATOR = "operator"       # only by an operator reset (reset_fault), once the cause reads gone
LATCHED = "latched"         # the device latches it: every session start fails again until the
                            # device itself is reset (the charger state clears on unplug)
EVENT = "event"             # a record only: the charger does not enter its fault state

# code: (how it clears, meter_untrusted)  # what it means
# meter_untrusted: the meter's readings are the fault, so the session ends on its last good
# reading instead of a fresh one. Meanings stay comments: no heap on the board.
FAULTS = {
    "meter-silent": (UNPLUG, True),         # no valid reply for max_meter_failures reads
    "meter-backwards": (UNPLUG, True),      # the total import register went down
    "meter-jump": (UNPLUG, True),           # it gained more than rated power (+25 %) allows
    "meter-stale": (UNPLUG, True),          # power flows (EV in C, contactor closed, meter
                                            # power > stale_power_w) but the register has not
                                            # moved for meter_stale_s
    "meter-inconsistent": (UNPLUG, True),   # the register's gain and the energy its reported
                                            # power implies disagree beyond tolerance
    "contactor-welded": (OPERATOR, False),          # contacts closed with the coil off
    "contactor-did-not-close": (OPERATOR, False),   # contacts stayed open after closing
    "contactor-did-not-open": (OPERATOR, False),    # contacts stayed closed after opening
    "pilot-state-E": (UNPLUG, False),       # CP shorted to PE (about 0 V)
    "pilot-state-F": (UNPLUG, False),       # -12 V while the charger drives +12 V or PWM
    "pilot-diode": (UNPLUG, False),         # the EV's diode missing or shorted
    "pilot-invalid-level": (UNPLUG, False),  # a level outside every state's band
    "pilot-unstable": (UNPLUG, False),      # no reading lasted the debounce time
    "rcd-tripped": (LATCHED, False),        # residual DC current >= 6 mA (IEC 62955)
    "rcd-self-test-no-trip": (LATCHED, False),  # the module did not trip on its test input
    "rcd-self-test-stuck": (LATCHED, False),    # it stayed tripped after the test
    "ledger": (UNPLUG, False),              # the ledger refused a receipt (kept, retried)
    "session-journal": (EVENT, False),      # both copies of the running session damaged
    "loop": (UNPLUG, False),                # an unexpected error in the main loop
    "refused": (EVENT, False),              # an automatic start (free mode, remote) refused
    "tariff-refused": (EVENT, False),       # a published tariff refused (reason: detail)
}

_PREFIX = {"pilot": "pilot-", "contactor": "contactor-", "rcd": "rcd-"}


def code_of(device, reason):
    """The fault code of a driver's fault reason (device: "pilot", "contactor", "rcd").
    Never raises: a fault path must not fail (a test checks every driver reason is listed)."""
    return _PREFIX[device] + reason


def needs_operator(code):
    """True for a fault only an operator reset clears (unlisted codes: the safe answer)."""
    entry = FAULTS.get(code)
    return entry is None or entry[0] == OPERATOR


def meter_untrusted(code):
    """True for a fault of the meter's readings: the session ends on its last good one."""
    return FAULTS[code][1] if code in FAULTS else False


class FaultLog:
    def __init__(self, dirpath, keep=200):
        self.journal = Journal(dirpath, segment_bytes=2048, reserve_bytes=4096)
        self.keep = keep
        self.last = None

    def record(self, now, code, detail=""):
        self.last = {"time": now, "code": code, "detail": detail}
        try:
            self.journal.append(json.dumps(self.last).encode())
        except JournalFull:
            pass   # the fault is still handled (contactor open); only its record is not kept
        # Keep the log bounded: old fault records are history, not bills.
        excess = self.journal.pending() - self.keep
        if excess > 0:
            self.journal.ack(self.journal.acked + excess)
        return self.last

    def records(self):
        return [json.loads(data) for _, data in self.journal.records()]
