"""The naive GeoPandas approach, as a baseline to time ``buque run`` against.

    python -m bench.naive PROJECT_DIR [--out naive.parquet]

Reads the layers named in ``PROJECT_DIR/project.toml`` (canonical field names assumed, no
``fields`` mapping, no OSM), projects everything to one UTM zone (EPSG:32649) and runs one plain
``geopandas.sjoin_nearest`` per indicator:

| indicator | villages | qualifying features | met when |
|---|---|---|---|
| road | admin + natural with households >= 30 | roads, surface in HARDENED | <= 500 m |
| water | natural | water with safe true | <= 800 m |
| power | natural | power lines/minor lines/cables + transformers/substations | <= 500 m |
| clinic | admin | clinics with standardized true | <= 2000 m |
| broadband | admin | towers | <= the nearest tower's radius_m |

Admin reference point = ``representative_point()`` (GEOS point_on_surface) of the polygon in
EPSG:32649 (a Point stays itself).
Ties (``sjoin_nearest`` returns every equidistant feature) keep the first row. Broadband is
"distance only": a farther tower with a larger radius that would cover the village is ignored.
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

UTM = "EPSG:32649"
HARDENED = {"asphalt", "concrete", "paved", "cement", "paving_stones"}
POWER_KINDS = {"line", "minor_line", "cable", "transformer", "substation"}
THRESHOLDS = {"road": 500.0, "water": 800.0, "power": 500.0, "clinic": 2000.0}
COLUMNS = ["village_code", "level", "indicator", "distance_m", "status", "evidence_id"]


def _project_file(project: str | Path) -> Path:
    p = Path(project)
    return p / "project.toml" if p.is_dir() else p


def _nearest(villages: gpd.GeoDataFrame, features: gpd.GeoDataFrame, indicator: str,
             extra: list[str] | None = None) -> pd.DataFrame:
    """One row per village: nearest qualifying feature, its id and distance (ties -> first)."""
    left = villages[["code", "level", "geometry"]].reset_index(drop=True)
    right = features[["id", *(extra or []), "geometry"]].rename(columns={"id": "evidence_id"})
    if len(right):
        joined = gpd.sjoin_nearest(left, right, how="left", distance_col="distance_m")
        joined = joined[~joined.index.duplicated(keep="first")]
    else:  # nothing qualifies anywhere: every village is missing, distance null
        joined = left.assign(evidence_id=None, distance_m=np.nan)
        for col in extra or []:
            joined[col] = np.nan
    out = pd.DataFrame({
        "village_code": joined["code"].to_numpy(), "level": joined["level"].to_numpy(),
        "indicator": indicator, "distance_m": joined["distance_m"].to_numpy(dtype=float),
        "evidence_id": joined["evidence_id"].to_numpy(),
    })
    for col in extra or []:
        out[col] = joined[col].to_numpy()
    return out


def _status(df: pd.DataFrame, limit: np.ndarray | float) -> pd.DataFrame:
    met = (df["distance_m"] <= limit).fillna(False).to_numpy(dtype=bool)
    df["status"] = np.where(met, "met", "missing")
    return df[COLUMNS]


def read_layers(project_dir: str | Path) -> dict[str, gpd.GeoDataFrame]:
    """Every layer of the project, read with geopandas' defaults (EPSG:4326 as stored)."""
    toml = _project_file(project_dir)
    base = toml.parent
    specs = tomllib.loads(toml.read_text(encoding="utf-8"))["layers"]
    return {k: gpd.read_file(base / s["path"], engine="pyogrio") for k, s in specs.items()}


def naive_run(project_dir: str | Path, verbose: bool = False) -> pd.DataFrame:
    """Read and assess every indicator the naive way; timings (s) in ``df.attrs["timings"]``."""
    t = time.perf_counter()
    layers = read_layers(project_dir)
    read = time.perf_counter() - t
    result = naive_assess(layers)
    result.attrs["timings"] = {"read": read, **result.attrs["timings"]}
    result.attrs["timings"]["total"] = read + result.attrs["timings"]["total"]
    if verbose:
        _report(result)
    return result


