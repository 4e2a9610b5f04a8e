"""``within_distance``: a qualifying feature within ``threshold_m`` of the reference point."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from buque.geo.nearest import FeatureIndex
from buque.geo.rules.spatial import SpatialRule, Zone
from buque.layers.indicator import Indicator


class WithinDistance(SpatialRule):
    name = "within_distance"
    required: ClassVar[tuple[str, ...]] = ("threshold_m",)
    narrow_first = True

    def satisfy(self, ind: Indicator, zone: Zone, c: int, q: np.ndarray, sub: np.ndarray,
                index: FeatureIndex, dq: np.ndarray, d: np.ndarray, i: np.ndarray,
                net: np.ndarray) -> np.ndarray:
        return dq <= ind.threshold_m
