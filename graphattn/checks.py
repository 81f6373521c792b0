"""Argument checks for the public API, so every error reads the same way.

The rule, everywhere in graphattn: a value of the wrong **type** raises ``TypeError``; a value of
the right type that is out of range or otherwise unusable raises ``ValueError``. Both name the
argument and say what was expected. Public constructors and entry points validate once;
internal calls trust their inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["check_int", "check_probability", "check_choice", "check_bool", "MAX_INDEX"]

#: The largest size, reach or index a pattern accepts: positions are int64 and ``q * n + k``
#: codes must not overflow, so sizes stay below 2**31.
MAX_INDEX = (1 << 31) - 1


def check_int(value: object, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` if it is an int (not a bool) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_probability(value: object, name: str) -> float:
    """``value`` if it is a real number in ``[0, 1)`` (a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(value).__name__} {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def check_choice(value: object, name: str, choices: Sequence[object]) -> object:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_bool(value: object, name: str) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value
