"""From a run's gaps to works: every missing (village, indicator) pair in exactly one work.

Per indicator (its profile ``plan.works``):

- ``network`` (road, water, power): a gap village whose non-qualifying nearby feature can be
  upgraded for no more than a line of its own would cost gets that upgrade (one work per
  feature, shared by every village it serves); the rest get extension trees
  (:mod:`geo.plan.network`);
- ``point`` (clinic): upgrade the non-qualifying feature that satisfies the rule, else build one
  in the village;
- ``cover`` (broadband): sites covering clusters of gap villages (:func:`geo.plan.points.cover_works`);
- ``unknown`` pairs: one ``verify`` item each, no cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from buque.geo.archive import LAYERS_DIR, VILLAGES, read_manifest, read_villages
from buque.geo.columns import equals
from buque.geo.plan import harden, network, points
from buque.geo.plan.params import Params
from buque.geo.remedies import priority
from buque.layers.profile import Profile, load_profile

VILLAGE_COLS = ["code", "name", "level", "county", "township", "poor", "exit_year", "population",
                "households", "village_code", "ref_lon", "ref_lat"]
WORK_COLUMNS = ["work_id", "indicator", "action", "item", "unit", "quantity", "unit_cost", "cost",
                "parent", "cluster", "line_m", "geometry"]


@dataclass
class RunInput:
    """What the planner reads from a run archive."""

    path: Path
    manifest: dict[str, Any]
    gaps: pd.DataFrame
    villages: pd.DataFrame        # VILLAGE_COLS, plus ``unit`` (admin village) and ``priority``
    layers: dict[str, gpd.GeoDataFrame]
    profile: Profile


def run_profile(manifest: dict) -> Profile:
    """The standards profile a run was assessed with (its file when still there, else the
    bundled profile of its name)."""
    prof = manifest.get("profile", {})
    path = prof.get("path") or prof.get("name") or "national"
    return load_profile(path if Path(str(path)).is_file() else prof.get("name", "national"))


def load_run(run: str | Path, layers: bool = True) -> RunInput:
    """Read a run archive with :mod:`geo.archive`'s readers, and its standards profile
    (``layers=False``: without its feature layers)."""
    run = Path(run)
    manifest = read_manifest(run)
    gaps = pd.read_parquet(run / "gaps.parquet")
    if (run / VILLAGES).is_file():  # the table without its geometry
        v = pd.read_parquet(run / VILLAGES, columns=VILLAGE_COLS)
    else:
        v = read_villages(run)
        v = pd.DataFrame(v[[c for c in VILLAGE_COLS if c in v]])
    profile = run_profile(manifest)
    nat = equals(v["level"], "natural")
    parent_known = v["village_code"].isin(v.loc[~nat, "code"]).to_numpy()
    v["unit"] = np.where(nat & parent_known, v["village_code"].astype(str), v["code"].astype(str))
    v["priority"] = priority(v)
    return RunInput(path=run, manifest=manifest, gaps=gaps, villages=v.reset_index(drop=True),
                    layers=_plan_layers(run) if layers else {}, profile=profile)


def _plan_layers(run: Path) -> dict[str, gpd.GeoDataFrame]:
    """The run's archived feature layers with what planning reads of them: ``id``, the
    geometry and each indicator's evidence class (not the other attributes)."""
    out = {}
    for p in sorted((run / LAYERS_DIR).glob("*.parquet")):
        names = pq.read_schema(p).names
        cols = [c for c in names if c in ("id", "geometry") or c.startswith("evidence_")]
        out[p.stem] = gpd.read_parquet(p, columns=cols)
    return out


def _geoms_by_id(layer: gpd.GeoDataFrame | None) -> pd.Series | None:
    if layer is None or not len(layer):
        return None
    s = pd.Series(layer.geometry.to_numpy(), index=layer["id"].astype(str).to_numpy())
    return s[~s.index.duplicated(keep="first")]


