"""The gap engine: profile x villages x layers -> one status per (village, indicator).

For each indicator the layer's features are split by the profile's evidence filter into
qualifying (pass), unverifiable (unknown attribute) and non-qualifying (fail). A village is
``met`` when a qualifying feature satisfies the rule, ``unknown`` when only an unverifiable one
does (or the layer was not provided), else ``missing``. ``distance_m`` is always to the nearest
qualifying feature from the village's reference point, measured in the village's own UTM zone
(see :mod:`geo.metric` for the method and its accuracy). ``candidate_id`` is the unverifiable or
non-qualifying feature that satisfies the rule, and ``failed`` says which of the profile's
evidence conditions it fails (or cannot be checked on), e.g. ``width_m 3.0 < 3.5`` (see
:func:`geo.evidence.explain`); null when there is no candidate. All queries are bulk queries per
UTM zone; nothing loops over villages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from buque.geo.columns import codes, concat_text, take_text
from buque.geo.evidence import FAIL, evaluate, explain, fields_of
from buque.geo.metric import Band, bands_of
from buque.geo.rules import rule_of
from buque.geo.rules.band import BandWork
from buque.geo.rules.base import REASON as _REASON
from buque.geo.rules.base import REASONS, Result
from buque.geo.rules.base import STATUS as _STATUS
from buque.geo.rules.spatial import feature_radius
from buque.layers.indicator import Indicator, Profile
from buque.layers.schema import STATUSES

GAP_COLUMNS = ["village_code", "level", "indicator", "status", "distance_m", "evidence_id",
               "candidate_id", "candidate_distance_m", "network_m", "reason", "failed"]

#: ``progress(done, total, label)``: villages x indicators assessed so far, of ``total``
Progress = Callable[[int, int, str], None]
THREADS = 2  # indicators assessed side by side
__all__ = ["GAP_COLUMNS", "REASONS", "STATUSES", "applicable", "assess", "evidence_classes",
           "feature_radius"]


def applicable(villages: pd.DataFrame, ind: Indicator) -> np.ndarray:
    """Which villages an indicator applies to: its levels, then any per-level condition."""
    levels = list(dict.fromkeys([*ind.levels, *ind.applies]))
    level = codes(villages["level"], levels)
    mask = np.isin(level, [levels.index(lv) for lv in ind.levels])
    for lvl, cond in ind.applies.items():
        sel = level == levels.index(lvl)
        if sel.any():
            # only the columns the condition reads (a copy of every column, geometry too, is
            # 0.4 s at 1 M villages)
            cols = [f for f in fields_of(cond) if f in villages.columns]
            mask[sel] &= evaluate(villages.loc[sel, cols], cond) != FAIL
    return mask


def evidence_classes(layers: dict[str, gpd.GeoDataFrame], profile: Profile
                     ) -> dict[str, np.ndarray]:
    """Per indicator, each feature of its layer as PASS, FAIL or UNKNOWN, as its rule unit
    classes them (:meth:`geo.rules.base.Rule.classes`)."""
    return {i.key: rule_of(i).classes(layers[i.layer], i)
            for i in profile.indicators.values() if i.layer in layers}


@dataclass
class Answer:
    """One indicator answered, needing no layer any more: its per-village :class:`Result`, the
    ids that ``res.evid``/``res.cand`` index (its evidence layer's; None without one) and, per
    applicable village, the failed condition of its candidate. What a second process sends
    back (:mod:`geo.split`)."""

    res: Result
    ids: pd.Series | None
    failed: pd.Series


class Elsewhere(Protocol):
    """Indicators answered by someone else (:class:`geo.split.Split`) while :func:`assess`
    answers the others."""

    keys: frozenset[str]

    def start(self, inds: list[Indicator], masks: dict[str, np.ndarray], lonlat: np.ndarray,
              vgeom: np.ndarray, is_poly: np.ndarray) -> None:
        """Begin: the indicators (as this run's profile has them) and their villages."""

    def answers(self) -> dict[str, Answer]:
        """Their answers, waiting for them."""


def assess(villages: gpd.GeoDataFrame, layers: dict[str, gpd.GeoDataFrame], profile: Profile,
           progress: Progress | None = None, bands: list[Band] | None = None,
           classes: dict[str, np.ndarray] | None = None, threads: int = THREADS,
           registers: Mapping[str, Any] | None = None,
           elsewhere: Elsewhere | None = None) -> pd.DataFrame:
    """Assess every applicable (village, indicator) pair.

    ``villages`` needs ``code``, ``level``, ``ref_lon``, ``ref_lat``, geometry (EPSG:4326) and
    the attributes the profile's applicability conditions use. ``layers`` maps layer kinds to
    canonical GeoDataFrames (EPSG:4326, with ``id``); a kind that is absent was not provided.
    Returns a long table with :data:`GAP_COLUMNS` and ``_v``, the village's position in
    ``villages`` (for joining back without a lookup by code). ``bands`` fixes the metric CRSs
    (default: each village's own UTM zone, :func:`geo.metric.bands_of`, so that a village's
    result does not depend on the other villages of the run); ``classes`` are the layers'
    :func:`evidence_classes` when the caller already has them. ``threads``: indicators assessed
    side by side (their numpy, GEOS and k-d tree work releases the GIL). ``registers``:
    the project's registers without geometry (e.g. ``households``) for the non-spatial rules.
    ``elsewhere``: indicators another process answers meanwhile (their layers need not be in
    ``layers``). Each indicator is answered by its rule unit (:mod:`geo.rules`).
    """
    n = len(villages)
    lon = villages["ref_lon"].to_numpy(dtype=float)
    lat = villages["ref_lat"].to_numpy(dtype=float)
    lonlat = np.column_stack([lon, lat])
    vgeom = villages.geometry.to_numpy()
    is_poly = shapely.get_dimensions(vgeom) == 2
    inds = list(profile.indicators.values())
    masks = {i.key: applicable(villages, i) for i in inds}
    away = [i for i in inds if i.key in elsewhere.keys] if elsewhere is not None else []
    if elsewhere is not None and away:
        elsewhere.start(away, {i.key: masks[i.key] for i in away}, lonlat, vgeom, is_poly)
    here = [i for i in inds if i.key not in {a.key for a in away}]
    if classes is None:
        classes = evidence_classes(layers, replace(profile, indicators={i.key: i for i in here}))
    results = {i.key: Result(n) for i in here}
    total, done = int(sum(m.sum() for m in masks.values())), 0

    def tick(key: str, count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, total, key)

    for ind in here:
        if not rule_of(ind).spatial:
            rule_of(ind).assess_villages(villages, registers or {}, ind, masks[ind.key],
                                         results[ind.key])
            tick(ind.key, int(masks[ind.key].sum()))

    spatial = [i for i in here if rule_of(i).spatial]
    answer_spatial(spatial, masks, results, layers, classes, lonlat, vgeom, is_poly,
                   bands if bands is not None else bands_of(lon, lat), threads, tick)
    answers = answers_of(here, masks, results, layers)
    if elsewhere is not None and away:
        answers.update(elsewhere.answers())
        for ind in away:
            tick(ind.key, int(masks[ind.key].sum()))
    return _to_table(villages, inds, masks, answers)


def answer_spatial(spatial: list[Indicator], masks: Mapping[str, np.ndarray],
                   results: Mapping[str, Result], layers: dict[str, gpd.GeoDataFrame],
                   classes: Mapping[str, np.ndarray], lonlat: np.ndarray, vgeom: np.ndarray,
                   is_poly: np.ndarray, bands: Iterable[Band], threads: int = THREADS,
                   tick: Callable[[str, int], None] | None = None,
                   built: dict[str, dict] | None = None) -> None:
    """Fill ``results`` of the spatial indicators, band by band, the indicators of a band side
    by side; ``tick(key, villages)`` after each (indicator, band). ``built``: work built
    ahead per band CRS (:func:`geo.rules.band.prebuild`), handed to the bands."""
    narrow = Counter(i.layer for i in spatial if getattr(rule_of(i), "narrow_first", False))
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for z in bands:
            band = BandWork(z, layers, lonlat[z.members], vgeom, is_poly, narrow,
                            cache=(built or {}).pop(z.crs, None))
            jobs = {pool.submit(rule_of(ind).assess_band, band, ind, masks[ind.key],
                                classes.get(ind.key), results[ind.key]): ind for ind in spatial}
            for job in as_completed(jobs):  # indicators of a band run side by side
                count = job.result()
                if tick:
                    tick(jobs[job].key, count)


def answers_of(inds: list[Indicator], masks: Mapping[str, np.ndarray],
               results: dict[str, Result], layers: Mapping[str, gpd.GeoDataFrame]
               ) -> dict[str, Answer]:
    """Results as answers: the failed condition of each applicable village's candidate
    described (``results`` is consumed)."""
    out = {}
    for ind in inds:
        res = results.pop(ind.key)
        r = np.flatnonzero(masks[ind.key])
        layer = layers.get(ind.layer)
        failed = (_failed(layer, ind, res.cand[r]) if res.text is None
                  else pd.Series(res.text[r], dtype="string"))
        out[ind.key] = Answer(res, None if layer is None else layer["id"], failed)
    return out


def _to_table(villages: pd.DataFrame, inds: list[Indicator], masks: dict[str, np.ndarray],
              answers: dict[str, Answer]) -> pd.DataFrame:
    """The long table: text columns are taken from small string arrays by position (no per-row
    string conversion). ``answers`` is consumed (emptied) to free each indicator's arrays."""
    # every evidence id once: the layers' ids one after another (-1: none)
    offset: dict[str, int] = {}
    ids: list[pd.Series] = []
    for ind in inds:
        a = answers[ind.key]
        if a.ids is not None and ind.layer not in offset:
            offset[ind.layer] = sum(len(i) for i in ids)
            ids.append(a.ids)
    id_pool = concat_text(ids)
    rows = [np.flatnonzero(masks[ind.key]) for ind in inds]
    total = sum(len(r) for r in rows)
    if total == 0:
        return pd.DataFrame(columns=[*GAP_COLUMNS, "_v"])
    # each column filled in place, indicator by indicator (no per-indicator copies to concatenate:
    # at national size the pairs are 15 M rows)
    cols = {k: np.empty(total, dtype=dt) for k, dt in (
        ("status", np.int8), ("reason", np.int8), ("dist", float), ("evid", np.int64),
        ("cand", np.int64), ("cand_dist", float), ("net", float))}
    ind_no = np.empty(total, dtype=np.int16)  # small codes: 15 M rows of int64 are 120 MB
    failed, extra_count, extra_cost = [], [], []
    start = 0
    registers = any(answers[i.key].res.count is not None for i in inds)
    for n, (ind, r) in enumerate(zip(inds, rows, strict=True)):
        a = answers.pop(ind.key)  # consumed: each indicator's arrays go as the table grows
        res = a.res
        off = offset.get(ind.layer, 0)
        part = slice(start, start + len(r))
        start += len(r)
        failed.append(a.failed)
        extra_count.append(np.full(len(r), -1) if res.count is None else res.count[r])
        extra_cost.append(np.full(len(r), np.nan) if res.unit_cost is None
                          else res.unit_cost[r])
        ind_no[part] = n
        for k, col in cols.items():
            val = getattr(res, k)[r]
            col[part] = np.where(val >= 0, val + off, -1) if k in ("evid", "cand") else val
        del res, a
    v = np.concatenate(rows)
    del rows
    lv, levels = pd.factorize(villages["level"].array)  # two values: decoded, not taken
    coded = {"village_code": (villages["code"], v), "level": (levels, lv.astype(np.int8)[v]),
             "indicator": ([i.key for i in inds], ind_no), "status": (_STATUS, cols.pop("status")),
             "evidence_id": (id_pool, cols.pop("evid")), "candidate_id": (id_pool, cols.pop("cand")),
             "reason": (_REASON, cols.pop("reason"))}
    numeric = {"distance_m": cols.pop("dist"), "candidate_distance_m": cols.pop("cand_dist"),
               "network_m": cols.pop("net")}
    del ind_no

    def decode(name: str) -> pd.api.extensions.ExtensionArray:
        pool_, idx = coded.pop(name)  # dropped once decoded (at national size 15 M rows each)
        return take_text(pool_, idx)

    # the text columns decoded side by side (Arrow's cast releases the GIL)
    with ThreadPoolExecutor(THREADS) as workers:
        text = {k: workers.submit(decode, k) for k in list(coded)}
        out: dict[str, Any] = {k: text[k].result() if k in text else numeric[k]
                               for k in GAP_COLUMNS if k != "failed"}
    out["failed"] = pd.concat(failed, ignore_index=True).array
    if registers:  # households concerned and their mean remedy unit cost (register rules)
        cnt = np.concatenate(extra_count)
        out["count"] = pd.array(np.where(cnt >= 0, cnt, None), dtype="Int64")
        out["unit_cost"] = np.concatenate(extra_cost)
    out["_v"] = v
    return pd.DataFrame(out, copy=False)  # no consolidating copy of the numeric columns


def _failed(layer: gpd.GeoDataFrame | None, ind: Indicator, cand: np.ndarray) -> pd.Series:
    """The failed evidence condition of each candidate feature (positions ``cand`` in
    ``layer``, -1: none), described once per distinct feature."""
    none = pd.Series(pd.NA, index=range(len(cand)), dtype="string")
    has = cand >= 0
    if layer is None or not has.any():
        return none
    u, inv = np.unique(cand[has], return_inverse=True)
    text = explain(layer.iloc[u], ind.evidence).array
    none[has] = text.take(inv)
    return none
