"""Reference computations for the tests, written independently of Buque's engine.

Nothing here imports ``geo`` or ``layers``: conditions are read from the profile's TOML text and
evaluated row by row in plain Python; distances are geodesic, from an azimuthal equidistant
projection centred on each village (exact for the distance from its centre) over geometries
densified to <= ~5 m, cross-checked with ``pyproj.Geod`` for point features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import Geod, Transformer

PASS, FAIL, UNKNOWN = 1, 0, -1
GEOD = Geod(ellps="WGS84")
DENSIFY_DEG = 4e-5  # ~4.4 m of latitude, less of longitude


def is_null(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def as_bool(v: Any) -> bool | None:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "是", "y", "t"):
        return True
    if s in ("false", "0", "no", "否", "n", "f"):
        return False
    return None


def as_float(v: Any) -> float | None:
    try:
        return float(str(v).replace(",", ".").split()[0])
    except (ValueError, IndexError):
        return None


def condition(row: dict, cond: dict) -> int:
    """One profile condition (a TOML table) on one record: PASS, FAIL or UNKNOWN."""
    v = row.get(cond["field"])
    if cond["field"] in ("width_m", "radius_m", "households", "population") and not is_null(v):
        v = as_float(v)
    if "eq" in cond and isinstance(cond["eq"], bool) and not is_null(v):
        v = as_bool(v)
    if is_null(v):
        rule = cond.get("if_null", "unknown")
        if isinstance(rule, dict):
            return condition(row, rule)
        return {"pass": PASS, "fail": FAIL, "unknown": UNKNOWN}[rule]
    if "in" in cond:
        return PASS if str(v).strip().lower() in {str(x).lower() for x in cond["in"]} else FAIL
    if "not_in" in cond:
        return FAIL if str(v).strip().lower() in {str(x).lower() for x in cond["not_in"]} else PASS
    if "eq" in cond:
        want = cond["eq"]
        if isinstance(want, str):
            return PASS if str(v).strip().lower() == want.lower() else FAIL
        return PASS if v == want else FAIL
    if "min" in cond:
        return PASS if v >= cond["min"] else FAIL
    if "max" in cond:
        return PASS if v <= cond["max"] else FAIL
    raise ValueError(f"unknown condition {cond}")


def all_of(row: dict, conds: list[dict]) -> int:
    results = [condition(row, c) for c in conds]
    if FAIL in results:
        return FAIL
    if UNKNOWN in results:
        return UNKNOWN
    return PASS


TRAFO = {"transformer", "substation", "pole_transformer", "变压器", "台区", "变电站", "配电变压器"}
LINES = {"line", "minor_line", "cable", "线路", "低压线路", "电缆"}


def _volts(text: str) -> float | None:
    t = text.strip().lower().removesuffix("v")
    scale = 1000.0 if t.endswith("k") else 1.0
    try:
        return float(t.removesuffix("k").strip()) * scale
    except ValueError:
        return None


def _low_voltage(row: dict, lv_max: float) -> bool | None:
    """Does the feature carry a circuit of at most ``lv_max`` volts (None: not recorded)?"""
    raw = row.get("voltage")
    vals = [] if is_null(raw) else [_volts(x) for x in str(raw).split(";")]
    vals = [x for x in vals if x is not None]
    return None if not vals else min(vals) <= lv_max


def _power(row: dict, ind: dict) -> tuple[int, float]:
    """power_supply, by the standard's words: class and reach of one feature (a feature of no
    kind drawn as a line is a line; a point of no kind may be a transformer)."""
    kind = None if is_null(row.get("kind")) else str(row["kind"]).lower()
    if kind is None and row["_linear"]:
        kind = "line"
    if kind is None:
        return UNKNOWN, float(ind["threshold_m"])
    thr, conn = float(ind["threshold_m"]), float(ind.get("connect_m", 100))
    lv = _low_voltage(row, float(ind.get("lv_max_v", 1000)))
    ph = as_float(row.get("phases"))
    three = ind.get("three_phase", False)
    if kind in TRAFO:
        return (FAIL if three and ph == 1 else PASS), thr
    if kind in LINES:
        if lv is None:
            return UNKNOWN, conn
        if not lv:
            return FAIL, thr
        if three:
            return (PASS if ph == 3 else UNKNOWN if ph is None else FAIL), conn
        return PASS, conn
    return (UNKNOWN if kind is None else FAIL), 0.0


def _with_linear(features: pd.DataFrame) -> list[dict]:
    recs = features.drop(columns="geometry").to_dict("records")
    for r, g in zip(recs, features.geometry, strict=True):
        r["_linear"] = g is not None and "LineString" in g.geom_type
    return recs


def classify(features: pd.DataFrame, indicator: dict) -> np.ndarray:
    """PASS / FAIL / UNKNOWN for every feature, by the indicator's ``evidence`` list (and for
    ``power_supply`` by the feature's kind, voltage and phases)."""
    conds = indicator.get("evidence", [])
    recs = features.drop(columns="geometry").to_dict("records")
    cls = [all_of(r, conds) for r in recs]
    if indicator["rule"] == "power_supply":
        own = [_power(r, indicator)[0] for r in _with_linear(features)]
        cls = [FAIL if FAIL in (a, b) else UNKNOWN if UNKNOWN in (a, b) else PASS
               for a, b in zip(cls, own, strict=True)]
    return np.array(cls, dtype=int)


