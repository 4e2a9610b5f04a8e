"""What a parsed standards profile holds: indicators, their evidence conditions and remedies.

Plain frozen data, read by the engine (``geo``); parsing and validation live in
:mod:`layers.profile`, each rule's own parameters in its :mod:`geo.rules` unit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

NullPolicy = Literal["pass", "fail", "unknown"]


@dataclass(frozen=True)
class Condition:
    """One test on a feature attribute; ``if_null`` decides a missing value."""

    field: str
    op: str
    value: Any
    if_null: NullPolicy | Condition = "unknown"


@dataclass(frozen=True)
class Remedy:
    item: str
    item_en: str
    unit: str
    quantity: str
    unit_cost: float
    default_quantity: float | None = None


@dataclass(frozen=True)
class Indicator:
    key: str
    label_zh: str
    label_en: str
    sector: str
    layer: str
    levels: tuple[str, ...]
    rule: str
    evidence: tuple[Condition, ...]
    deadline: dt.date
    target_rate: float
    remedy: Remedy
    applies: dict[str, Condition] = field(default_factory=dict)
    #: the rule's own parameters, as its :mod:`geo.rules` unit parsed them
    params: Mapping[str, Any] = field(default_factory=dict)
    #: the largest distance at which a feature can still satisfy the rule (from the rule unit)
    reach_m: float = 0.0
    upgrade: Remedy | None = None
    sources: dict[str, str] = field(default_factory=dict)
    #: the level to assess at instead when a run has no village of the indicator's levels
    #: (e.g. ``"admin"`` for water when only administrative villages are given); flagged
    fallback: str | None = None
    #: how ``buque plan`` fills this indicator's gaps, and its unit costs (``geo.plan.params``)
    plan: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold_m(self) -> float | None:
        return self.params.get("threshold_m")

    @property
    def fallback_threshold_m(self) -> float | None:
        return self.params.get("fallback_threshold_m")

    @property
    def default_radius_m(self) -> float | None:
        return self.params.get("default_radius_m")

    @property
    def network_layer(self) -> str:
        return self.params.get("network_layer", "roads")


@dataclass(frozen=True)
class Profile:
    name: str
    version: str
    title: str
    indicators: dict[str, Indicator]
    content_hash: str
    path: str
    description: str = ""
    #: profile tables beyond the indicators (e.g. ``exit``), as parsed
    extra: Mapping[str, Any] = field(default_factory=dict)

    def for_level(self, level: str) -> list[Indicator]:
        return [i for i in self.indicators.values() if level in i.levels]

    def for_levels_present(self, present: set[str]) -> tuple[Profile, dict[str, str],
                                                                 dict[str, str]]:
        """The profile as a run with villages of the ``present`` levels assesses it.

        An indicator none of whose levels is present is assessed at its ``fallback`` level
        when it declares one (and that level is present), else not at all. Returns the
        profile to assess with, ``{indicator: fallback level}`` for the indicators moved, and
        ``{indicator: why}`` for those left unassessed.
        """
        inds, moved, skipped = dict(self.indicators), {}, {}
        for key, ind in self.indicators.items():
            if present & set(ind.levels):
                continue
            lv = ", ".join(ind.levels)
            if ind.fallback is not None and ind.fallback in present:
                inds[key] = replace(ind, levels=(ind.fallback,), applies={
                    k: c for k, c in ind.applies.items() if k == ind.fallback})
                moved[key] = ind.fallback
            else:
                skipped[key] = f"no {lv} villages in the inputs"
        return replace(self, indicators=inds), moved, skipped
