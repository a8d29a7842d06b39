"""Energy and money as people read them, from the integers receipts carry (never a float):
kWh with three decimals from Wh, and minor currency units as major.minor with the code."""


def kwh_text(wh: int) -> str:
    """1234567 -> "1234.567" (a negative amount keeps its sign)."""
    sign = "-" if wh < 0 else ""
    return "%s%d.%03d" % ((sign,) + divmod(abs(wh), 1000))


def money_text(minor: int, currency: str) -> str:
    """1234, "EUR" -> "12.34 EUR" (currencies with 100 minor units, as the tariffs here)."""
    sign = "-" if minor < 0 else ""
    return "%s%d.%02d %s" % ((sign,) + divmod(abs(minor), 100) + (currency,))


def price_mismatch(claimed: tuple[int, int, int], expected: tuple[int, int, int]) -> str | None:
    """The one wording of a price that does not recompute: None when the receipt's (net, tax,
    total) is the tariff's, else what differs."""
    if tuple(claimed) == tuple(expected):
        return None
    return "receipt says net %d + tax %d = %d, tariff gives %d + %d = %d" % (
        tuple(claimed) + tuple(expected))