def naive_assess(layers: dict[str, gpd.GeoDataFrame]) -> pd.DataFrame:
    """The naive engine on layers already in memory: to_crs + one sjoin_nearest per indicator."""
    timings: dict[str, float] = {}

    t = time.perf_counter()
    admin = layers["villages"].to_crs(UTM)
    natural = layers["natural_villages"].to_crs(UTM)
    admin["geometry"] = admin.geometry.representative_point()
    admin["level"] = "admin"
    natural["level"] = "natural"
    timings["villages"] = time.perf_counter() - t

    parts = []

    t = time.perf_counter()
    roads = layers["roads"].to_crs(UTM)
    roads = roads[roads["surface"].str.lower().isin(HARDENED)]
    big = natural[natural["households"] >= 30]
    cand = pd.concat([admin[["code", "level", "geometry"]], big[["code", "level", "geometry"]]],
                     ignore_index=True)
    parts.append(_status(_nearest(cand, roads, "road"), THRESHOLDS["road"]))
    timings["road"] = time.perf_counter() - t

    t = time.perf_counter()
    water = layers["water"].to_crs(UTM)
    water = water[water["safe"].eq(True)]
    parts.append(_status(_nearest(natural, water, "water"), THRESHOLDS["water"]))
    timings["water"] = time.perf_counter() - t

    t = time.perf_counter()
    power = layers["power"].to_crs(UTM)
    power = power[power["kind"].str.lower().isin(POWER_KINDS)]
    parts.append(_status(_nearest(natural, power, "power"), THRESHOLDS["power"]))
    timings["power"] = time.perf_counter() - t

    t = time.perf_counter()
    clinics = layers["clinics"].to_crs(UTM)
    clinics = clinics[clinics["standardized"].eq(True)]
    parts.append(_status(_nearest(admin, clinics, "clinic"), THRESHOLDS["clinic"]))
    timings["clinic"] = time.perf_counter() - t

    t = time.perf_counter()
    towers = layers["broadband"].to_crs(UTM)
    if "kind" in towers:
        towers = towers[towers["kind"].str.lower().isin({"tower", "mast"})]
    bb = _nearest(admin, towers, "broadband", extra=["radius_m"])
    parts.append(_status(bb, bb["radius_m"].to_numpy(dtype=float)))
    timings["broadband"] = time.perf_counter() - t

    result = pd.concat(parts, ignore_index=True)
    timings["total"] = sum(timings.values())
    result.attrs["timings"] = timings
    return result


def _within(villages: gpd.GeoDataFrame, features: gpd.GeoDataFrame, limit: float) -> pd.Series:
    """Whether any of ``features`` lies within ``limit`` metres of each village (sjoin_nearest)."""
    left = villages[["code", "geometry"]].reset_index(drop=True)
    if len(features) == 0:
        return pd.Series(False, index=left.index)
    j = gpd.sjoin_nearest(left, features[["geometry"]], how="left", max_distance=limit,
                          distance_col="d")
    j = j[~j.index.duplicated(keep="first")]
    return j["d"].notna()


def naive_assess_full(layers: dict[str, gpd.GeoDataFrame]) -> pd.DataFrame:
    """:func:`naive_assess` plus the bounded joins that tell ``unknown`` and upgrade cases."""
    base = naive_assess(layers)
    admin = layers["villages"].to_crs(UTM)
    admin["geometry"] = admin.geometry.representative_point()
    natural = layers["natural_villages"].to_crs(UTM)
    roads = layers["roads"].to_crs(UTM)
    surface = roads["surface"].str.lower()
    water = layers["water"].to_crs(UTM)
    clinics = layers["clinics"].to_crs(UTM)
    big = natural[natural["households"] >= 30]
    road_v = pd.concat([admin[["code", "geometry"]], big[["code", "geometry"]]], ignore_index=True)
    extra = {
        ("road", "unknown"): _within(road_v, roads[surface.isna()], THRESHOLDS["road"]),
        ("road", "fail"): _within(road_v, roads[surface.notna() & ~surface.isin(HARDENED)],
                                  THRESHOLDS["road"]),
        ("water", "unknown"): _within(natural, water[water["safe"].isna()], THRESHOLDS["water"]),
        ("clinic", "fail"): _within(admin, clinics[clinics["standardized"].eq(False)],
                                    THRESHOLDS["clinic"]),
    }
    gaps = base.copy()
    gaps["reason"] = None
    for (ind, cls), near in extra.items():
        codes = set((road_v if ind == "road" else natural if ind == "water" else admin)
                    ["code"][near.to_numpy()])
        sel = (gaps["indicator"] == ind) & (gaps["status"] == "missing") & gaps["village_code"].isin(codes)
        if cls == "unknown":
            gaps.loc[sel, "status"] = "unknown"
        else:
            gaps.loc[sel, "reason"] = "non_qualifying_nearby"
    return gaps


