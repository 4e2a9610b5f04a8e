"""Chinese offset datums (GCJ-02, BD-09) and UTM helpers.

Web maps and POI data from Chinese providers are usually published in one of
two obfuscated "datums":

* **GCJ-02** ("Mars coordinates"), a deliberate non-linear offset of WGS84
  (typically 100-700 m), applied only inside mainland China;
* **BD-09**, Baidu's extra offset applied on top of GCJ-02.

The forward transforms are the standard public formulas (Krasovsky-1940
ellipsoid for GCJ-02). They have no closed-form inverse, so the inverses are
computed by a vectorised fixed-point iteration that converges to well below
1 cm.

All coordinate functions take longitude/latitude in degrees as array-likes of
identical shape and return new ``float64`` numpy arrays of that shape (0-d
arrays for scalar input). Nothing loops over points in Python.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import shapely

__all__ = [
    "OFFSET_DATUMS",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "in_china",
    "normalise_datum_name",
    "to_wgs84",
    "transform_geometries_offset",
    "utm_epsg",
    "utm_epsg_for_zone",
    "utm_zone_of",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]
LonLat = tuple[FloatArray, FloatArray]

#: Datums that are offsets of WGS84 rather than proper (pyproj) CRSs.
OFFSET_DATUMS: frozenset[str] = frozenset({"GCJ-02", "BD-09"})

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 algorithm.
_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323

# Baidu constants.
_X_PI = np.pi * 3000.0 / 180.0
_BD_DLON = 0.0065
_BD_DLAT = 0.006

# Rough mainland-China bounding box used by all common GCJ-02 implementations.
_CHINA_LON = (72.004, 137.8347)
_CHINA_LAT = (0.8293, 55.8271)

# Fixed-point iteration controls for the inverses.
_INV_TOL_DEG = 1e-7
_INV_MAX_ITER = 10

_DATUM_ALIASES: dict[str, str] = {
    "GCJ02": "GCJ-02",
    "BD09": "BD-09",
    "WGS84": "WGS84",
}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _as_lonlat(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """Return float64 copies of ``lon``/``lat``, checking they share a shape."""
    x = np.array(lon, dtype=np.float64, copy=True)
    y = np.array(lat, dtype=np.float64, copy=True)
    if x.shape != y.shape:
        raise ValueError(f"lon and lat must have the same shape, got {x.shape} and {y.shape}")
    return x, y


def in_china(lon: ArrayLike, lat: ArrayLike) -> npt.NDArray[np.bool_]:
    """Rough "is inside mainland China" test used by GCJ-02.

    Parameters
    ----------
    lon, lat : array_like
        Coordinates in degrees (same shape).

    Returns
    -------
    numpy.ndarray of bool
        True where the point lies in the GCJ-02 bounding box. NaN is False.
    """
    x, y = _as_lonlat(lon, lat)
    return (x >= _CHINA_LON[0]) & (x <= _CHINA_LON[1]) & (y >= _CHINA_LAT[0]) & (y <= _CHINA_LAT[1])


def _gcj_offset(lon: FloatArray, lat: FloatArray) -> LonLat:
    """Raw GCJ-02 forward transform (no bounding-box test)."""
    x = lon - 105.0
    y = lat - 35.0
    # term shared by both components
    common = (20.0 * np.sin(6.0 * np.pi * x) + 20.0 * np.sin(2.0 * np.pi * x)) * 2.0 / 3.0
    dlat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * np.sqrt(np.abs(x))
        + common
        + (20.0 * np.sin(np.pi * y) + 40.0 * np.sin(np.pi * y / 3.0)) * 2.0 / 3.0
        + (160.0 * np.sin(np.pi * y / 12.0) + 320.0 * np.sin(np.pi * y / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * np.sqrt(np.abs(x))
        + common
        + (20.0 * np.sin(np.pi * x) + 40.0 * np.sin(np.pi * x / 3.0)) * 2.0 / 3.0
        + (150.0 * np.sin(np.pi * x / 12.0) + 300.0 * np.sin(np.pi * x / 30.0)) * 2.0 / 3.0
    )
    rad_lat = np.deg2rad(lat)
    magic = 1.0 - _GCJ_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return lon + dlon, lat + dlat


def _bd_forward(lon: FloatArray, lat: FloatArray) -> LonLat:
    """Raw GCJ-02 -> BD-09 formula."""
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + _BD_DLON, z * np.sin(theta) + _BD_DLAT


def _bd_inverse_approx(lon: FloatArray, lat: FloatArray) -> LonLat:
    """Standard closed-form (approximate, ~1e-7 deg) BD-09 -> GCJ-02 formula."""
    x = lon - _BD_DLON
    y = lat - _BD_DLAT
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def _fixed_point_inverse(
    forward: Callable[[FloatArray, FloatArray], LonLat],
    target_lon: FloatArray,
    target_lat: FloatArray,
    start_lon: FloatArray,
    start_lat: FloatArray,
) -> LonLat:
    """Solve ``forward(p) == target`` by ``p -= forward(p) - target`` (vectorised).

    Stops once the largest correction is below ``_INV_TOL_DEG`` or after
    ``_INV_MAX_ITER`` iterations. The offsets are tiny, smooth perturbations of
    the identity, so each step shrinks the error by a factor of ~1e-3.
    """
    px = start_lon.copy()
    py = start_lat.copy()
    for _ in range(_INV_MAX_ITER):
        fx, fy = forward(px, py)
        dx = fx - target_lon
        dy = fy - target_lat
        px -= dx
        py -= dy
        step = np.maximum(np.abs(dx), np.abs(dy))
        if np.max(step[np.isfinite(step)], initial=0.0) < _INV_TOL_DEG:
            break
    return px, py


# --------------------------------------------------------------------------
# GCJ-02
# --------------------------------------------------------------------------
def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """Convert WGS84 to GCJ-02.

    Parameters
    ----------
    lon, lat : array_like
        WGS84 coordinates in degrees (same shape).

    Returns
    -------
    (lon, lat) : tuple of numpy.ndarray
        GCJ-02 coordinates. Points outside the China bounding box (and
        non-finite values) are returned unchanged.
    """
    x, y = _as_lonlat(lon, lat)
    m = in_china(x, y)
    if m.any():
        x[m], y[m] = _gcj_offset(x[m], y[m])
    return x, y


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """Convert GCJ-02 to WGS84 (iterative exact inverse of :func:`wgs84_to_gcj02`).

    Parameters
    ----------
    lon, lat : array_like
        GCJ-02 coordinates in degrees (same shape).

    Returns
    -------
    (lon, lat) : tuple of numpy.ndarray
        WGS84 coordinates, accurate to well under 1 cm. Points outside the
        China bounding box (tested on the GCJ-02 input) are returned unchanged.
    """
    x, y = _as_lonlat(lon, lat)
    m = in_china(x, y)
    if m.any():
        gx, gy = x[m], y[m]
        x[m], y[m] = _fixed_point_inverse(_gcj_offset, gx, gy, gx, gy)
    return x, y


# --------------------------------------------------------------------------
# BD-09
# --------------------------------------------------------------------------
def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """Convert GCJ-02 to BD-09 (standard Baidu formula).

    Parameters
    ----------
    lon, lat : array_like
        GCJ-02 coordinates in degrees (same shape).

    Returns
    -------
    (lon, lat) : tuple of numpy.ndarray
        BD-09 coordinates. The Baidu offset has no bounding box and is applied
        everywhere; non-finite values pass through unchanged.
    """
    x, y = _as_lonlat(lon, lat)
    m = np.isfinite(x) & np.isfinite(y)
    if m.any():
        x[m], y[m] = _bd_forward(x[m], y[m])
    return x, y


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """Convert BD-09 to GCJ-02.

    Starts from the standard closed-form inverse and refines it with the same
    fixed-point iteration as :func:`gcj02_to_wgs84`, so the result is the exact
    inverse of :func:`gcj02_to_bd09` (to ~1e-7 deg or better).

    Parameters
    ----------
    lon, lat : array_like
        BD-09 coordinates in degrees (same shape).

    Returns
    -------
    (lon, lat) : tuple of numpy.ndarray
        GCJ-02 coordinates; non-finite values pass through unchanged.
    """
    x, y = _as_lonlat(lon, lat)
    m = np.isfinite(x) & np.isfinite(y)
    if m.any():
        bx, by = x[m], y[m]
        sx, sy = _bd_inverse_approx(bx, by)
        x[m], y[m] = _fixed_point_inverse(_bd_forward, bx, by, sx, sy)
    return x, y


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """Convert WGS84 to BD-09 (via GCJ-02).

    Parameters
    ----------
    lon, lat : array_like
        WGS84 coordinates in degrees (same shape).

    Returns
    -------
    (lon, lat) : tuple of numpy.ndarray
        BD-09 coordinates. Outside China only the Baidu offset is applied.
    """
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """Convert BD-09 to WGS84 (iterative exact inverse of :func:`wgs84_to_bd09`).

    Parameters
    ----------
    lon, lat : array_like
        BD-09 coordinates in degrees (same shape).

    Returns
    -------
    (lon, lat) : tuple of numpy.ndarray
        WGS84 coordinates, accurate to well under 1 cm.
    """
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


# --------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------
def _datum_key(name: object) -> str | None:
    if not isinstance(name, str):
        return None
    key = name.strip().upper().replace("-", "").replace("_", "").replace(" ", "")
    return _DATUM_ALIASES.get(key)


def normalise_datum_name(name: object) -> str | None:
    """Canonical name of an offset datum.

    Parameters
    ----------
    name : object
        Datum name, e.g. ``"gcj02"``, ``"GCJ-02"``, ``"bd09"``, ``"EPSG:4490"``.

    Returns
    -------
    str or None
        ``"GCJ-02"`` or ``"BD-09"`` for spellings of those datums (case,
        hyphens, underscores and spaces are ignored); ``None`` for anything
        else, including WGS84 and pyproj CRS strings.
    """
    key = _datum_key(name)
    return key if key in OFFSET_DATUMS else None


_TO_WGS84: dict[str, Callable[[ArrayLike, ArrayLike], LonLat]] = {
    "WGS84": _as_lonlat,
    "GCJ-02": gcj02_to_wgs84,
    "BD-09": bd09_to_wgs84,
}


def _converter(datum: str) -> Callable[[ArrayLike, ArrayLike], LonLat]:
    key = _datum_key(datum)
    if key is None:
        raise ValueError(f"unsupported datum {datum!r}: expected one of 'WGS84', 'GCJ-02', 'BD-09'")
    return _TO_WGS84[key]


def to_wgs84(lon: ArrayLike, lat: ArrayLike, datum: str) -> LonLat:
    """Convert coordinates in ``datum`` to WGS84.

    Parameters
    ----------
    lon, lat : array_like
        Coordinates in degrees (same shape).
    datum : str
        ``"WGS84"``, ``"GCJ-02"`` or ``"BD-09"`` (case-insensitive;
        ``"GCJ02"``/``"BD09"`` also accepted).

    Returns
    -------
    (lon, lat) : tuple of numpy.ndarray
        WGS84 coordinates (a float64 copy for ``"WGS84"``).

    Raises
    ------
    ValueError
        If ``datum`` is not one of the above.
    """
    return _converter(datum)(lon, lat)


def transform_geometries_offset(geoms: ArrayLike, datum: str) -> np.ndarray:
    """Convert shapely geometries from an offset datum to WGS84.

    All coordinates of all geometries are converted in one vectorised call via
    :func:`shapely.transform`. Any geometry type is supported; Z values are kept
    and ``None`` entries stay ``None``.

    Parameters
    ----------
    geoms : array_like of shapely.Geometry
        Geometries in ``datum``.
    datum : str
        ``"GCJ-02"`` or ``"BD-09"`` (any spelling accepted by :func:`to_wgs84`;
        ``"WGS84"`` returns the geometries unchanged).

    Returns
    -------
    numpy.ndarray of shapely.Geometry
        New geometries in WGS84, same shape as ``geoms``.

    Raises
    ------
    ValueError
        If ``datum`` is not supported.
    """
    convert = _converter(datum)
    arr = np.asarray(geoms, dtype=object)
    if _datum_key(datum) == "WGS84":
        return arr.copy()

    def fn(coords: np.ndarray) -> np.ndarray:
        out = np.array(coords, dtype=np.float64, copy=True)
        out[:, 0], out[:, 1] = convert(coords[:, 0], coords[:, 1])
        return out

    # Split by dimensionality so Z survives on shapely < 2.1 (no include_z=None).
    has_z = np.asarray(shapely.has_z(arr), dtype=bool)
    out = np.empty(arr.shape, dtype=object)
    out[~has_z] = shapely.transform(arr[~has_z], fn, include_z=False)
    if has_z.any():
        out[has_z] = shapely.transform(arr[has_z], fn, include_z=True)
    return out


# --------------------------------------------------------------------------
# UTM
# --------------------------------------------------------------------------
def utm_zone_of(lon: ArrayLike) -> npt.NDArray[np.int64]:
    """UTM zone numbers (1..60) for longitudes, vectorised.

    Standard 6-degree zones; the Norway/Svalbard exceptions are not applied.
    Longitudes are wrapped to [-180, 180), so 180 maps to zone 1.

    Parameters
    ----------
    lon : array_like
        Longitudes in degrees.

    Returns
    -------
    numpy.ndarray of int64
        Zone numbers, same shape as ``lon``.

    Raises
    ------
    ValueError
        If any longitude is not finite.
    """
    x = np.asarray(lon, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("longitudes must be finite")
    zone = np.floor(np.mod(x + 180.0, 360.0) / 6.0).astype(np.int64)
    return np.mod(zone, 60) + 1  # mod guards the float edge case mod(...) == 360.0


def utm_epsg_for_zone(zone: int, north: bool = True) -> int:
    """EPSG code of a WGS84 UTM zone (326xx north, 327xx south).

    Parameters
    ----------
    zone : int
        Zone number 1..60.
    north : bool, default True
        Northern (True) or southern hemisphere.

    Returns
    -------
    int
        EPSG code.

    Raises
    ------
    ValueError
        If ``zone`` is not an integer in 1..60.
    """
    if isinstance(zone, bool) or int(zone) != zone or not 1 <= int(zone) <= 60:
        raise ValueError(f"UTM zone must be an integer in 1..60, got {zone!r}")
    return (32600 if north else 32700) + int(zone)


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone containing a point.

    Parameters
    ----------
    lon, lat : float
        Point in degrees. ``lat >= 0`` counts as northern hemisphere.

    Returns
    -------
    int
        EPSG code, e.g. 32649 for (109.03, 32.68).

    Raises
    ------
    ValueError
        If the point is not finite or ``lat`` is outside [-90, 90].
    """
    lon_f = float(lon)
    lat_f = float(lat)
    if not (np.isfinite(lon_f) and np.isfinite(lat_f) and -90.0 <= lat_f <= 90.0):
        raise ValueError(f"invalid lon/lat: ({lon!r}, {lat!r})")
    zone = int(utm_zone_of(lon_f))
    return utm_epsg_for_zone(zone, north=lat_f >= 0.0)
