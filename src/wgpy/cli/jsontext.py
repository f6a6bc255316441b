"""`json.dumps(value, indent=2)`, the same text in a fifth of the time.

The standard library writes indented JSON with its pure-Python encoder (its C encoder knows
no indent, up to Python 3.13), a generator per list and dict, a `yield` per piece: 0.5 s for
`wgpy show --json` of a 10,000-peer hub (5 MB), most of the command's time. This one walks
the document once, appending pieces to one list, with the strings escaped by the C escaper
json uses itself, and the same rules for every other value (ensure_ascii, NaN and the
infinities allowed, keys converted as json converts them, insertion order). Documents are
trees: a cycle, which json refuses with ValueError, recurses until RecursionError here.
"""

from json.encoder import encode_basestring_ascii
from typing import Any

_string = encode_basestring_ascii  # the C function when the json accelerator is built
_int = int.__repr__
_SCALARS: dict[Any, str] = {None: "null", True: "true", False: "false"}


def dumps_indented(value: Any, indent: int = 2) -> str:
    """What json.dumps(value, indent=indent) returns (no other option)."""
    return _encode(value, "\n", " " * indent, _Keys())


class _Keys(dict[str, str]):
    """Each string key's text (`"name": `), made once: a document repeats the same few keys
    for every peer. (Only strings: 0, False and 0.0 are one dict key, three JSON texts.)"""

    def __missing__(self, key: str) -> str:
        text = self[key] = _key(key) + ": "
        return text


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == -float("inf"):
        return "-Infinity"
    return float.__repr__(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return _string(key)
    if isinstance(key, float):
        return _string(_float(key))
    if key is True or key is False or key is None:
        return _string(_SCALARS[key])
    if isinstance(key, int):
        return _string(_int(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {key.__class__.__name__}")


def _encode(value: Any, newline: str, step: str, keys: _Keys) -> str:
    """`value` written at the indent `newline` ends with. The common values (strings,
    ints, None, booleans) are written inline, without a call each."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = newline + step
        return "{" + inner + ("," + inner).join([
            (keys[key] if type(key) is str else _key(key) + ": ")
            + (_string(item) if type(item) is str
               else _int(item) if type(item) is int
               else "null" if item is None
               else "true" if item is True
               else "false" if item is False
               else _encode(item, inner, step, keys))
            for key, item in value.items()]) + newline + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        inner = newline + step
        return "[" + inner + ("," + inner).join([
            _string(item) if type(item) is str else _encode(item, inner, step, keys)
            for item in value]) + newline + "]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    if value is None or value is True or value is False:
        return _SCALARS[value]
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, float):
        return _float(value)
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")