def applies(village: dict, indicator: dict) -> bool:
    if village["level"] not in indicator["levels"]:
        return False
    cond = indicator.get("applies", {}).get(village["level"])
    return cond is None or condition(village, cond) != FAIL


def _aeqd(lon0: float, lat0: float) -> Transformer:
    """Azimuthal equidistant projection centred on (lon0, lat0), WGS84 ellipsoid."""
    return Transformer.from_pipeline(
        "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
        f"+step +proj=aeqd +lat_0={lat0!r} +lon_0={lon0!r} +ellps=WGS84")


def _project(tr: Transformer, geoms: np.ndarray) -> np.ndarray:
    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, fn)


def rough_distances(lon0: float, lat0: float, geoms: np.ndarray) -> np.ndarray:
    """Equirectangular distances (within a few per mille over tens of km): only to shortlist."""
    k = math.cos(math.radians(lat0))

    def fn(xy: np.ndarray) -> np.ndarray:
        return np.column_stack([(xy[:, 0] - lon0) * k * 111_320.0, (xy[:, 1] - lat0) * 110_950.0])

    return shapely.distance(shapely.Point(0.0, 0.0), shapely.transform(geoms, fn))


def geodesic_distances(lon0: float, lat0: float, geoms: np.ndarray) -> np.ndarray:
    """Geodesic distance in metres from (lon0, lat0) to every geometry (0 inside polygons).

    Points: ``Geod.inv`` on the ellipsoid. Lines and areas: densified to ~4 m, projected in an
    azimuthal equidistant projection centred on (lon0, lat0), where the distance from the
    centre to any vertex is its geodesic distance.
    """
    geoms = np.asarray(geoms, dtype=object)
    d = np.zeros(len(geoms))
    if len(geoms) == 0:
        return d
    is_pt = shapely.get_type_id(geoms) == 0
    if is_pt.any():
        p = geoms[is_pt]
        _, _, d[is_pt] = GEOD.inv(np.full(len(p), lon0), np.full(len(p), lat0),
                                  shapely.get_x(p), shapely.get_y(p))
    if (~is_pt).any():
        dense = shapely.segmentize(geoms[~is_pt], DENSIFY_DEG)
        d[~is_pt] = shapely.distance(shapely.Point(0.0, 0.0), _project(_aeqd(lon0, lat0), dense))
    return d


