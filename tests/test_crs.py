"""Tests for geo.crs against the independent ``prcoords`` implementation."""

from __future__ import annotations

import re

import numpy as np
import prcoords
import pytest
import shapely
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info

from buque.geo import crs

EARTH_R = 6371008.8

ANKANG = (109.03, 32.68)  # 安康, Shaanxi

# Points clearly outside the GCJ-02 bounding box.
OUTSIDE_LON = np.array([2.35, -74.0, 139.7, 100.0, 106.8, 151.2, 71.0])
OUTSIDE_LAT = np.array([48.85, 40.7, 35.7, 60.0, -6.2, -33.9, 30.0])


def haversine_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in metres (vectorised)."""
    lon1, lat1, lon2, lat2 = (
        np.deg2rad(np.asarray(a, dtype=float)) for a in (lon1, lat1, lon2, lat2)
    )
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_R * np.arcsin(np.sqrt(h))


@pytest.fixture(scope="module")
def grid() -> tuple[np.ndarray, np.ndarray]:
    """~400 points spread over China (irregular spacing), plus Ankang."""
    lon, lat = np.meshgrid(np.linspace(73.3, 134.7, 21), np.linspace(18.2, 53.4, 19))
    lon = np.append(lon.ravel(), ANKANG[0])
    lat = np.append(lat.ravel(), ANKANG[1])
    assert crs.in_china(lon, lat).all()
    return lon, lat


def _prc(fn, lon, lat, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Apply a (lat, lon)-tuple prcoords function point by point -> (lon, lat) arrays."""
    out = np.array([fn((la, lo), **kw) for lo, la in zip(lon, lat, strict=True)])
    return out[:, 1], out[:, 0]


# --------------------------------------------------------------------------
# forward transforms
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (crs.wgs84_to_gcj02, prcoords.wgs_gcj),
        (crs.gcj02_to_bd09, prcoords.gcj_bd),
        (crs.wgs84_to_bd09, prcoords.wgs_bd),
    ],
)
def test_forward_matches_prcoords(grid, ours, theirs):
    lon, lat = grid
    x, y = ours(lon, lat)
    px, py = _prc(theirs, lon, lat)
    assert x.dtype == np.float64 and x.shape == lon.shape
    assert np.max(haversine_m(x, y, px, py)) < 0.01
    # same formula, so agreement is essentially exact (catches e.g. a wrong ellipsoid,
    # which only shifts results by ~0.5 mm)
    np.testing.assert_allclose(x, px, rtol=0, atol=1e-10)
    np.testing.assert_allclose(y, py, rtol=0, atol=1e-10)
    # the offset is real (hundreds of metres), so the comparison is meaningful
    assert np.median(haversine_m(lon, lat, x, y)) > 100


def test_ankang_known_offset():
    x, y = crs.wgs84_to_gcj02(*ANKANG)
    assert x.shape == ()
    # GCJ-02 shifts Ankang roughly 0.0049 deg east and 0.0021 deg south
    assert x == pytest.approx(109.034868, abs=1e-6)
    assert y == pytest.approx(32.677930, abs=1e-6)


# --------------------------------------------------------------------------
# inverses
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fwd", "inv"),
    [
        (crs.wgs84_to_gcj02, crs.gcj02_to_wgs84),
        (crs.wgs84_to_bd09, crs.bd09_to_wgs84),
        (crs.gcj02_to_bd09, crs.bd09_to_gcj02),
    ],
)
def test_round_trip(grid, fwd, inv):
    lon, lat = grid
    back = inv(*fwd(lon, lat))
    err = haversine_m(lon, lat, *back)
    assert np.max(err) < 0.05
    # a single non-iterated correction step is only metre-level; we must do far better
    assert np.max(err) < 1e-3


@pytest.mark.parametrize(
    ("make_src", "ours", "theirs"),
    [
        (crs.wgs84_to_gcj02, crs.gcj02_to_wgs84, prcoords.gcj_wgs_bored),
        (crs.wgs84_to_bd09, crs.bd09_to_wgs84, prcoords.bd_wgs_bored),
        (crs.wgs84_to_bd09, crs.bd09_to_gcj02, prcoords.bd_gcj_bored),
    ],
)
def test_inverse_matches_prcoords_bored(grid, make_src, ours, theirs):
    # feed the inverses genuine offset coordinates
    src_lon, src_lat = make_src(*grid)
    x, y = ours(src_lon, src_lat)
    px, py = _prc(theirs, src_lon, src_lat)
    assert np.max(haversine_m(x, y, px, py)) < 1.0


