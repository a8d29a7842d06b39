# Names the charger and the host tools must agree on, defined once: the charger id syntax (an
# id is one MQTT topic level and a part of the checkpoint origin) and the default checkpoint
# origin. No imports: the host tools import this module itself (host_tools.paths.
# firmware_on_path()) instead of keeping copies, so a validator cannot enrol an id the
# firmware refuses. tests/host/test_shared_rules.py runs one list of ids through every user.

ORIGIN_PREFIX = "chargeproof.local/"


class IdError(ValueError):
    pass


def check_id(name, what="charger id"):
    """Ids become one topic level: 1..64 printable ASCII characters without / + # or space.
    Returns name; raises IdError."""
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        raise IdError("%s must be 1..64 characters" % what)
    for ch in name:
        o = ord(ch)
        if o <= 32 or o >= 127 or ch in "/+#":
            raise IdError("%s %r: only printable ASCII without / + # or space" % (what, name))
    return name


def valid_id(name):
    """check_id as a test: True for an id the firmware accepts."""
    try:
        check_id(name)
    except IdError:
        return False
    return True


def default_origin(charger_id):
    """The C2SP checkpoint origin of a charger's log unless configured otherwise."""
    return ORIGIN_PREFIX + charger_id
