"""Exit criteria of a profile (``[exit.village]``, ``[exit.county]``): what a village due to
exit (贫困村退出) and a county (贫困县摘帽) must meet. Plain data; checked by :mod:`geo.exit`.

```toml
[exit.village]
incidence_max = 0.03                       # poverty incidence below 3 %
indicators = ["road", "water", "power"]    # met by the village and each of its natural villages
admin_only = ["road"]                      # of those: the administrative village itself only

[exit.county]
incidence_max = 0.03
shares = [
  { indicator = "road", level = "admin", min = 0.97 },    # share of villages met
  { register_field = "housing_safe", min = 0.97 },        # share of registered households
]
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from buque.layers.errors import BuqueInputError, check_keys
from buque.layers.params import number
from buque.layers.schema import LEVELS

EXIT_KEYS = {"village", "county"}
VILLAGE_KEYS = {"incidence_max", "indicators", "admin_only"}
COUNTY_KEYS = {"incidence_max", "shares"}
SHARE_KEYS = {"indicator", "level", "register_field", "min", "label"}
#: register fields a county share may count (true per household)
REGISTER_SHARE_FIELDS = ("housing_safe", "water_safe", "insured", "housing_renovated")


@dataclass(frozen=True)
class Share:
    """A county share: of the county's villages assessed for ``indicator`` (at ``level``, or
    every level), or of its registered households for ``register_field``, at least ``min``."""

    column: str
    min: float
    label: str
    indicator: str | None = None
    level: str | None = None
    register_field: str | None = None


@dataclass(frozen=True)
class ExitCriteria:
    incidence_max: float | None
    indicators: tuple[str, ...]
    admin_only: tuple[str, ...]
    county_incidence_max: float | None
    shares: tuple[Share, ...]
    sources: Mapping[str, str]

    @property
    def has_county(self) -> bool:
        return self.county_incidence_max is not None or bool(self.shares)


def _sources(d: Mapping[str, Any], where: str) -> dict[str, str]:
    return {f"{where}.{k}": str(v) for k, v in d.items() if k.endswith("_source")}


def _plain(d: Mapping[str, Any]) -> list[str]:
    return [k for k in d if not k.endswith("_source")]


def parse_exit(data: Any, indicators: Mapping[str, Any], path: str) -> ExitCriteria | None:
    """The ``[exit]`` table of a profile (None when absent); indicator keys must name the
    profile's indicators."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise BuqueInputError(path, "'exit' must be a table of [exit.village] and [exit.county]",
                              field="exit")
    check_keys(path, "[exit]", data, EXIT_KEYS, what="table")
    v = data.get("village", {})
    c = data.get("county", {})
    for name, t, known in (("village", v, VILLAGE_KEYS), ("county", c, COUNTY_KEYS)):
        if not isinstance(t, dict):
            raise BuqueInputError(path, f"[exit.{name}] must be a table", field=name)
        check_keys(path, f"[exit.{name}]", _plain(t), known)

    def keys_of(t: dict, key: str, where: str) -> tuple[str, ...]:
        val = t.get(key, [])
        if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
            raise BuqueInputError(path, f"{where}: {key} must be a list of indicator keys",
                                  field=key)
        for k in val:
            if k not in indicators:
                check_keys(path, f"{where} {key}", [k], indicators, what="indicator")
        return tuple(val)

    def fraction(t: dict, key: str, where: str) -> float | None:
        x = number(t, key, where, path)
        if x is not None and x > 1:
            raise BuqueInputError(path, f"{where}: {key} is a fraction (0.03 for 3 %), got {x}",
                                  field=key)
        return x

    inds = keys_of(v, "indicators", "[exit.village]")
    admin_only = keys_of(v, "admin_only", "[exit.village]")
    if set(admin_only) - set(inds):
        raise BuqueInputError(path, "[exit.village]: admin_only must be among its indicators "
                              f"({', '.join(sorted(set(admin_only) - set(inds)))} are not)",
                              field="admin_only")
    shares = []
    raw = c.get("shares", [])
    if not isinstance(raw, list):
        raise BuqueInputError(path, "[exit.county]: shares must be a list of tables",
                              field="shares")
    for i, s in enumerate(raw):
        w = f"[exit.county] shares[{i}]"
        if not isinstance(s, dict):
            raise BuqueInputError(path, f"{w}: must be a table", field="shares")
        check_keys(path, w, _plain(s), SHARE_KEYS)
        ind, fld = s.get("indicator"), s.get("register_field")
        if (ind is None) == (fld is None):
            raise BuqueInputError(path, f"{w}: give exactly one of indicator, register_field",
                                  field="indicator")
        if ind is not None and ind not in indicators:
            check_keys(path, w, [ind], indicators, what="indicator")
        if fld is not None and fld not in REGISTER_SHARE_FIELDS:
            check_keys(path, w, [fld], REGISTER_SHARE_FIELDS, what="register field")
        level = s.get("level")
        if level is not None and level not in LEVELS:
            raise BuqueInputError(path, f"{w}: level must be admin or natural", field="level")
        lo = fraction(s, "min", w)
        if lo is None:
            raise BuqueInputError(path, f"{w}: missing 'min'", field="min")
        label = s.get("label") or (indicators[ind].label_zh if ind else fld)
        shares.append(Share(column=f"{ind or fld}_share", min=lo, label=str(label),
                            indicator=ind, level=level, register_field=fld))
    cols = [s.column for s in shares]
    if len(set(cols)) != len(cols):
        raise BuqueInputError(path, "[exit.county]: each indicator or register field may have "
                              "one share", field="shares")
    return ExitCriteria(incidence_max=fraction(v, "incidence_max", "[exit.village]"),
                        indicators=inds, admin_only=admin_only,
                        county_incidence_max=fraction(c, "incidence_max", "[exit.county]"),
                        shares=tuple(shares),
                        sources={**_sources(v, "village"), **_sources(c, "county")})
