"""Rules the host tools share with the firmware, taken from the firmware itself (not copied):
the charger id syntax and the default checkpoint origin (firmware/ledger/ids.py, a pure
module). The validators' independent re-implementations live in host_tools/verify/ instead."""
from host_tools.paths import firmware_on_path

firmware_on_path()
from ledger import ids as _ids  # noqa: E402  (firmware import root, set just above)

IdError = _ids.IdError
ORIGIN_PREFIX: str = _ids.ORIGIN_PREFIX


def check_charger_id(name: object) -> str:
    """name if the firmware accepts it as a charger id; raises IdError (a ValueError)."""
    return _ids.check_id(name)


def valid_charger_id(name: object) -> bool:
    return bool(_ids.valid_id(name))


def default_origin(charger_id: str) -> str:
    """The checkpoint origin a charger uses unless configured otherwise."""
    return str(_ids.default_origin(charger_id))