def naive_full(project_dir: str | Path, out_dir: str | Path) -> dict[str, float]:
    """The same job as ``buque run`` done the straightforward GeoPandas way, same outputs.

    Per indicator one ``sjoin_nearest`` for qualifying features (distance, status) plus one
    bounded ``sjoin_nearest`` each for features with unknown attributes (status unknown) and for
    non-qualifying ones (upgrade remedies); then remedies, rates and villages with pandas
    groupby/pivot, and the archive written with geopandas/pandas defaults (GeoPackage, Parquet,
    CSV). Returns timings.
    """
    t0 = time.perf_counter()
    layers = read_layers(project_dir)
    timings = {"read": time.perf_counter() - t0}
    t = time.perf_counter()
    gaps = naive_assess_full(layers)
    timings["assess"] = time.perf_counter() - t
    t = time.perf_counter()
    villages = pd.concat([layers["villages"].assign(level="admin"),
                          layers["natural_villages"].assign(level="natural")], ignore_index=True)
    parent = villages.set_index("code")
    miss = gaps[gaps["status"] == "missing"].join(parent[["county", "township", "households"]],
                                                  on="village_code")
    miss["quantity"] = np.where(miss["indicator"].isin(["clinic", "broadband"]), 1.0,
                                miss["distance_m"] / 1000)
    miss["cost"] = miss["quantity"] * miss["indicator"].map(
        {"road": 1e6, "water": 2e5, "power": 2e5, "clinic": 3e5, "broadband": 4e5})
    g = gaps.join(parent[["county", "township"]], on="village_code")
    summary = g.groupby(["county", "township", "indicator"])["status"].value_counts().unstack(
        fill_value=0).reset_index()
    wide = gaps.pivot(index="village_code", columns="indicator", values="status")
    vt = villages.join(wide, on="code")
    timings["tables"] = time.perf_counter() - t
    t = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gaps.to_parquet(out / "gaps.parquet", index=False)
    vt.to_file(out / "villages.gpkg", driver="GPKG", engine="pyogrio")
    miss.to_csv(out / "projects.csv", index=False, encoding="utf-8-sig")
    summary.to_csv(out / "summary.csv", index=False, encoding="utf-8-sig")
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return timings


def _report(result: pd.DataFrame) -> None:
    timings = result.attrs.get("timings", {})
    rates = result.groupby("indicator", sort=False)["status"].agg(
        assessed="size", met=lambda s: int((s == "met").sum()))
    print(f"{'step':16s} {'seconds':>8s} {'assessed':>9s} {'met':>8s} {'rate':>7s}")
    for step, sec in timings.items():
        if step in rates.index:
            r = rates.loc[step]
            print(f"{step:16s} {sec:8.2f} {r.assessed:9d} {r.met:8d} "
                  f"{r.met / r.assessed:7.1%}")
        else:
            print(f"{step:16s} {sec:8.2f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m bench.naive",
        description="Naive GeoPandas baseline: one sjoin_nearest per indicator.")
    ap.add_argument("project", metavar="PROJECT_DIR",
                    help="directory holding project.toml (or the TOML file itself)")
    ap.add_argument("--out", default=None, help="also write the long rows to this .parquet")
    ap.add_argument("--full", metavar="DIR", default=None,
                    help="do the whole job like `buque run` (unknown status, remedies, rates) "
                         "and write the same outputs into DIR")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    if a.full:
        for k, v in naive_full(a.project, a.full).items():
            print(f"{k:10s} {v:8.2f} s")
        return
    result = naive_run(a.project, verbose=True)
    print(f"wall time: {time.perf_counter() - t:.2f} s, "
          f"{len(result)} rows")
    if a.out:
        result.to_parquet(a.out, index=False)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
