"""Planning parameters: each indicator's way of filling a gap and its unit costs, from the
standards profile's ``plan`` tables, with ``--set KEY=VALUE`` overrides and county cost factors.

Keys of ``--set`` (and of a project's ``[plan]`` table, see :func:`project_sets`):

- ``IND.threshold_m`` (distance rules), ``IND.radius_m`` (coverage), ``IND.unit_cost`` (new km,
  or a new site), ``IND.upgrade_unit_cost``, ``IND.harden_unit_cost``;
- ``county.NAME`` = factor: every cost of a work in that county (the ``county`` of the villages
  table) is multiplied by it (e.g. 1.4 for mountain terrain).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from buque.layers.errors import BuqueInputError
from buque.layers.profile import Indicator, Profile

WORKS = ("network", "point", "cover")
#: a built line stops this share of the threshold short of a village it only has to reach
#: (the rerun measures in the same metric CRS; the 1 % absorbs rounding of stored coordinates)
REACH_SHARE = 0.99
COST_KEYS = ("unit_cost", "upgrade_unit_cost", "harden_unit_cost")
SET_KEYS = ("threshold_m", "radius_m", *COST_KEYS)


@dataclass(frozen=True)
class Costs:
    """How one indicator's gaps are filled, and what each item costs (CNY)."""

    key: str
    works: str                      # network | point | cover
    rule: str
    threshold_m: float | None       # distance rules
    radius_m: float | None          # coverage: one site's radius
    item: str
    item_en: str
    unit: str
    unit_cost: float                # per km of new line / per new site
    default_km: float | None        # a village with no network in reach: a standalone supply
    upgrade_item: str | None = None
    upgrade_item_en: str | None = None
    upgrade_unit_cost: float | None = None
    harden_item: str | None = None
    harden_item_en: str | None = None
    harden_unit_cost: float | None = None

    @property
    def reach_m(self) -> float:
        """How far short of a leaf village a new line may stop."""
        return REACH_SHARE * float(self.threshold_m or 0.0)

    @property
    def default_m(self) -> float:
        """The line of a village with no network in reach (its standalone supply), in metres."""
        return 1000.0 * (self.default_km or 0.0)


@dataclass(frozen=True)
class Params:
    costs: dict[str, Costs]
    county_factor: dict[str, float] = field(default_factory=dict)
    #: the overrides as given (recorded in plan.json)
    sets: dict[str, float] = field(default_factory=dict)

    def factor(self, county: Any) -> float:
        return self.county_factor.get(str(county), 1.0)


def _costs(ind: Indicator) -> Costs:
    p = ind.plan
    works = p.get("works") or ("network" if ind.rule in ("within_distance",
                                                          "within_network_distance")
                               and ind.remedy.quantity == "distance_km" else
                               "cover" if ind.rule == "coverage" else "point")
    if works not in WORKS:
        raise BuqueInputError(ind.key, f"indicators.{ind.key}.plan: works must be one of "
                              f"{WORKS}, got {works!r}", field="works")
    up = ind.upgrade
    return Costs(
        key=ind.key, works=works, rule=ind.rule, threshold_m=_reach_of_a_line(ind),
        radius_m=ind.default_radius_m, item=ind.remedy.item, item_en=ind.remedy.item_en,
        unit=ind.remedy.unit, unit_cost=float(ind.remedy.unit_cost),
        default_km=ind.remedy.default_quantity,
        upgrade_item=p.get("upgrade_item", up.item if up else None),
        upgrade_item_en=p.get("upgrade_item_en", up.item_en if up else None),
        upgrade_unit_cost=_num(p.get("upgrade_unit_cost", up.unit_cost if up else None)),
        harden_item=p.get("harden_item"), harden_item_en=p.get("harden_item_en"),
        harden_unit_cost=_num(p.get("harden_unit_cost")))


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def parse_set(text: str) -> tuple[str, float]:
    """``"water.threshold_m=1000"`` -> ``("water.threshold_m", 1000.0)``."""
    key, sep, value = text.partition("=")
    key = key.strip()
    try:
        v = float(value)
    except ValueError:
        v = math.nan
    if not sep or not key or not math.isfinite(v) or v < 0:
        raise BuqueInputError("--set", f"{text!r}: expected KEY=NUMBER (a non-negative number), "
                              "e.g. water.threshold_m=1000", field="set")
    return key, v


