"""Point works: upgrade a non-qualifying feature that already satisfies the rule, build a site
in a village, one site covering several gap villages, and ``verify`` items for unknown pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from buque.geo.metric import bands_of, transform_xy
from buque.geo.plan.params import REACH_SHARE, Costs


def _ids(prefix: str, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    return (prefix + pd.Series(codes, dtype="string")).array


def _empty() -> tuple[pd.DataFrame, np.ndarray]:
    return pd.DataFrame(), np.zeros(0, np.int64)


def upgrade_works(pairs: pd.DataFrame, layer_geoms: pd.Series | None, cost: Costs,
                  action: str = "upgrade") -> tuple[pd.DataFrame, np.ndarray]:
    """One work per candidate feature (``candidate_id``): upgrading it serves every gap village
    whose candidate it is. Geometry: the feature itself (it is re-qualified whole)."""
    if not len(pairs) or cost.upgrade_unit_cost is None:
        return _empty()
    if cost.rule == "power_supply" and layer_geoms is not None:
        return _transformer_works(pairs, layer_geoms, cost, action)
    cand = pairs["candidate_id"].astype(str).to_numpy()
    uniq, first, inv = np.unique(cand, return_index=True, return_inverse=True)
    geom = (layer_geoms.reindex(uniq).to_numpy() if layer_geoms is not None
            else np.full(len(uniq), None, dtype=object))
    # the highest cost factor among the villages served
    factor = pd.Series(pairs["factor"].to_numpy(float)).groupby(inv).max().to_numpy()
    unit_cost = cost.upgrade_unit_cost * factor
    works = pd.DataFrame({
        "work_id": _ids(f"{cost.key}:upgrade:", uniq), "indicator": cost.key, "action": action,
        "item": cost.upgrade_item or cost.item, "unit": "处", "quantity": 1.0,
        "unit_cost": unit_cost, "cost": np.round(unit_cost, 2),
        "parent": pd.array([None] * len(uniq), dtype="string"),
        "cluster": _ids(f"{cost.key}:upgrade:", uniq), "line_m": 0.0,
        "candidate_id": uniq, "geometry": geom})
    return works, inv.ravel().astype(np.int64)


def _transformer_works(pairs: pd.DataFrame, layer_geoms: pd.Series, cost: Costs, action: str
                       ) -> tuple[pd.DataFrame, np.ndarray]:
    """Power (``power_supply``): a medium-voltage line passing a village gives no household
    supply until a transformer stands on it, so each gap village gets one, at the point of its
    candidate line nearest to it (found in a local frame scaled by cos(latitude), so "nearest"
    is in metres to well under a percent): one work per village, within the supply radius
    because the line was."""
    codes = pairs["village_code"].astype(str).to_numpy()
    lon, lat = pairs["lon"].to_numpy(float), pairs["lat"].to_numpy(float)
    line = layer_geoms.reindex(pairs["candidate_id"].astype(str).to_numpy()).to_numpy()
    k = np.cos(np.radians(lat))

    local = shapely.transform(line, lambda c: c)  # a copy; x scaled per geometry below
    xy, row = shapely.get_coordinates(local, return_index=True)
    local = shapely.set_coordinates(local, xy * np.column_stack([k[row], np.ones(len(row))]))
    at = shapely.get_coordinates(shapely.shortest_line(local, shapely.points(lon * k, lat)))
    x, y = at[0::2, 0] / k, at[0::2, 1]
    unit_cost = cost.upgrade_unit_cost * pairs["factor"].to_numpy(float)
    works = pd.DataFrame({
        "work_id": _ids(f"{cost.key}:transformer:", codes), "indicator": cost.key,
        "action": action, "item": cost.upgrade_item or cost.item, "unit": "台", "quantity": 1.0,
        "unit_cost": unit_cost, "cost": np.round(unit_cost, 2),
        "parent": pd.array([None] * len(codes), dtype="string"),
        "cluster": _ids(f"{cost.key}:transformer:", codes), "line_m": 0.0,
        "candidate_id": pairs["candidate_id"].astype(str).to_numpy(),
        "geometry": shapely.points(x, y)})
    return works, np.arange(len(codes), dtype=np.int64)


def site_works(pairs: pd.DataFrame, cost: Costs) -> tuple[pd.DataFrame, np.ndarray]:
    """A new site (e.g. a standardized clinic) at each gap village's reference point."""
    if not len(pairs):
        return _empty()
    codes = pairs["village_code"].astype(str).to_numpy()
    unit_cost = cost.unit_cost * pairs["factor"].to_numpy(float)
    works = pd.DataFrame({
        "work_id": _ids(f"{cost.key}:", codes), "indicator": cost.key, "action": "build",
        "item": cost.item, "unit": cost.unit, "quantity": 1.0, "unit_cost": unit_cost,
        "cost": np.round(unit_cost, 2), "parent": pd.array([None] * len(codes), dtype="string"),
        "cluster": _ids(f"{cost.key}:", codes), "line_m": 0.0,
        "geometry": shapely.points(pairs["lon"].to_numpy(float), pairs["lat"].to_numpy(float))})
    return works, np.arange(len(codes), dtype=np.int64)


