"""Village reference points and the natural -> administrative village link."""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from buque.geo.metric import bands_of, project, transform_xy
from buque.geo.nearest import FeatureIndex


def reference_points(geoms: np.ndarray, ref_lon: np.ndarray | None = None,
                     ref_lat: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat of each village's reference point (EPSG:4326).

    A point is its own reference; a polygon uses the given ``ref_lon``/``ref_lat`` when both
    are present, else its point_on_surface computed in the UTM zone that holds the centre of its
    lon/lat bounds (north/south by the centre's latitude). Each village's point depends on that
    village alone, not on the others in ``geoms``; polygons are projected zone by zone.
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    is_point = shapely.get_type_id(geoms) == 0
    lon[is_point] = shapely.get_x(geoms[is_point])
    lat[is_point] = shapely.get_y(geoms[is_point])
    if ref_lon is not None and ref_lat is not None:
        given = ~is_point & np.isfinite(ref_lon) & np.isfinite(ref_lat)
        lon[given], lat[given] = ref_lon[given], ref_lat[given]
    todo = np.flatnonzero(~np.isfinite(lon))
    if len(todo):  # the zone of the centre of the bounds (cheaper than centroids)
        xmin, ymin, xmax, ymax = shapely.bounds(geoms[todo]).T
        for b in bands_of((xmin + xmax) / 2, (ymin + ymax) / 2):
            sub = todo[b.members]
            pos = shapely.point_on_surface(project(geoms[sub], b.crs))
            lon[sub], lat[sub] = transform_xy(shapely.get_coordinates(pos), b.crs, inverse=True).T
    return lon, lat


def link_parents(natural: gpd.GeoDataFrame, admin: gpd.GeoDataFrame) -> pd.DataFrame:
    """``village_code`` and its source for natural villages: given, else spatial.

    Spatial: the administrative polygon containing the point, else the nearest administrative
    reference point (metres, in the point's UTM zone). Returns columns ``village_code`` and
    ``village_code_source`` (``given`` | ``contains`` | ``nearest`` | null when no admin villages).
    """
    code = natural["village_code"].astype("string").copy()
    source = pd.Series(pd.NA, index=natural.index, dtype="string")
    source[code.notna()] = "given"
    todo = np.flatnonzero(code.isna().to_numpy())
    if len(todo) == 0 or len(admin) == 0:
        return pd.DataFrame({"village_code": code, "village_code_source": source})
    pts = natural.geometry.to_numpy()[todo]
    admin_geom = admin.geometry.to_numpy()
    admin_code = admin["code"].astype("string").to_numpy()
    poly = np.flatnonzero(shapely.get_dimensions(admin_geom) == 2)
    found = np.full(len(todo), -1, dtype=np.int64)
    if len(poly):
        tree = shapely.STRtree(admin_geom[poly])
        qi, pi = tree.query(pts, predicate="within")
        order = np.lexsort((pi, qi))
        qi, pi = qi[order], pi[order]
        first = np.r_[True, qi[1:] != qi[:-1]] if len(qi) else np.zeros(0, bool)
        found[qi[first]] = poly[pi[first]]
    via_contains = found >= 0
    rest = np.flatnonzero(~via_contains)
    if len(rest):
        ref = shapely.points(admin["ref_lon"].to_numpy(float), admin["ref_lat"].to_numpy(float))
        p = pts[rest]
        for b in bands_of(shapely.get_x(p), shapely.get_y(p)):
            idx = FeatureIndex(ref, b.crs)
            _, near = idx.nearest(transform_xy(shapely.get_coordinates(p[b.members]), b.crs))
            found[rest[b.members]] = near
    hit = found >= 0
    code.iloc[todo[hit]] = admin_code[found[hit]]
    src = np.where(via_contains, "contains", "nearest")
    source.iloc[todo[hit]] = src[hit]
    return pd.DataFrame({"village_code": code, "village_code_source": source})


#: a village's gap class, one rule for the web map, the print maps and the HTML export:
#: ``gaps`` (at least one indicator missing), ``unverified`` (none missing, at least one
#: unknown: 无缺口，待核实), ``met`` (nothing missing or unknown)
GAP_CLASSES = ("gaps", "unverified", "met")


def gap_class_codes(v: pd.DataFrame, indicators: Sequence[str]) -> np.ndarray:
    """Per village, its position in :data:`GAP_CLASSES`, from the status columns of
    ``indicators`` (those present in ``v``; vectorised)."""
    missing = np.zeros(len(v), dtype=bool)
    unknown = np.zeros(len(v), dtype=bool)
    for k in indicators:
        if k in v.columns:
            st = v[k].astype("string")
            missing |= (st == "missing").to_numpy(dtype=bool, na_value=False)
            unknown |= (st == "unknown").to_numpy(dtype=bool, na_value=False)
    return np.where(missing, 0, np.where(unknown, 1, 2)).astype(np.int64)


def gap_class(v: pd.DataFrame, indicators: Sequence[str]) -> pd.api.extensions.ExtensionArray:
    """Per village, its gap class (see :data:`GAP_CLASSES`) as a ``string`` array."""
    return pd.array(np.array(GAP_CLASSES, dtype=object), dtype="string").take(
        gap_class_codes(v, indicators))
