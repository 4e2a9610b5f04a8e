"""The rule protocol and its registry.

A rule is one unit (as titiler registers its algorithms): it parses its own profile
parameters, says which layers it reads and how far it reaches (the Dask engine's halos,
:mod:`geo.distributed`, and export clipping, :mod:`geo.report.filters`, ask it), and answers
status, distance and evidence for a set of villages. :mod:`geo.gaps` only wires rules to
bands of villages; ``docs/rules.md`` tells how to add one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import geopandas as gpd
import numpy as np

from buque.geo.evidence import evaluate_all
from buque.layers.errors import BuqueInputError
from buque.layers.indicator import Indicator
from buque.layers.schema import STATUSES

if TYPE_CHECKING:
    from buque.geo.rules.band import BandWork

#: reason codes written to gaps.parquet, and what they mean
REASONS = {
    "within_threshold": "a qualifying feature lies within the threshold",
    "within_network_threshold": "a qualifying feature lies within the threshold along the roads",
    "inside_village": "a qualifying feature lies inside the village polygon",
    "covered": "inside a qualifying coverage area / within a feature's radius",
    "unverified_nearby": "only features whose attributes are unknown satisfy the rule",
    "non_qualifying_nearby": "features satisfy the rule but do not qualify (e.g. unpaved road, "
                             "non-standardized clinic)",
    "none_within_threshold": "the nearest qualifying feature is beyond the threshold",
    "no_qualifying_feature": "no qualifying feature in reach at all",
    "layer_not_provided": "the project has no layer for this indicator",
    "rule_needs_polygon": "the rule needs a village polygon and no fallback distance is set",
    "register_all_pass": "every household of the village in the register passes",
    "register_failing": "households of the village in the register fail (count: ``count``)",
    "register_unrecorded": "no household fails, but some are not recorded (count: ``count``)",
    "not_in_register": "the register holds no household of the village",
}
STATUS = np.array(STATUSES, dtype=object)
MET, MISSING, UNKNOWN_STATUS = np.int8(0), np.int8(1), np.int8(2)
REASON = np.array(list(REASONS), dtype=object)
R = {r: np.int8(i) for i, r in enumerate(REASONS)}


@dataclass
class Result:
    """Per-village arrays for one indicator (only applicable villages are written out)."""

    n: int

    def __post_init__(self) -> None:
        n = self.n
        self.status = np.full(n, 2, dtype=np.int8)  # codes into STATUS
        self.reason = np.full(n, R["layer_not_provided"], dtype=np.int8)  # codes into REASON
        self.dist = np.full(n, np.nan)
        self.evid = np.full(n, -1, dtype=np.int64)   # position in the evidence layer, -1 none
        self.cand = np.full(n, -1, dtype=np.int64)
        self.cand_dist = np.full(n, np.nan)
        self.net = np.full(n, np.nan)
        #: register rules: households concerned, their mean remedy unit cost, a description
        self.count: np.ndarray | None = None
        self.unit_cost: np.ndarray | None = None
        self.text: np.ndarray | None = None


class Rule:
    """One kind of rule. Stateless: its parameters live in ``Indicator.params``.

    A subclass sets ``name`` and ``keys`` (the profile keys it takes) and implements
    :meth:`parse` and either :meth:`assess_band` (``spatial = True``: called per metric band
    with the band's shared work) or :meth:`assess_villages` (called once for all villages).
    """

    name: ClassVar[str]
    #: the indicator keys this rule takes, besides the common ones (label, layer, levels, ...)
    keys: ClassVar[frozenset[str]] = frozenset()
    spatial: ClassVar[bool] = True

    def parse(self, d: dict, where: str, path: str) -> dict[str, Any]:
        """Validate the indicator table ``d``; return the rule's parameters."""
        return {}

    def check_layer(self, layer: str, where: str, path: str) -> None:
        """Error when ``layer`` is not something this rule can read."""

    def reach_m(self, params: Mapping[str, Any]) -> float:
        """The largest distance at which a feature can still satisfy the rule."""
        return 0.0

    def reads(self, ind: Indicator) -> tuple[str, ...]:
        """The layers the rule reads, its evidence layer first."""
        return (ind.layer,)

    def network_layer(self, ind: Indicator) -> str | None:
        """The layer along which the rule measures (None: straight lines)."""
        return None

    def halo_m(self, ind: Indicator, layers: Mapping[str, gpd.GeoDataFrame]) -> float:
        """How far from a village a feature of ``layers`` can change its result."""
        return ind.reach_m

    def fields(self, ind: Indicator) -> tuple[str, ...]:
        """Fields of the evidence layer the rule reads itself, besides the profile's evidence
        conditions (the Dask engine ships only these columns to its workers)."""
        return ()

    def classes(self, layer: gpd.GeoDataFrame, ind: Indicator) -> np.ndarray:
        """Each feature of the evidence layer as PASS, FAIL or UNKNOWN (geo.evidence): by
        default the profile's ``evidence`` conditions; a rule may decide more itself (e.g.
        ``power_supply``: transformer OR low-voltage line). The one place classes come from
        (the engines, halos and archived layers all ask here)."""
        return evaluate_all(layer, ind.evidence)

    def assess_band(self, band: BandWork, ind: Indicator, mask: np.ndarray,
                    cls: np.ndarray | None, res: Result) -> int:
        """Fill ``res`` for the band's villages in ``mask``; return how many they are."""
        raise NotImplementedError

    def assess_villages(self, villages: gpd.GeoDataFrame, inputs: Mapping[str, Any],
                        ind: Indicator, mask: np.ndarray, res: Result) -> None:
        """Fill ``res`` for the villages in ``mask`` (non-spatial rules)."""
        raise NotImplementedError


class RuleRegistry:
    """Rules by name. ``register`` returns a new registry (the bundled one is not mutated)."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules = {r.name: r for r in rules}

    def get(self, name: str) -> Rule:
        if name not in self._rules:
            raise KeyError(f"no rule {name!r} (known: {', '.join(self._rules)})")
        return self._rules[name]

    def __contains__(self, name: object) -> bool:
        return name in self._rules

    def names(self) -> tuple[str, ...]:
        return tuple(self._rules)

    def keys(self) -> frozenset[str]:
        """Every profile key some rule takes."""
        return frozenset().union(*(r.keys for r in self._rules.values()))

    def register(self, *rules: Rule, overwrite: bool = False) -> RuleRegistry:
        for r in rules:
            if r.name in self._rules and not overwrite:
                raise ValueError(f"rule {r.name!r} is already registered; use overwrite=True")
        return RuleRegistry([*self._rules.values(), *rules])


def need(d: dict, key: str, rule: str, where: str, path: str) -> None:
    """Error when the rule needs ``key`` and the indicator has none."""
    if key not in d:
        raise BuqueInputError(path, f"{where}: rule {rule} needs {key}", field=key)