def cover_works(pairs: pd.DataFrame, cost: Costs) -> tuple[pd.DataFrame, np.ndarray]:
    """Sites of radius ``radius_m`` covering the gap villages: the villages are binned into
    square cells of side radius x sqrt 2 (x :data:`REACH_SHARE`) in their UTM zone, and each
    cell's site stands at the centre of its villages' bounding box, which lies within the radius
    of every one of them. Vectorised; the result depends only on the villages' positions."""
    if not len(pairs):
        return _empty()
    r = float(cost.radius_m or 0.0)
    side = max(REACH_SHARE * r * np.sqrt(2.0), 1.0)
    lon, lat = pairs["lon"].to_numpy(float), pairs["lat"].to_numpy(float)
    codes = pairs["village_code"].astype(str).to_numpy()
    cell = np.full(len(pairs), -1, dtype=np.int64)
    site_lonlat = []
    n_cells = 0
    for band in bands_of(lon, lat):
        m = band.members
        xy = transform_xy(np.column_stack([lon[m], lat[m]]), band.crs)
        key = np.floor(xy / side).astype(np.int64)
        _, c = np.unique(key, axis=0, return_inverse=True)
        c = c.ravel()
        k = c.max() + 1
        lo = np.full((k, 2), np.inf)
        hi = np.full((k, 2), -np.inf)
        np.minimum.at(lo, c, xy)
        np.maximum.at(hi, c, xy)
        site_lonlat.append(transform_xy((lo + hi) / 2.0, band.crs, inverse=True))
        cell[m] = c + n_cells
        n_cells += k
    sites = np.concatenate(site_lonlat)
    # a site is named by the smallest village code it serves
    name = pd.Series(codes).groupby(cell).min().to_numpy()
    factor = pd.Series(pairs["factor"].to_numpy(float)).groupby(cell).max().to_numpy()
    unit_cost = cost.unit_cost * factor
    works = pd.DataFrame({
        "work_id": _ids(f"{cost.key}:site:", name), "indicator": cost.key, "action": "build",
        "item": cost.item, "unit": cost.unit, "quantity": 1.0, "unit_cost": unit_cost,
        "cost": np.round(unit_cost, 2), "parent": pd.array([None] * len(name), dtype="string"),
        "cluster": _ids(f"{cost.key}:site:", name), "line_m": 0.0,
        "radius_m": r, "geometry": shapely.points(sites)})
    return works, cell


def verify_works(pairs: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """One ``verify`` item per unknown pair: no cost, to be checked in the field."""
    if not len(pairs):
        return _empty()
    key = (pairs["indicator"].astype(str) + ":verify:" + pairs["village_code"].astype(str))
    works = pd.DataFrame({
        "work_id": key.astype("string").array, "indicator": pairs["indicator"].to_numpy(),
        "action": "verify", "item": "现场核实", "unit": "项", "quantity": 1.0, "unit_cost": 0.0,
        "cost": 0.0, "parent": pd.array([None] * len(pairs), dtype="string"),
        "cluster": key.astype("string").array, "line_m": 0.0,
        "geometry": shapely.points(pairs["lon"].to_numpy(float), pairs["lat"].to_numpy(float))})
    return works, np.arange(len(pairs), dtype=np.int64)
