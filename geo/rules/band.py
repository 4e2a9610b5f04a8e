"""One metric band's shared work for the spatial rules, built once on first use (thread-safe):
the layers' windows and indexes, road graphs, projected village polygons."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import geopandas as gpd
import numpy as np

from buque.geo.metric import (
    MARGIN_DEG,
    NEAR_MARGIN_DEG,
    Band,
    in_lon_range,
    outside_bound_m,
    project,
    transform_xy,
    utm_zone_of,
    zone_band,
)
from buque.geo.nearest import FeatureIndex
from buque.geo.network import RoadGraph


class BandWork:
    """The band ``z``'s villages (reference points projected to its CRS) and, on demand, the
    layers' features near it."""

    def __init__(self, z: Band, layers: dict[str, gpd.GeoDataFrame], lonlat: np.ndarray,
                 vgeom: np.ndarray, is_poly: np.ndarray,
                 narrow_users: Mapping[str, int] | None = None,
                 cache: dict[tuple[str, str], object] | None = None) -> None:
        """``narrow_users``: per layer, how many indicators will ask for its narrow window;
        the window is dropped when the last has said :meth:`done_narrow` (a layer not named
        keeps it for the band's life). ``cache``: work built ahead for the band's CRS by
        another ``BandWork`` (:func:`prebuild`; windows depend on the band, not its villages)."""
        self.z, self.layers = z, layers
        self._narrow_users = dict(narrow_users or {})
        self.ref_xy = transform_xy(lonlat, z.crs)  # the villages' projected reference points
        self.vgeom, self.is_poly = vgeom, is_poly
        # per member village: how far anything outside the narrow window is, at least
        self.near_bound = outside_bound_m(lonlat[:, 0], lonlat[:, 1], z.window(NEAR_MARGIN_DEG))
        self._cache: dict[tuple[str, str], object] = {} if cache is None else cache
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def _once(self, key: tuple[str, str], build: Callable[[], object]) -> object:
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    def positions(self, layer: str, margin_deg: float = MARGIN_DEG) -> np.ndarray:
        """Positions of the layer's features within ``margin_deg`` of the band."""
        return self._once((f"positions {margin_deg}", layer), lambda: np.flatnonzero(  # type: ignore[return-value]
            in_lon_range(self.layers[layer].geometry.to_numpy(), self.z.window(margin_deg))))

    def window(self, layer: str, margin_deg: float = MARGIN_DEG) -> tuple[np.ndarray, FeatureIndex]:
        """The layer's features within ``margin_deg`` of the band, and their index."""
        def build() -> tuple[np.ndarray, FeatureIndex]:
            win = self.positions(layer, margin_deg)
            return win, FeatureIndex(self.layers[layer].geometry.to_numpy()[win], self.z.crs).warm()
        return self._once((f"window {margin_deg}", layer), build)  # type: ignore[return-value]

    def done_narrow(self, layer: str) -> None:
        """One user of ``layer``'s narrow window is done with it: free it after the last, before
        the wide window is built (at national size the two would hold a band's roads twice)."""
        with self._lock:
            if layer not in self._narrow_users:
                return
            self._narrow_users[layer] -= 1
            if self._narrow_users[layer] <= 0:
                self._cache.pop((f"window {NEAR_MARGIN_DEG}", layer), None)

    def graph(self, layer: str) -> RoadGraph:
        def build() -> RoadGraph:
            roads = self.layers[layer].geometry.to_numpy()[self.positions(layer)]
            return RoadGraph.build(project(roads, self.z.crs))
        return self._once(("graph", layer), build)  # type: ignore[return-value]

    def polygons(self, sel: np.ndarray) -> np.ndarray:
        """The band's selected villages' polygons, projected (None for point villages)."""
        members = self.z.members
        poly = self.is_poly[members]
        allp = self._once(("polygons", ""), lambda: np.full(len(members), None, dtype=object))
        with self._lock:  # project the ones not yet projected
            todo = sel & poly & np.equal(allp, None)
            allp[todo] = project(self.vgeom[members[todo]], self.z.crs)  # type: ignore[index]
        return allp[sel]  # type: ignore[index]


def prebuild(layers: dict[str, gpd.GeoDataFrame], stop: Callable[[], bool]
             ) -> dict[str, dict[tuple[str, str], object]]:
    """The layers' windows and indexes for every UTM band their extent touches, wide windows
    first, until ``stop()`` says the villages have come (a run's second process builds them
    while it waits, :mod:`geo.split`): by CRS, each a ``cache`` for :class:`BandWork`."""
    bounds = np.array([g.total_bounds for g in layers.values() if len(g)])
    out: dict[str, dict[tuple[str, str], object]] = {}
    if not len(bounds) or not np.isfinite(bounds).all():
        return out
    w, s_, e, n = bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max()
    zones = range(int(utm_zone_of(np.array([w]))[0]), int(utm_zone_of(np.array([e]))[0]) + 1)
    works = [BandWork(zone_band(z, north, np.empty(0, dtype=np.int64)), layers,
                      np.empty((0, 2)), np.empty(0, dtype=object), np.empty(0, bool))
             for north in (True, False) if (n >= 0 if north else s_ < 0) for z in zones]
    for margin in (MARGIN_DEG, NEAR_MARGIN_DEG):
        for work in works:
            for kind in layers:
                if stop():
                    return out
                work.window(kind, margin)
                out[work.z.crs] = work._cache
    return out
