"""Decimal text read without int()'s limits, for the config parser and the UAPI alike.

A module of its own, with nothing but the standard library, so that `wgpy show` (which reads
UAPI numbers but no configuration file) does not import the config parser to get it.
"""


def decimal(text: str) -> int:
    """int() of a string already checked to be ASCII decimal digits (an optional sign first),
    that never refuses: past 20 significant digits, beyond every limit a WireGuard number is
    checked against, it is ±10**20. (int() raises ValueError past 4,300 digits, Python's guard
    against quadratic conversion; bad numbers must get their error, not a traceback.)"""
    digits = text.lstrip("+-").lstrip("0")
    value = int(digits or "0") if len(digits) <= 20 else 10**20
    return -value if text.startswith("-") else value