def shortlisted_distances(lon0: float, lat0: float, geoms: np.ndarray, classes: np.ndarray,
                          limit: float) -> np.ndarray:
    """Geodesic distances for the features that can matter, +inf for the rest.

    Shortlist per class: within 5 % + 50 m of that class's roughly nearest feature, or of
    ``limit`` (the largest distance at which a feature can satisfy the rule).
    """
    rough = rough_distances(lon0, lat0, geoms)
    keep = rough <= limit * 1.05 + 50.0
    for c in np.unique(classes):
        sel = classes == c
        keep |= sel & (rough <= rough[sel].min() * 1.05 + 50.0)
    d = np.full(len(geoms), np.inf)
    d[keep] = geodesic_distances(lon0, lat0, geoms[keep])
    return d


@dataclass
class Expected:
    status: str
    distance: float            # to the nearest qualifying feature (nan when none)
    nearest_ids: set[str]      # ids of qualifying features at that distance (ties within 1 m)
    borderline: bool           # a decisive distance lies within 0.5 % of a threshold


def tolerance(d: float) -> float:
    """The contract's accuracy: 0.5 % of the distance, and never tighter than 1 m."""
    return max(1.0, 0.005 * d)


def expect(village: dict, vgeom: shapely.Geometry, indicator: dict, features: pd.DataFrame,
           classes: np.ndarray, ids: np.ndarray) -> Expected:
    """What the profile's rule says for one village and one indicator."""
    lon, lat = village["ref_lon"], village["ref_lat"]
    geoms = features.geometry.to_numpy()
    rule = indicator["rule"]
    radius = None
    if rule == "power_supply":
        radius = np.array([_power(r, indicator)[1] for r in _with_linear(features)])
    if rule == "coverage":
        radius = pd.to_numeric(features.get("radius_m"), errors="coerce").to_numpy(float)
        area = shapely.get_dimensions(geoms) == 2
        radius = np.where(np.isfinite(radius), radius,
                          np.where(area, 0.0, float(indicator["default_radius_m"])))
    limit = max([float(indicator.get(k) or 0) for k in
                 ("threshold_m", "fallback_threshold_m", "default_radius_m", "connect_m")]
                + ([float(radius.max())] if radius is not None and len(radius) else []))
    d = shortlisted_distances(lon, lat, geoms, classes, limit)
    dq = d[classes == PASS]
    dist = float(dq.min()) if len(dq) else float("nan")
    assert np.isfinite(dist) or not len(dq)
    nearest = set(ids[(classes == PASS) & (d <= dist + 1.0)]) if len(dq) else set()
    def within(limit: float | np.ndarray, cls: int, slack: float) -> bool:
        """Some feature of the class within ``limit`` (+ ``slack`` x the contract's accuracy)."""
        sel = classes == cls
        lim = limit if np.ndim(limit) == 0 else limit[sel]
        tol = 0.005 * np.maximum(lim, 0) + 1.0
        # inside a feature (distance 0) is inside whatever the slack
        return bool(np.any((d[sel] == 0) | (d[sel] <= lim + slack * tol)))

    def decide(slack: float) -> str:
        if rule == "within_distance":
            sat = {c: within(float(indicator["threshold_m"]), c, slack) for c in (PASS, UNKNOWN)}
        elif rule == "inside_village" and shapely.get_dimensions(vgeom) == 2:
            sat = {c: bool(np.any(shapely.intersects(vgeom, geoms[classes == c])))
                   for c in (PASS, UNKNOWN)}
        elif rule == "inside_village":
            sat = {c: within(float(indicator["fallback_threshold_m"]), c, slack)
                   for c in (PASS, UNKNOWN)}
        elif rule in ("coverage", "power_supply"):
            sat = {c: within(radius, c, slack) for c in (PASS, UNKNOWN)}
        else:
            raise ValueError(rule)
        return "met" if sat[PASS] else "unknown" if sat[UNKNOWN] else "missing"

    status = decide(0.0)
    # borderline: the status would change if distances were off by the contract's accuracy
    border = len({decide(-1.0), status, decide(1.0)}) > 1
    return Expected(status=status, distance=dist, nearest_ids=nearest, borderline=border)
