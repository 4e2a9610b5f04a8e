"""Metric projections for distances.

Villages whose longitudes span at most :data:`MAX_BAND_DEG` are measured in one transverse
Mercator projection centred on them (scale error under 0.25% at the band's edges, within the
contract's 0.5%). Wider extents (a country) are split into the 6° UTM zones, each measured in
its own zone; a loop over bands, never over villages. Each band sees the features within
:data:`MARGIN_DEG` degrees of longitude of it; nearest-feature searches first look only within
:data:`NEAR_MARGIN_DEG` and widen for the few villages that narrow window cannot certify.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import CRS, Transformer

from geo.crs import utm_epsg_for_zone, utm_zone_of

MAX_BAND_DEG = 8.0
MARGIN_DEG = 3.0
#: the narrow window tried first for nearest-feature searches (see :func:`outside_bound_m`)
NEAR_MARGIN_DEG = 0.5
#: the smallest radius of curvature of the WGS84 ellipsoid (meridional, at the equator)
R_MIN_M = 6_335_439.0


@dataclass(frozen=True)
class Band:
    """A metric CRS and the villages (indices) measured in it."""

    crs: str
    west: float
    east: float
    members: np.ndarray

    @property
    def lon_range(self) -> tuple[float, float]:
        return self.window(MARGIN_DEG)

    def window(self, margin_deg: float) -> tuple[float, float]:
        """The longitudes within ``margin_deg`` of the band."""
        return self.west - margin_deg, self.east + margin_deg


def outside_bound_m(lon: np.ndarray, lat: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """A lower bound, in metric-CRS metres, on the distance from each point to anything whose
    longitude lies outside ``window``.

    On a sphere the distance from (lon, lat) to the meridian ``d`` degrees away is
    R asin(cos lat sin d); R is the ellipsoid's smallest radius of curvature, and 1% is taken off
    for the projections' scale error (under 0.25% in a band, a little more just outside it).
    """
    d = np.radians(np.minimum(np.minimum(lon - window[0], window[1] - lon), 90.0))
    s = np.clip(np.abs(np.cos(np.radians(lat))) * np.sin(np.maximum(d, 0.0)), 0.0, 1.0)
    return 0.99 * R_MIN_M * np.arcsin(s)


def tmerc(lon_0: float, lat_0: float = 0.0) -> str:
    return (f"+proj=tmerc +lat_0={lat_0:.6f} +lon_0={lon_0:.6f} +k=1 +x_0=0 +y_0=0 "
            "+datum=WGS84 +units=m +no_defs")


def bands_of(lon: np.ndarray, lat: np.ndarray) -> Iterator[Band]:
    """Group points into metric bands: one local transverse Mercator, or UTM zones."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return
    lo, hi = float(lon[ok].min()), float(lon[ok].max())
    if hi - lo <= MAX_BAND_DEG:
        yield Band(crs=tmerc(round((lo + hi) / 2, 3)), west=lo, east=hi,
                   members=np.flatnonzero(ok))
        return
    z = utm_zone_of(np.where(ok, lon, 0.0))
    key = np.where(lat >= 0, z, -z)
    for k in np.unique(key[ok]):
        zone = int(abs(k))
        west = -180.0 + 6.0 * (zone - 1)
        yield Band(crs=f"EPSG:{utm_epsg_for_zone(zone, bool(k > 0))}", west=west, east=west + 6.0,
                   members=np.flatnonzero(ok & (key == k)))


def project(geoms: np.ndarray, crs: str, inverse: bool = False) -> np.ndarray:
    """Geometries from EPSG:4326 to ``crs`` (or back with ``inverse``), vectorised."""
    geoms = np.asarray(geoms, dtype=object)
    xy = transform_xy(shapely.get_coordinates(geoms), crs, inverse)
    return shapely.set_coordinates(geoms.copy(), xy)


_TRANSFORMERS: dict[tuple[str, str], Transformer] = {}


def _transformer(src: str, dst: str) -> Transformer:
    key = (src, dst)
    if key not in _TRANSFORMERS:
        _TRANSFORMERS[key] = Transformer.from_crs(CRS(src), CRS(dst), always_xy=True)
    return _TRANSFORMERS[key]


def in_lon_range(geoms: np.ndarray, lon_range: tuple[float, float]) -> np.ndarray:
    """Which geometries' bounds overlap the longitude window."""
    b = shapely.bounds(geoms)
    return (b[:, 2] >= lon_range[0]) & (b[:, 0] <= lon_range[1])


def transform_xy(xy: np.ndarray, crs: str, inverse: bool = False) -> np.ndarray:
    """An (N, 2) lon/lat array to ``crs`` coordinates (or back with ``inverse``)."""
    src, dst = ("EPSG:4326", crs) if not inverse else (crs, "EPSG:4326")
    x, y = _transformer(src, dst).transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])
