"""``inside_village``: a qualifying feature inside the village polygon; for a village given as
a point, within ``fallback_threshold_m`` (else ``unknown``, reason ``rule_needs_polygon``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from buque.geo.nearest import FeatureIndex
from buque.geo.rules.band import BandWork
from buque.geo.rules.base import R
from buque.geo.rules.spatial import SpatialRule, Zone
from buque.layers.indicator import Indicator


class InsideVillage(SpatialRule):
    name = "inside_village"

    def prepare(self, band: BandWork, ind: Indicator, sel: np.ndarray) -> dict[str, Any]:
        return {"polys": band.polygons(sel)}

    def satisfy(self, ind: Indicator, zone: Zone, c: int, q: np.ndarray, sub: np.ndarray,
                index: FeatureIndex, dq: np.ndarray, d: np.ndarray, i: np.ndarray,
                net: np.ndarray) -> np.ndarray:
        s = np.zeros(len(q), dtype=bool)
        pq = zone.is_poly[q]
        if pq.any():
            s[pq] = index.any_intersecting(zone.polys[q[pq]])
        if ind.fallback_threshold_m is not None:
            s[~pq] = dq[~pq] <= ind.fallback_threshold_m
        return s

    def met_reason(self, ind: Indicator, is_poly: np.ndarray) -> np.ndarray | np.int8:
        return np.where(is_poly, R["inside_village"], R["within_threshold"])

    def finish(self, ind: Indicator, zone: Zone, met: np.ndarray, status: np.ndarray,
               reason: np.ndarray) -> None:
        if ind.fallback_threshold_m is None:
            undecidable = ~zone.is_poly & ~met
            status[undecidable] = 2
            reason[undecidable] = R["rule_needs_polygon"]
