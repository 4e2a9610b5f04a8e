"""The one list splitter of query parameters and export filters.

``county=甲县,乙县``, ``county=甲县，乙县`` (a full-width comma, as a Chinese input method types
it) and ``county=甲县、乙县`` (the enumeration comma) all name the same two counties, whether
given to the API or to ``buque export``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: what separates the items of a list: ASCII comma, full-width comma, enumeration comma
SEPARATORS = ",，、"
_SPLIT = re.compile(f"[{SEPARATORS}]")


def split_values(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"a, b，c、a"`` or ``["a", "b,c"]`` -> ``("a", "b", "c")``: items stripped, blanks and
    repeats dropped, order kept; ``None`` -> ``()``."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    parts = (p.strip() for s in items for p in _SPLIT.split(str(s)))
    return tuple(dict.fromkeys(p for p in parts if p))


def n_separators(value: str) -> int:
    """How many separators ``value`` has (a bound on the items it may name)."""
    return len(_SPLIT.findall(str(value)))