def make_params(profile: Profile, sets: dict[str, float] | None = None) -> Params:
    """The profile's planning costs with ``sets`` applied; an unknown key is an error naming it."""
    costs = {k: _costs(i) for k, i in profile.indicators.items()}
    county: dict[str, float] = {}
    for key, v in (sets or {}).items():
        head, _, tail = key.partition(".")
        if head == "county" and tail:
            county[tail] = float(v)
            continue
        if head not in costs or tail not in SET_KEYS:
            raise BuqueInputError("--set", f"unknown parameter {key!r}: use IND.KEY with IND "
                                  f"one of {', '.join(costs)} and KEY one of "
                                  f"{', '.join(SET_KEYS)}, or county.NAME", field=key)
        c = costs[head]
        if tail == "threshold_m" and c.rule not in ("within_distance",):
            raise BuqueInputError("--set", f"{key}: only a within_distance rule's threshold can "
                                  f"change without re-reading the inputs ({head} is {c.rule})",
                                  field=key)
        if tail == "radius_m" and c.rule != "coverage":
            raise BuqueInputError("--set", f"{key}: {head} is not a coverage rule", field=key)
        costs[head] = replace(c, **{tail: float(v)})
    return Params(costs=costs, county_factor=county, sets=dict(sorted((sets or {}).items())))


def set_keys(profile: Profile) -> list[str]:
    """Every ``IND.KEY`` that :func:`make_params` accepts for ``profile`` (``county.NAME``
    aside): the cost keys of every indicator, ``threshold_m`` of ``within_distance`` rules and
    ``radius_m`` of coverage rules."""
    out = []
    for k, i in profile.indicators.items():
        tails = [*(["threshold_m"] if i.rule == "within_distance" else []),
                 *(["radius_m"] if i.rule == "coverage" else []), *COST_KEYS]
        out += [f"{k}.{t}" for t in tails]
    return out


def set_pattern(profile: Profile | None) -> str:
    """A regular expression (ECMA and Python alike) matching exactly the ``KEY=VALUE`` texts
    :func:`parse_set` and :func:`make_params` accept for ``profile``: its keys or
    ``county.NAME``, and a plain non-negative number of at most 15 digits before and after the
    point (so it is finite). Without a profile: any ``IND.KEY`` of the documented shape."""
    keys = ("|".join(re.escape(k) for k in set_keys(profile)) if profile is not None
            else "[A-Za-z0-9_]+\\.[A-Za-z0-9_]+")
    return f"^(county\\.[^=\\s]+|{keys})=[0-9]{{1,15}}(\\.[0-9]{{1,15}})?$"


def project_sets(project_path: str | Path | None) -> dict[str, float]:
    """A project's ``[plan]`` table as ``--set`` keys: ``county_factor = {NAME = 1.4}`` and
    ``set = {"water.unit_cost" = 250000}``; empty when the project file is gone."""
    if not project_path or not Path(project_path).is_file():
        return {}
    with open(project_path, "rb") as f:
        plan = tomllib.load(f).get("plan", {})
    out = {f"county.{k}": float(v) for k, v in plan.get("county_factor", {}).items()}
    out.update({str(k): float(v) for k, v in plan.get("set", {}).items()})
    return out


def _reach_of_a_line(ind: Indicator) -> float | None:
    """How near a planned line must come to a village: the rule's threshold, or for the
    ``power_supply`` rule the connection distance of a low-voltage line (``connect_m``; a
    transformer's 500 m supply radius does not apply to a line)."""
    if ind.rule == "power_supply" and ind.params.get("connect_m"):
        return float(ind.params["connect_m"])
    return ind.threshold_m
