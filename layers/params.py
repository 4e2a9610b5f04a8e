"""Reading one value of a profile table, with errors that name the table and key."""

from __future__ import annotations

from typing import Any

from buque.layers.errors import BuqueInputError


def require(d: dict, key: str, where: str, path: str) -> Any:
    """``d[key]``, or an error naming ``where`` and the missing key."""
    if key not in d:
        raise BuqueInputError(path, f"{where}: missing '{key}'", field=key)
    return d[key]


def number(d: dict, key: str, where: str, path: str, default: float | None = None
           ) -> float | None:
    """A non-negative number from the profile, or ``default`` when absent."""
    if key not in d:
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise BuqueInputError(path, f"{where}: {key} must be a non-negative number, got {v!r}",
                              field=key)
    return float(v)