def test_iterated_inverse_beats_rough_inverse(grid):
    lon, lat = grid
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    ours = haversine_m(lon, lat, *crs.gcj02_to_wgs84(glon, glat))
    rough = haversine_m(lon, lat, *_prc(prcoords.gcj_wgs, glon, glat))
    assert np.max(rough) > 0.1  # the one-step inverse is visibly off ...
    assert np.max(ours) < np.max(rough) / 100  # ... and ours is far better


# --------------------------------------------------------------------------
# outside China, shapes, odd values
# --------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [crs.wgs84_to_gcj02, crs.gcj02_to_wgs84])
def test_outside_china_unchanged(fn):
    x, y = fn(OUTSIDE_LON, OUTSIDE_LAT)
    np.testing.assert_array_equal(x, OUTSIDE_LON)
    np.testing.assert_array_equal(y, OUTSIDE_LAT)


def test_bd_outside_china_round_trips():
    bx, by = crs.wgs84_to_bd09(OUTSIDE_LON, OUTSIDE_LAT)
    # only the Baidu part applies outside China
    np.testing.assert_array_equal(bx, crs.gcj02_to_bd09(OUTSIDE_LON, OUTSIDE_LAT)[0])
    assert np.max(haversine_m(OUTSIDE_LON, OUTSIDE_LAT, *crs.bd09_to_wgs84(bx, by))) < 1e-3


def test_mixed_inside_outside_2d_shape():
    lon = np.array([[ANKANG[0], 2.35], [139.7, 116.4]])
    lat = np.array([[ANKANG[1], 48.85], [35.7, 39.9]])
    x, y = crs.wgs84_to_gcj02(lon, lat)
    assert x.shape == (2, 2)
    moved = (x != lon) | (y != lat)
    np.testing.assert_array_equal(moved, [[True, False], [False, True]])
    bx, by = crs.gcj02_to_wgs84(x, y)
    assert np.max(haversine_m(lon, lat, bx, by)) < 0.05


def test_inputs_not_mutated_and_lists_accepted():
    lon = np.array([109.03, 116.4])
    lat = np.array([32.68, 39.9])
    lon0, lat0 = lon.copy(), lat.copy()
    crs.gcj02_to_wgs84(lon, lat)
    crs.bd09_to_wgs84(lon, lat)
    np.testing.assert_array_equal(lon, lon0)
    np.testing.assert_array_equal(lat, lat0)
    x, _ = crs.wgs84_to_gcj02([109, 116], [32, 39])  # ints in lists
    assert x.dtype == np.float64


def test_nan_passes_through():
    x, y = crs.bd09_to_wgs84([np.nan, 109.03], [np.nan, 32.68])
    assert np.isnan(x[0]) and np.isnan(y[0])
    assert np.isfinite(x[1]) and np.isfinite(y[1])


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        crs.wgs84_to_gcj02([1.0, 2.0], [1.0])


