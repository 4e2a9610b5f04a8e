"""What the spatial rules share: evidence classes queried in order, per band.

For each indicator the layer's features are split by the profile's evidence filter into
qualifying (PASS), unverifiable (UNKNOWN) and non-qualifying (FAIL). Per class, in that order,
the villages not yet satisfied query the class's features (PASS: unbounded nearest; others:
nearest within the rule's reach) and the rule says which are satisfied (:meth:`satisfy`).
A village is ``met`` when a qualifying feature satisfies the rule, ``unknown`` when only an
unverifiable one does, ``missing`` otherwise. All queries are bulk queries; nothing loops over
villages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from buque.geo.evidence import FAIL, PASS, UNKNOWN
from buque.geo.metric import NEAR_MARGIN_DEG
from buque.geo.nearest import FeatureIndex
from buque.geo.network import RoadGraph
from buque.geo.rules.band import BandWork
from buque.geo.rules.base import R, Result, Rule, need
from buque.layers.errors import BuqueInputError
from buque.layers.indicator import Indicator
from buque.layers.params import number
from buque.layers.schema import FEATURE_LAYERS

#: distances every spatial rule accepts (the reach is their maximum)
DISTANCE_KEYS = ("threshold_m", "fallback_threshold_m", "default_radius_m")


def feature_radius(gdf: gpd.GeoDataFrame, default: float) -> np.ndarray:
    """Coverage radius per feature: ``radius_m`` if given; else 0 for areas, ``default`` else."""
    r = pd.to_numeric(gdf.get("radius_m", pd.Series(np.nan, index=gdf.index)),
                      errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    area = shapely.get_dimensions(gdf.geometry.to_numpy()) == 2
    return np.where(np.isfinite(r), r, np.where(area, 0.0, default))


@dataclass
class Zone:
    """One band's villages to assess for one indicator, and the features they query.

    ``pts`` (an (m, 2) array of reference points) and ``polys`` are projected to the band's
    CRS; ``index`` indexes the layer's features near the band, ``win`` their positions in the
    layer, ``cls`` their evidence classes."""

    pts: np.ndarray
    is_poly: np.ndarray
    polys: np.ndarray | None
    index: FeatureIndex
    win: np.ndarray
    cls: np.ndarray
    radius: np.ndarray | None = None
    graph: RoadGraph | None = None


class SpatialRule(Rule):
    """A rule answered from a feature layer, per metric band."""

    keys: ClassVar[frozenset[str]] = frozenset({*DISTANCE_KEYS, "network_layer"})
    #: the profile keys this rule cannot do without
    required: ClassVar[tuple[str, ...]] = ()
    #: the reason code of a met village
    met: ClassVar[str] = "within_threshold"
    #: query the narrow window first (see :meth:`assess_band`)
    narrow_first: ClassVar[bool] = False

    def parse(self, d: dict, where: str, path: str) -> dict[str, Any]:
        for k in self.required:
            need(d, k, self.name, where, path)
        p: dict[str, Any] = {k: number(d, k, where, path) for k in DISTANCE_KEYS}
        p["network_layer"] = d.get("network_layer", "roads")
        return p

    def check_layer(self, layer: str, where: str, path: str) -> None:
        if layer not in FEATURE_LAYERS:
            raise BuqueInputError(path, f"{where}: layer must be one of {FEATURE_LAYERS}",
                                  field="layer")

    def reach_m(self, params: Mapping[str, Any]) -> float:
        return float(max(params.get(k) or 0 for k in DISTANCE_KEYS))

    # ------------------------------------------------------------------ per band
    def prepare(self, band: BandWork, ind: Indicator, sel: np.ndarray) -> dict[str, Any]:
        """The band's shared inputs this rule needs beyond the layer's index."""
        return {}

    def radius(self, band: BandWork, ind: Indicator, win: np.ndarray) -> np.ndarray | None:
        return None

    def assess_band(self, band: BandWork, ind: Indicator, mask: np.ndarray,
                    cls: np.ndarray | None, res: Result) -> int:
        z = band.z
        sel = mask[z.members]
        gidx = z.members[sel]
        n = len(gidx)
        if n == 0 or cls is None or any(k not in band.layers for k in self.reads(ind)):
            if self.narrow_first:
                band.done_narrow(ind.layer)  # never asked for: not needed for this one
            return n  # unknown: a layer the rule reads was not provided
        extra = self.prepare(band, ind, sel)
        polys, graph = extra.get("polys"), extra.get("graph")
        pts, is_poly = band.ref_xy[sel], band.is_poly[gidx]
        if self.narrow_first:
            # narrow window first; a village is settled there when its nearest qualifying
            # feature, and the rule's reach, are closer than anything outside the window
            win, index = band.window(ind.layer, NEAR_MARGIN_DEG)
            self.answer(ind, Zone(pts, is_poly, polys, index, win, cls[win], None, graph),
                        res, gidx)
            del index
            band.done_narrow(ind.layer)
            bound = band.near_bound[sel]
            redo = ~(res.dist[gidx] < bound) | (ind.reach_m >= bound)
            if not redo.any() or len(band.positions(ind.layer)) == len(win):
                return n  # settled, or the wide window holds nothing more
            gidx, pts, is_poly = gidx[redo], pts[redo], is_poly[redo]
            polys = None if polys is None else polys[redo]
        win, index = band.window(ind.layer)
        self.answer(ind, Zone(pts, is_poly, polys, index, win, cls[win],
                              self.radius(band, ind, win), graph), res, gidx)
        return n

    def satisfy(self, ind: Indicator, zone: Zone, c: int, q: np.ndarray, sub: np.ndarray,
                index: FeatureIndex, dq: np.ndarray, d: np.ndarray, i: np.ndarray,
                net: np.ndarray) -> np.ndarray:
        """Which villages ``q`` (positions in the zone) the class-``c`` features satisfy.

        ``index`` holds the class's features (``sub``: their positions in the zone's window),
        ``dq`` the distances of their nearest; a rule may overwrite ``d``/``i`` (the class's
        nearest distance and window position per village) and ``net``."""
        raise NotImplementedError

    def met_reason(self, ind: Indicator, is_poly: np.ndarray) -> np.ndarray | np.int8:
        return R[self.met]

    def finish(self, ind: Indicator, zone: Zone, met: np.ndarray, status: np.ndarray,
               reason: np.ndarray) -> None:
        """Last word on the zone's statuses and reasons (in place)."""

    def answer(self, ind: Indicator, zone: Zone, res: Result, gidx: np.ndarray) -> None:
        """Fill ``res`` at ``gidx`` for the zone's villages (all at once)."""
        m = len(zone.pts)
        layer_index, win, cls = zone.index, zone.win, zone.cls
        sat: dict[int, np.ndarray] = {}
        near_d: dict[int, np.ndarray] = {}
        near_i: dict[int, np.ndarray] = {}
        todo = np.ones(m, dtype=bool)  # villages still undecided: later classes only look at them
        net = np.full(m, np.nan)
        for c in (PASS, UNKNOWN, FAIL):
            member = cls == c
            sub = np.flatnonzero(member)
            d, i = np.full(m, np.nan), np.full(m, -1, dtype=np.int64)
            s = np.zeros(m, dtype=bool)
            q = np.flatnonzero(todo)
            if len(sub) and len(q):
                index = layer_index.subset(sub)
                dq, iq = index.nearest(zone.pts[q], None if c == PASS else ind.reach_m)
                iq = np.where(iq >= 0, sub[np.maximum(iq, 0)], -1)
                d[q], i[q] = dq, iq
                s[q] = self.satisfy(ind, zone, c, q, sub, index, dq, d, i, net)
            sat[c] = s
            near_d[c] = d
            near_i[c] = (np.where(i >= 0, win[np.maximum(i, 0)], -1) if len(win)
                         else np.full(m, -1, dtype=np.int64))
            todo &= ~s
        met = sat[PASS]
        unk, fail = ~met & sat[UNKNOWN], ~met & ~sat[UNKNOWN] & sat[FAIL]
        status = np.where(met, 0, np.where(unk, 2, 1)).astype(np.int8)
        reason = np.select(
            [met, unk, fail, np.isfinite(near_d[PASS])],
            [self.met_reason(ind, zone.is_poly), R["unverified_nearby"],
             R["non_qualifying_nearby"], R["none_within_threshold"]],
            R["no_qualifying_feature"]).astype(np.int8)
        self.finish(ind, zone, met, status, reason)
        res.status[gidx] = status
        res.reason[gidx] = reason
        res.dist[gidx] = near_d[PASS]
        res.evid[gidx] = near_i[PASS]
        res.cand[gidx] = np.where(unk, near_i[UNKNOWN], np.where(fail, near_i[FAIL], -1))
        res.cand_dist[gidx] = np.where(unk, near_d[UNKNOWN],
                                       np.where(fail, near_d[FAIL], np.nan))
        res.net[gidx] = net
