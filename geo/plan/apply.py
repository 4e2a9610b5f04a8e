"""A scenario run's layers: the plan's funded works added as features that qualify.

``buque run PROJECT --with-plan PLAN`` adds, per funded work, a feature to its indicator's
layer with the attributes the bundled profile's evidence asks for: a new or hardened road
(``surface = concrete``), a low-voltage three-phase power line or a transformer (``kind = line``,
``voltage = 400`` / ``transformer``), a safe
water feature (``safe = true``), a standardized clinic, a tower of the work's radius. Ids are
``plan:WORK_ID``. Verify items add nothing.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from buque.geo.columns import equals
from buque.layers.profile import Profile
from buque.layers.readers import FILE, ROW
from buque.layers.schema import LAYER_FIELDS

#: attributes of an added feature, per layer kind (point and line variants where they differ)
QUALIFYING = {
    "roads": {"surface": "concrete", "highway": "unclassified"},
    # a low-voltage (0.4 kV), three-phase line: what the power rules (power_supply) count
    "power": {"kind": "line", "voltage": "400", "phases": "3"},
    "water": {"kind": "tap", "safe": True},
    "clinics": {"kind": "clinic", "level": "village", "standardized": True},
    "broadband": {"kind": "tower"},
}


def plan_features(works: gpd.GeoDataFrame, profile: Profile) -> dict[str, gpd.GeoDataFrame]:
    """Per layer kind, the funded works as canonical features."""
    out: dict[str, gpd.GeoDataFrame] = {}
    w = works[works["funded"].to_numpy(dtype=bool) & ~equals(works["action"], "verify")]
    w = w[~w.geometry.isna() & ~w.geometry.is_empty]
    for key, g in w.groupby("indicator", sort=True):
        ind = profile.indicators.get(str(key))
        if ind is None:
            continue
        kind = ind.layer
        n = len(g)
        cols: dict[str, object] = {}
        for f, t in LAYER_FIELDS[kind].items():
            dtype = {"string": "string", "int": "Int64", "float": "Float64", "bool": "boolean"}[t]
            cols[f] = pd.array([None] * n, dtype=dtype)
        cols["id"] = pd.array(("plan:" + g["work_id"].astype(str)).to_numpy(), dtype="string")
        cols["name"] = pd.array(g["item"].astype(str).to_numpy(), dtype="string")
        for f, val in QUALIFYING.get(kind, {}).items():
            cols[f] = pd.array([val] * n, dtype=cols[f].dtype)
        geom = g.geometry.to_numpy()
        if kind == "power":
            point = shapely.get_type_id(geom) == 0
            cols["kind"] = pd.array(np.where(point, "transformer", "line"), dtype="string")
        if kind == "broadband" and "radius_m" in g:
            cols["radius_m"] = pd.array(g["radius_m"].to_numpy(float), dtype="Float64")
        f = gpd.GeoDataFrame(cols, geometry=geom, crs="EPSG:4326")
        out[kind] = f if kind not in out else pd.concat([out[kind], f], ignore_index=True)
    return out


def add_plan(layers: dict[str, gpd.GeoDataFrame], works: gpd.GeoDataFrame, profile: Profile
             ) -> dict[str, gpd.GeoDataFrame]:
    """``layers`` with the plan's features appended (a layer the project lacked is created)."""
    out = dict(layers)
    for kind, f in plan_features(works, profile).items():
        base = out.get(kind)
        if base is None:
            out[kind] = f.assign(**{ROW: -1, FILE: "plan"})
            continue
        f = f.assign(**{ROW: -1, FILE: "plan"})
        f = f[[c for c in f.columns if c in base.columns]]
        both = pd.concat([base, f], ignore_index=True)
        out[kind] = gpd.GeoDataFrame(both, geometry=base.geometry.name, crs=base.crs)
    return out
