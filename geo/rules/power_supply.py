"""``power_supply``: household power as the standard means it (生活用电, DL/T 5118).

Met when a distribution transformer or substation lies within the low-voltage supply radius
(``threshold_m``, 500 m), or a low-voltage line (every listed ``voltage`` ≤ ``lv_max_v``, 1 kV;
a line with one circuit ≤ 1 kV counts) within the connection distance (``connect_m``). A
medium/high-voltage line alone is *non-qualifying nearby* within ``threshold_m`` (the remedy
is a transformer: the profile's ``upgrade``); a line of unknown voltage within ``connect_m``
makes the village *unknown*. With ``three_phase = true`` (动力电): a transformer counts unless
recorded single-phase (``phases`` = 1), a low-voltage line only when recorded three-phase
(``phases`` = 3; unrecorded: unknown). The evidence classes come from this unit
(:meth:`classes`), ANDed with the profile's ``evidence`` conditions if any. How OSM tags map:
docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from buque.geo.evidence import FAIL, PASS, UNKNOWN, _and, evaluate_all
from buque.geo.rules.band import BandWork
from buque.geo.rules.coverage import Coverage
from buque.layers.errors import BuqueInputError
from buque.layers.indicator import Indicator
from buque.layers.params import number

TRANSFORMER_KINDS = ("transformer", "substation", "pole_transformer", "变压器", "台区",
                     "变电站", "配电变压器")
LINE_KINDS = ("line", "minor_line", "cable", "线路", "低压线路", "电缆")


def voltage_range(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest of each ``voltage`` in volts (``10000;400`` as in OSM, also ``10kV``,
    ``0.4 kV``, ``380V``): NaN where not recorded or not a number. Each distinct value is
    parsed once (a layer holds a handful of voltages)."""
    codes, uniq = pd.factorize(s.astype("string"), use_na_sentinel=True)
    lo, hi = _parse_voltages(pd.Series(uniq, dtype="string"))
    lo, hi = np.append(lo, np.nan), np.append(hi, np.nan)  # code -1 (not recorded) -> NaN
    return lo[codes], hi[codes]


def _parse_voltages(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    parts = s.str.split(";", expand=True)
    if parts.shape[1] == 0:
        nan = np.full(len(s), np.nan)
        return nan, nan
    cols = []
    for c in parts.columns:
        m = parts[c].str.strip().str.extract(r"^([0-9]*\.?[0-9]+)\s*([kK]?)[vV]?$")
        num = pd.to_numeric(m[0], errors="coerce").to_numpy(float)
        cols.append(np.where(m[1].fillna("").str.lower().to_numpy(dtype=object) == "k",
                             num * 1000, num))
    v = np.column_stack(cols)
    none = np.isnan(v).all(axis=1)
    lo = np.where(none, np.nan, np.min(np.where(np.isnan(v), np.inf, v), axis=1))
    hi = np.where(none, np.nan, np.max(np.where(np.isnan(v), -np.inf, v), axis=1))
    return lo, hi


def _parts(gdf: pd.DataFrame, ind: Indicator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per feature: transformer, line, and low-voltage (True / False / None as -1)."""
    kind = gdf.get("kind", pd.Series(pd.NA, index=gdf.index)).astype("string").str.lower()
    trafo = kind.isin(TRANSFORMER_KINDS).fillna(False).to_numpy(bool)
    # a feature of no kind is a line when it is drawn as one
    linear = np.isin(shapely.get_type_id(gdf.geometry.to_numpy()), (1, 2, 5))
    line = kind.isin(LINE_KINDS).fillna(False).to_numpy(bool) | (kind.isna().to_numpy() & linear)
    lo, _ = voltage_range(gdf.get("voltage", pd.Series(pd.NA, index=gdf.index)))
    lv = np.where(np.isnan(lo), -1, (lo <= ind.params["lv_max_v"]).astype(int))
    return trafo, line, lv


class PowerSupply(Coverage):
    name = "power_supply"
    required: ClassVar[tuple[str, ...]] = ("threshold_m",)
    keys: ClassVar[frozenset[str]] = Coverage.keys | {"connect_m", "lv_max_v", "three_phase"}
    met = "within_threshold"

    def parse(self, d: dict, where: str, path: str) -> dict[str, Any]:
        p = super().parse(d, where, path)
        p["connect_m"] = number(d, "connect_m", where, path, default=100.0)
        p["lv_max_v"] = number(d, "lv_max_v", where, path, default=1000.0)
        tp = d.get("three_phase", False)
        if not isinstance(tp, bool):
            raise BuqueInputError(path, f"{where}: three_phase must be true or false",
                                  field="three_phase")
        p["three_phase"] = tp
        return p

    def reach_m(self, params: Mapping[str, Any]) -> float:
        return float(max(super().reach_m(params), params.get("connect_m") or 0.0))

    def fields(self, ind: Indicator) -> tuple[str, ...]:
        return ("kind", "voltage", "phases")

    def classes(self, layer: gpd.GeoDataFrame, ind: Indicator) -> np.ndarray:
        trafo, line, lv = _parts(layer, ind)
        kind_known = layer.get("kind", pd.Series(pd.NA, index=layer.index)).notna().to_numpy()
        # a point of no kind may be a transformer: unknown (and reaches threshold_m)
        cls = np.where(trafo, PASS, np.where(
            line, np.select([lv == 1, lv == 0], [PASS, FAIL], UNKNOWN),
            np.where(kind_known, FAIL, UNKNOWN))).astype(np.int8)
        if ind.params.get("three_phase"):
            ph = pd.to_numeric(layer.get("phases", pd.Series(pd.NA, index=layer.index)),
                               errors="coerce").to_numpy(float)
            lv_line = line & (lv == 1)
            cls = np.where(trafo & (ph == 1), FAIL, cls)
            cls = np.where(lv_line, np.select([ph == 3, np.isnan(ph)], [PASS, UNKNOWN], FAIL),
                           cls).astype(np.int8)
        if ind.evidence:  # the profile's own conditions, three-valued AND
            cls = _and(len(layer), [cls, evaluate_all(layer, ind.evidence)])
        return cls

    def feature_radii(self, gdf: pd.DataFrame, ind: Indicator) -> np.ndarray:
        """Transformers, medium/high-voltage lines and points of no kind reach ``threshold_m``
        (an MV line that near wants a transformer); low-voltage lines and lines of unknown
        voltage ``connect_m``; anything else (e.g. a pole) 0."""
        trafo, line, lv = _parts(gdf, ind)
        p = ind.params
        nokind = gdf.get("kind", pd.Series(pd.NA, index=gdf.index)).isna().to_numpy()
        return np.where(trafo | (line & (lv == 0)) | (nokind & ~line), p["threshold_m"],
                        np.where(line, p["connect_m"], 0.0)).astype(float)

    def radius(self, band: BandWork, ind: Indicator, win: np.ndarray) -> np.ndarray | None:
        return self.feature_radii(band.layers[ind.layer], ind)[win]

    def halo_m(self, ind: Indicator, layers: Mapping[str, gpd.GeoDataFrame]) -> float:
        return ind.reach_m
