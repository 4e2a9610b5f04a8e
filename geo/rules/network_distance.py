"""``within_network_distance``: a qualifying feature within ``threshold_m`` along the
``network_layer`` (default ``roads``; villages and features snapped to it, see geo.network)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from buque.geo.evidence import PASS
from buque.geo.nearest import FeatureIndex
from buque.geo.rules.band import BandWork
from buque.geo.rules.spatial import SpatialRule, Zone
from buque.layers.indicator import Indicator


class WithinNetworkDistance(SpatialRule):
    name = "within_network_distance"
    required: ClassVar[tuple[str, ...]] = ("threshold_m",)
    met = "within_network_threshold"

    def reads(self, ind: Indicator) -> tuple[str, ...]:
        return (ind.layer, ind.network_layer)

    def network_layer(self, ind: Indicator) -> str | None:
        return ind.network_layer

    def prepare(self, band: BandWork, ind: Indicator, sel: np.ndarray) -> dict[str, Any]:
        return {"graph": band.graph(ind.network_layer)}

    def satisfy(self, ind: Indicator, zone: Zone, c: int, q: np.ndarray, sub: np.ndarray,
                index: FeatureIndex, dq: np.ndarray, d: np.ndarray, i: np.ndarray,
                net: np.ndarray) -> np.ndarray:
        nd, ni = zone.graph.distance_to_nearest(
            zone.pts[q], index.anchor_xy,
            max_distance=None if c == PASS else ind.threshold_m)
        if c == PASS:
            net[q] = nd
        else:  # the candidate is the feature reached along the roads
            d[q] = nd
            i[q] = np.where(ni >= 0, sub[np.maximum(ni, 0)], -1)
        return nd <= ind.threshold_m
