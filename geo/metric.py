"""Metric projections for distances: every village is measured in its own UTM zone.

A village's metric CRS is the WGS84 UTM zone (6° wide; north or south by the sign of the
latitude) that holds its reference point, whatever other villages are in the run: a county run
alone and inside its province measure the same village in the same CRS, see the same feature
windows and get the same distances. Villages are grouped by zone (:func:`bands_of`); the engine
loops over zones, never over villages.

Accuracy: a distance measured in a UTM zone is the geodesic one times the mean scale factor
along the line, k = 0.9996 (1 + x²/2R² + ...) at x metres east or west of the central meridian.
Between two points of the zone that is -0.04% to +0.10% (at the zone's edges, at the equator;
+0.085% at 18°N, +0.01% at 53°N). The village always lies in its zone; a feature up to the edge
of the :data:`MARGIN_DEG` window (3° beyond the zone, 6° from the central meridian) is measured
at most +0.25% long at 18°N (+0.28% at the equator, +0.08% at 53°N). So every distance is within
0.3% of the geodesic distance to the same feature; ``tests/test_consistency.py`` checks 0.5%
against ``pyproj.Geod`` over 18-53°N, 72-132°E, zone edges included (max seen 0.09%).

Each zone sees the features within :data:`MARGIN_DEG` degrees of longitude of it; nearest-feature
searches first look only within :data:`NEAR_MARGIN_DEG` and widen for the few villages that
narrow window cannot certify (a lower bound, :func:`outside_bound_m`, proves the narrow answer
is the wide one). Both windows are fixed per zone, so the results do not depend on the run's
extent; the narrow window only saves time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import CRS, Transformer

from buque.geo.crs import utm_epsg_for_zone, utm_zone_of

MARGIN_DEG = 3.0
#: the narrow window tried first for nearest-feature searches (see :func:`outside_bound_m`)
NEAR_MARGIN_DEG = 0.5
#: the smallest radius of curvature of the WGS84 ellipsoid (meridional, at the equator)
R_MIN_M = 6_335_439.0


@dataclass(frozen=True)
class Band:
    """A metric CRS (a UTM zone), its longitudes, and the villages (indices) measured in it."""

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
    for the projection (a transverse Mercator's scale factor is at least k0 = 0.9996 everywhere,
    so a projected distance is at least 0.9996 times the geodesic one).
    """
    d = np.radians(np.minimum(np.minimum(lon - window[0], window[1] - lon), 90.0))
    s = np.clip(np.abs(np.cos(np.radians(lat))) * np.sin(np.maximum(d, 0.0)), 0.0, 1.0)
    return 0.99 * R_MIN_M * np.arcsin(s)


def tmerc(lon_0: float, lat_0: float = 0.0) -> str:
    """A local transverse Mercator (for maps; distances use :func:`bands_of`'s UTM zones)."""
    return (f"+proj=tmerc +lat_0={lat_0:.6f} +lon_0={lon_0:.6f} +k=1 +x_0=0 +y_0=0 "
            "+datum=WGS84 +units=m +no_defs")


def utm_crs(zone: int, north: bool) -> str:
    return f"EPSG:{utm_epsg_for_zone(zone, north)}"


def bands_of(lon: np.ndarray, lat: np.ndarray) -> Iterator[Band]:
    """Group points by the UTM zone that holds them (north/south by the sign of ``lat``).

    Each point's band depends on that point alone; bands come in (zone, hemisphere) order.
    Points with a non-finite coordinate are in no band.
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return
    z = utm_zone_of(np.where(ok, lon, 0.0))
    key = np.where(lat >= 0, z, -z)
    for k in np.unique(key[ok]):
        yield zone_band(int(abs(k)), bool(k > 0), np.flatnonzero(ok & (key == k)))


def zone_band(zone: int, north: bool, members: np.ndarray) -> Band:
    """The band of UTM ``zone`` (its hemisphere), holding the villages ``members``."""
    west = -180.0 + 6.0 * (zone - 1)
    return Band(crs=utm_crs(zone, north), west=west, east=west + 6.0, members=members)


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
