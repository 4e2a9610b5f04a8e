"""Metric projections: each village is measured in the UTM zone of its reference point.

A country spans many zones; distances in one zone's projection are accurate to about 0.1%
within it. Villages are grouped by zone (a loop over zones, not villages), and each group sees
the features within ``margin_deg`` degrees of longitude of its zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer

from geo.crs import utm_epsg_for_zone, utm_zone_of

MARGIN_DEG = 3.0


@dataclass(frozen=True)
class Zone:
    """One UTM zone (hemisphere included) and the villages measured in it."""

    zone: int
    north: bool
    members: np.ndarray  # indices into the villages

    @property
    def epsg(self) -> int:
        return utm_epsg_for_zone(self.zone, self.north)

    @property
    def lon_range(self) -> tuple[float, float]:
        west = -180.0 + 6.0 * (self.zone - 1)
        return west - MARGIN_DEG, west + 6.0 + MARGIN_DEG


def zones_of(lon: np.ndarray, lat: np.ndarray) -> Iterator[Zone]:
    """Group points by UTM zone and hemisphere."""
    z = utm_zone_of(lon)
    key = np.where(np.asarray(lat) >= 0, z, -z)
    for k in np.unique(key):
        yield Zone(zone=int(abs(k)), north=bool(k > 0), members=np.flatnonzero(key == k))


def project(geoms: np.ndarray, epsg: int, inverse: bool = False) -> np.ndarray:
    """Geometries from EPSG:4326 to ``epsg`` (or back with ``inverse``), vectorised."""
    src, dst = ("EPSG:4326", f"EPSG:{epsg}") if not inverse else (f"EPSG:{epsg}", "EPSG:4326")
    tr = _transformer(src, dst)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geoms, dtype=object), fn)


_TRANSFORMERS: dict[tuple[str, str], Transformer] = {}


def _transformer(src: str, dst: str) -> Transformer:
    key = (src, dst)
    if key not in _TRANSFORMERS:
        _TRANSFORMERS[key] = Transformer.from_crs(src, dst, always_xy=True)
    return _TRANSFORMERS[key]


def in_lon_range(geoms: np.ndarray, lon_range: tuple[float, float]) -> np.ndarray:
    """Which geometries' bounds overlap the longitude window."""
    b = shapely.bounds(geoms)
    return (b[:, 2] >= lon_range[0]) & (b[:, 0] <= lon_range[1])