# --------------------------------------------------------------------------
# datum names / dispatch
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GCJ-02", "GCJ-02"),
        ("gcj02", "GCJ-02"),
        (" Gcj-02 ", "GCJ-02"),
        ("BD-09", "BD-09"),
        ("bd09", "BD-09"),
        ("WGS84", None),
        ("EPSG:4490", None),
        ("EPSG:4326", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_datum_name(name, expected):
    assert crs.normalise_datum_name(name) == expected


def test_offset_datums():
    assert set(crs.OFFSET_DATUMS) == {"GCJ-02", "BD-09"}


@pytest.mark.parametrize(
    ("datum", "direct"),
    [
        ("GCJ-02", crs.gcj02_to_wgs84),
        ("gcj02", crs.gcj02_to_wgs84),
        ("BD-09", crs.bd09_to_wgs84),
        ("Bd09", crs.bd09_to_wgs84),
    ],
)
def test_to_wgs84_dispatch(grid, datum, direct):
    lon, lat = grid
    x, y = crs.to_wgs84(lon, lat, datum)
    dx, dy = direct(lon, lat)
    np.testing.assert_array_equal(x, dx)
    np.testing.assert_array_equal(y, dy)
    assert np.median(haversine_m(lon, lat, x, y)) > 100


@pytest.mark.parametrize("datum", ["WGS84", "wgs84"])
def test_to_wgs84_identity(grid, datum):
    lon, lat = grid
    x, y = crs.to_wgs84(lon, lat, datum)
    np.testing.assert_array_equal(x, lon)
    np.testing.assert_array_equal(y, lat)
    assert x is not lon


@pytest.mark.parametrize("bad", ["EPSG:4490", "CGCS2000", "GCJ-03", ""])
def test_to_wgs84_bad_datum(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        crs.to_wgs84([109.0], [32.0], bad)


# --------------------------------------------------------------------------
# shapely geometries
# --------------------------------------------------------------------------
def _wgs_geoms():
    poly = shapely.Polygon(
        [(109.0, 32.6), (109.1, 32.6), (109.1, 32.7), (109.0, 32.7)],
        holes=[[(109.04, 32.64), (109.06, 32.64), (109.06, 32.66)]],
    )
    line = shapely.LineString([(116.30, 39.90), (116.40, 39.95), (116.50, 39.92)])
    return poly, line


@pytest.mark.parametrize(
    ("datum", "fwd", "bored"),
    [
        ("GCJ-02", crs.wgs84_to_gcj02, prcoords.gcj_wgs_bored),
        ("bd09", crs.wgs84_to_bd09, prcoords.bd_wgs_bored),
    ],
)
def test_transform_geometries(datum, fwd, bored):
    poly, line = _wgs_geoms()
    to_offset = lambda c: np.column_stack(fwd(c[:, 0], c[:, 1]))  # noqa: E731
    off = shapely.transform(np.array([poly, line, None]), to_offset)
    res = crs.transform_geometries_offset(off, datum)

    assert isinstance(res, np.ndarray) and res.shape == (3,)
    assert res[2] is None
    assert res[0].geom_type == "Polygon" and len(res[0].interiors) == 1
    assert res[1].geom_type == "LineString"
    for orig, src, got in zip((poly, line), off[:2], res[:2], strict=True):
        o = shapely.get_coordinates(orig)
        s = shapely.get_coordinates(src)
        g = shapely.get_coordinates(got)
        assert g.shape == o.shape
        # recovered the original WGS84 geometry ...
        assert np.max(haversine_m(o[:, 0], o[:, 1], g[:, 0], g[:, 1])) < 0.05
        # ... which is far from the offset input ...
        assert np.min(haversine_m(s[:, 0], s[:, 1], g[:, 0], g[:, 1])) > 100
        # ... and agrees with prcoords' precise inverse
        px, py = _prc(bored, s[:, 0], s[:, 1])
        assert np.max(haversine_m(px, py, g[:, 0], g[:, 1])) < 1.0


def test_transform_geometries_keeps_z_and_multi():
    geoms = np.array(
        [
            shapely.Point(109.03, 32.68, 350.0),
            shapely.MultiPoint([(109.0, 32.0), (110.0, 33.0)]),
        ]
    )
    res = crs.transform_geometries_offset(geoms, "GCJ-02")
    assert res[0].has_z and res[0].z == 350.0
    assert res[1].geom_type == "MultiPoint"
    exp = np.column_stack(crs.gcj02_to_wgs84([109.0, 110.0], [32.0, 33.0]))
    np.testing.assert_allclose(shapely.get_coordinates(res[1]), exp, rtol=0, atol=1e-12)


def test_transform_geometries_bad_datum():
    with pytest.raises(ValueError, match="EPSG:4490"):
        crs.transform_geometries_offset(np.array([shapely.Point(109, 32)]), "EPSG:4490")


# --------------------------------------------------------------------------
# UTM
# --------------------------------------------------------------------------
def test_utm_epsg_ankang():
    assert crs.utm_epsg(*ANKANG) == 32649


def test_utm_epsg_south():
    code = crs.utm_epsg(106.8, -6.2)  # Jakarta
    assert 32701 <= code <= 32760
    assert code == 32748


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(109.03, 32.68), (75.5, 39.4), (126.6, 45.7), (-58.4, -34.6), (-150.1, 61.2), (2.0, 10.0)],
)
def test_utm_epsg_matches_pyproj(lon, lat):
    infos = query_utm_crs_info(
        datum_name="WGS 84",
        area_of_interest=AreaOfInterest(lon, lat, lon, lat),
    )
    codes = {int(i.code) for i in infos if i.code.startswith(("326", "327"))}
    assert crs.utm_epsg(lon, lat) in codes


def test_utm_zone_of_vectorised():
    lon = np.array([-180.0, -177.0, -0.1, 0.0, 5.99, 6.0, 109.03, 179.99, 180.0])
    np.testing.assert_array_equal(crs.utm_zone_of(lon), [1, 1, 30, 31, 31, 32, 49, 60, 1])


def test_utm_epsg_for_zone():
    assert crs.utm_epsg_for_zone(49) == 32649
    assert crs.utm_epsg_for_zone(1, north=False) == 32701
    assert crs.utm_epsg_for_zone(60, north=False) == 32760
    for bad in (0, 61, 12.5):
        with pytest.raises(ValueError):
            crs.utm_epsg_for_zone(bad)