def build_works(inp: RunInput, params: Params, gaps: pd.DataFrame | None = None
                ) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """All works, and the pairs: ``work_id``, ``village_code``, ``level``, ``indicator``
    (every missing and every unknown pair of ``gaps`` exactly once)."""
    gaps = inp.gaps if gaps is None else gaps
    v = inp.villages
    vpos = pd.Index(v["code"].astype(str)).get_indexer(gaps["village_code"].astype(str))
    if (vpos < 0).any():
        bad = gaps["village_code"].to_numpy()[vpos < 0][0]
        raise ValueError(f"{inp.path}: gaps.parquet names village {bad!r} that villages has not")
    g = gaps.assign(_v=vpos, lon=v["ref_lon"].to_numpy(float)[vpos],
                    lat=v["ref_lat"].to_numpy(float)[vpos],
                    factor=v["county"].map(params.factor).to_numpy(float)[vpos]
                    if params.county_factor else 1.0)
    g = g.sort_values(["indicator", "village_code"], kind="stable").reset_index(drop=True)
    works, pairs = [], []

    def add(w: pd.DataFrame, at: np.ndarray, sel: pd.DataFrame) -> None:
        if len(w):
            works.append(w)
            pairs.append(pd.DataFrame({"work_id": w["work_id"].to_numpy()[at],
                                       "village_code": sel["village_code"].to_numpy(),
                                       "level": sel["level"].to_numpy(),
                                       "indicator": sel["indicator"].to_numpy()}))

    for key, cost in params.costs.items():
        ind = inp.profile.indicators[key]
        here = g[equals(g["indicator"], key)]
        miss = here[equals(here["status"], "missing")]
        layer = inp.layers.get(ind.layer)
        geoms = _geoms_by_id(layer)
        nonq = equals(miss["reason"], "non_qualifying_nearby") & miss["candidate_id"].notna().to_numpy()
        if cost.works == "network":
            rest = np.ones(len(miss), dtype=bool)
            if cost.harden_unit_cost is not None and layer is not None and len(layer):
                q = _qualifying(layer, key)
                qmask = layer.index.isin(q.index) if q is not None else np.zeros(len(layer), bool)
                w, hat, hard = harden.harden_works(miss, layer.geometry.to_numpy(),
                                                   np.asarray(qmask), cost)
                if hard.any():
                    add(w, hat[hard], miss[hard])
                    rest &= ~hard
            if cost.upgrade_unit_cost is not None and nonq.any():
                d = miss["distance_m"].to_numpy(float, na_value=np.nan)
                own = np.where(np.isfinite(d), np.maximum(d - cost.reach_m, 0) / 1000 *
                               cost.unit_cost, np.inf) * miss["factor"].to_numpy(float)
                up = nonq & rest & (cost.upgrade_unit_cost * miss["factor"].to_numpy(float) <= own)
                if up.any():
                    w, at = points.upgrade_works(miss[up], geoms, cost)
                    add(w, at, miss[up])
                    rest &= ~up
            sel = miss[rest]
            if len(sel):
                w, at = network.network_works(sel, _geoms_by_id(_qualifying(layer, key)), cost)
                add(w, at, sel)
        elif cost.works == "point":
            if cost.upgrade_unit_cost is not None and nonq.any():
                w, at = points.upgrade_works(miss[nonq], geoms, cost)
                add(w, at, miss[nonq])
                miss = miss[~nonq]
            w, at = points.site_works(miss, cost)
            add(w, at, miss)
        else:
            w, at = points.cover_works(miss, cost)
            add(w, at, miss)
    unk = g[equals(g["status"], "unknown")]
    w, at = points.verify_works(unk)
    add(w, at, unk)
    if not works:
        return (gpd.GeoDataFrame({c: [] for c in WORK_COLUMNS}, geometry="geometry",
                                 crs="EPSG:4326"),
                pd.DataFrame(columns=["work_id", "village_code", "level", "indicator"]))
    wdf = pd.concat(works, ignore_index=True)
    wdf = gpd.GeoDataFrame(wdf, geometry="geometry", crs="EPSG:4326")
    pdf = pd.concat(pairs, ignore_index=True)
    return wdf, pdf


def _qualifying(layer: gpd.GeoDataFrame | None, key: str) -> gpd.GeoDataFrame | None:
    """The features of the layer that qualify for the indicator (as archived with the run)."""
    if layer is None:
        return None
    col = f"evidence_{key}"
    if col not in layer:
        return layer
    return layer[equals(layer[col], "pass")]
