"""``register``: every household of the village in a register passes the evidence conditions.

The indicator's ``layer`` names the register (``households``); its ``evidence`` conditions are
evaluated per household (three-valued, as for features). A village is ``missing`` when any of
its households fails, else ``unknown`` when any cannot be checked or the register holds none of
its households, else ``met``. ``count`` is the number of failing (or, for unknown, unchecked)
households; the remedy is per household, its unit cost from ``unit_costs`` by the value of
``cost_field`` (e.g. ``housing_grade``: C and D cost differently), else the remedy's.
Households coded to a natural village count for it and for its administrative village.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd

from buque.geo.evidence import FAIL, UNKNOWN, evaluate_all
from buque.geo.rules.base import R, Result, Rule
from buque.layers.errors import BuqueInputError
from buque.layers.indicator import Indicator
from buque.layers.registers import REGISTER_FIELDS


def village_of(hh: pd.DataFrame, villages: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per household, the positions in ``villages`` of its administrative village
    (``admin_code``) and of its natural village (``natural_code``); -1: not among them."""
    codes = pd.Index(villages["code"].astype("string"))
    adm = codes.get_indexer(hh["admin_code"].astype("string"))
    nat = codes.get_indexer(hh["natural_code"].astype("string"))
    return adm, nat


class Register(Rule):
    name = "register"
    spatial = False
    keys: ClassVar[frozenset[str]] = frozenset({"unit_costs", "cost_field"})

    def check_layer(self, layer: str, where: str, path: str) -> None:
        if layer not in REGISTER_FIELDS:
            raise BuqueInputError(path, f"{where}: rule register reads a register: layer must "
                                  f"be one of {tuple(REGISTER_FIELDS)}", field="layer")

    def parse(self, d: dict, where: str, path: str) -> dict[str, Any]:
        costs = d.get("unit_costs", {})
        if not isinstance(costs, dict) or any(
                isinstance(v, bool) or not isinstance(v, int | float) or v < 0
                for v in costs.values()):
            raise BuqueInputError(path, f"{where}: unit_costs must be a table of non-negative "
                                  "numbers, e.g. { C = 15000, D = 35000 }", field="unit_costs")
        fld = d.get("cost_field")
        if costs and fld is None:
            raise BuqueInputError(path, f"{where}: unit_costs needs cost_field (the register "
                                  "field whose value picks the cost)", field="cost_field")
        return {"unit_costs": {str(k): float(v) for k, v in costs.items()}, "cost_field": fld}

    def reads(self, ind: Indicator) -> tuple[str, ...]:
        return ()  # no feature layer: nothing for halos or clipping

    def assess_villages(self, villages: gpd.GeoDataFrame, inputs: Mapping[str, Any],
                        ind: Indicator, mask: np.ndarray, res: Result) -> None:
        hh = inputs.get(ind.layer)
        n = len(villages)
        res.count = np.full(n, -1, dtype=np.int64)
        res.unit_cost = np.full(n, np.nan)
        res.text = np.full(n, None, dtype=object)
        if hh is None:
            return  # unknown, layer_not_provided
        adm, nat = village_of(hh, villages)
        is_nat = (villages["level"] == "natural").to_numpy()
        cls = evaluate_all(hh, ind.evidence)
        total = np.zeros(n, dtype=np.int64)
        fail = np.zeros(n, dtype=np.int64)
        unk = np.zeros(n, dtype=np.int64)
        cost = np.zeros(n)
        costs = ind.params.get("unit_costs") or {}
        fld = ind.params.get("cost_field")
        unit = np.full(len(hh), ind.remedy.unit_cost)
        if costs and fld in hh:
            unit = (hh[fld].astype("string").map(costs).astype(float)
                    .fillna(ind.remedy.unit_cost).to_numpy())
        for pos, level_nat in ((adm, False), (nat, True)):
            ok = pos >= 0
            ok[ok] = is_nat[pos[ok]] == level_nat
            p = pos[ok]
            total += np.bincount(p, minlength=n)
            fail += np.bincount(p, weights=cls[ok] == FAIL, minlength=n).astype(np.int64)
            unk += np.bincount(p, weights=cls[ok] == UNKNOWN, minlength=n).astype(np.int64)
            cost += np.bincount(p, weights=np.where(cls[ok] == FAIL, unit[ok], 0.0), minlength=n)
        m = mask
        missing, unknown = m & (fail > 0), m & (fail == 0) & ((unk > 0) | (total == 0))
        met = m & ~missing & ~unknown
        res.status[m] = np.where(met[m], 0, np.where(missing[m], 1, 2))
        res.reason[m] = np.select(
            [met[m], missing[m], total[m] == 0],
            [R["register_all_pass"], R["register_failing"], R["not_in_register"]],
            R["register_unrecorded"])
        res.count[m] = np.where(missing[m], fail[m], np.where(unknown[m], unk[m], 0))
        with np.errstate(invalid="ignore", divide="ignore"):
            res.unit_cost[m] = np.where(missing[m], cost[m] / fail[m], np.nan)
        word = "fail" if not ind.evidence else "fail " + "; ".join(
            c.field for c in ind.evidence)
        res.text[missing] = pd.Series(fail[missing]).astype(str).str.cat(
            pd.Series(total[missing]).astype(str), sep=" of ").add(
            f" households {word}").to_numpy(dtype=object)
        res.text[unknown & (total > 0)] = pd.Series(unk[unknown & (total > 0)]).astype(
            str).str.cat(pd.Series(total[unknown & (total > 0)]).astype(str), sep=" of ").add(
            " households not recorded").to_numpy(dtype=object)
