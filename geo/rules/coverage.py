"""``coverage``: inside a qualifying coverage area, or within a feature's own ``radius_m``
(default ``default_radius_m``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import geopandas as gpd
import numpy as np

from buque.geo.evidence import PASS
from buque.geo.nearest import FeatureIndex
from buque.geo.rules.band import BandWork
from buque.geo.rules.spatial import SpatialRule, Zone, feature_radius
from buque.layers.indicator import Indicator


class Coverage(SpatialRule):
    name = "coverage"
    required: ClassVar[tuple[str, ...]] = ("default_radius_m",)
    met = "covered"

    def radius(self, band: BandWork, ind: Indicator, win: np.ndarray) -> np.ndarray | None:
        return feature_radius(band.layers[ind.layer], ind.default_radius_m or 0.0)[win]

    def halo_m(self, ind: Indicator, layers: Mapping[str, gpd.GeoDataFrame]) -> float:
        lyr = layers.get(ind.layer)
        if lyr is None or not len(lyr):
            return ind.reach_m
        r = feature_radius(lyr, ind.default_radius_m or 0.0)
        return max(ind.reach_m, float(np.nanmax(r)) if np.isfinite(r).any() else 0.0)

    def satisfy(self, ind: Indicator, zone: Zone, c: int, q: np.ndarray, sub: np.ndarray,
                index: FeatureIndex, dq: np.ndarray, d: np.ndarray, i: np.ndarray,
                net: np.ndarray) -> np.ndarray:
        cov, ci, cd = zone.index.covered(zone.pts[q], zone.radius, zone.cls == c)
        if c != PASS:  # for PASS the evidence stays the nearest qualifying feature
            i[q], d[q] = ci, cd  # the closest covering feature, at its exact distance
        return cov
