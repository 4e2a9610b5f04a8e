"""The remedy list (项目清单): what fills each missing (village, indicator), and what it costs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from buque.geo.columns import codes, equals, ranks, take_text
from buque.layers.profile import Profile, Remedy

PROJECT_COLUMNS = ["rank", "priority", "village_code", "name", "level", "county", "township",
                   "poor", "exit_year", "population", "households", "indicator", "action",
                   "item", "unit", "quantity", "quantity_basis", "unit_cost", "cost",
                   "distance_m", "deadline"]

#: priority classes: planned-exit poor villages first, then other poor villages, then the rest
PRIORITY_LABELS = {1: "poor village with planned exit year", 2: "poor village", 3: "other village"}


def priority(villages: pd.DataFrame) -> np.ndarray:
    """1 = poor with a planned exit year, 2 = poor, 3 = everyone else (never left out)."""
    poor = villages["poor"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    exit_known = villages["exit_year"].notna().to_numpy()
    return np.where(poor & exit_known, 1, np.where(poor, 2, 3))


#: what a remedy's quantity was computed from (``quantity_basis``), by code
BASES = ("count", "households", "unknown", "distance", "default", "register")
_BASIS = {b: np.int8(i) for i, b in enumerate(BASES)}


def _quantity(rem: Remedy, distance_m: np.ndarray, households: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Quantities and their basis (codes into :data:`BASES`)."""
    n = len(distance_m)
    if rem.quantity == "count":
        return np.ones(n), np.full(n, _BASIS["count"])
    if rem.quantity == "households":
        ok = np.isfinite(households)
        return households, np.where(ok, _BASIS["households"], _BASIS["unknown"])
    known = np.isfinite(distance_m)
    default = np.nan if rem.default_quantity is None else float(rem.default_quantity)
    q = np.where(known, distance_m / 1000.0, default)
    return np.round(q, 3), np.where(known, _BASIS["distance"], _BASIS["default"])


def remedies(gaps: pd.DataFrame, villages: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """One row per missing (village, indicator), ranked by priority, exit year and place.

    ``gaps`` carries ``_v``, each row's position in ``villages``. ``action`` is ``upgrade``
    where a non-qualifying feature already satisfies the rule and the
    profile defines an upgrade (e.g. a clinic to standardize), else ``build``. Quantities from
    distance use the straight-line distance to the nearest qualifying feature; where none
    exists the profile's ``default_quantity`` is used and ``quantity_basis`` says so.
    Columns are gathered by position (no per-row text conversion).
    """
    missing = equals(gaps["status"], "missing")
    ind_code = codes(gaps["indicator"], list(profile.indicators))
    nonq = equals(gaps["reason"], "non_qualifying_nearby")
    vpos = gaps["_v"].to_numpy()
    dist = gaps["distance_m"].to_numpy(dtype=float, na_value=np.nan)
    hh = villages["households"].to_numpy(dtype=float, na_value=np.nan)
    reg_count = (gaps["count"].to_numpy(dtype=float, na_value=np.nan) if "count" in gaps
                 else None)
    rows, jobs, qty, basis = [], [], [], []
    job_rows = []  # per (indicator, action): indicator, action, item, unit, unit cost, deadline
    for n, (key, ind) in enumerate(profile.indicators.items()):
        here = missing & (ind_code == n)
        up = nonq & (ind.upgrade is not None)
        for action, rem, sel in (("build", ind.remedy, here & ~up), ("upgrade", ind.upgrade, here & up)):
            if rem is None or not sel.any():
                continue
            gi = np.flatnonzero(sel)
            q, b = _quantity(rem, dist[gi], hh[vpos[gi]])
            if reg_count is not None:  # a register rule counted the households concerned
                rc = reg_count[gi]
                counted = np.isfinite(rc)
                q, b = np.where(counted, rc, q), np.where(counted, _BASIS["register"], b)
            rows.append(gi)
            jobs.append(np.full(len(gi), len(job_rows)))
            qty.append(q)
            basis.append(b)
            job_rows.append((key, action, rem.item, rem.unit, rem.unit_cost,
                             ind.deadline.isoformat()))
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in PROJECT_COLUMNS})
    gi, job, q = np.concatenate(rows), np.concatenate(jobs), np.concatenate(qty)
    v = vpos[gi]
    spec = pd.DataFrame(job_rows, columns=["indicator", "action", "item", "unit", "unit_cost",
                                           "deadline"])
    unit_cost = spec["unit_cost"].to_numpy(dtype=float)[job]
    if "unit_cost" in gaps:  # per village, e.g. by housing grade (register rules)
        own = gaps["unit_cost"].to_numpy(dtype=float, na_value=np.nan)[gi]
        unit_cost = np.where(np.isfinite(own), own, unit_cost)
    # the order first (integer keys, one lexsort), then every column taken once in that order
    # (a frame sorted afterwards is taken twice: at national size seconds of text gathering)
    prio = priority(villages)
    keys = [ranks(spec["indicator"])[job]]  # lexsort: the last key is the first criterion
    for col in ("code", "township", "county"):
        keys.append(ranks(villages[col])[v])
    keys.append(ranks(villages["exit_year"].astype("Int64"))[v])
    order = np.lexsort([*keys, prio[v]])
    gi, job, q, v = gi[order], job[order], q[order], v[order]
    unit_cost, basis = unit_cost[order], np.concatenate(basis)[order]
    out = pd.DataFrame({
        "rank": np.arange(1, len(gi) + 1), "priority": prio[v],
        "village_code": gaps["village_code"].array.take(gi),
        "name": villages["name"].array.take(v), "level": gaps["level"].array.take(gi),
        "county": villages["county"].array.take(v), "township": villages["township"].array.take(v),
        "poor": villages["poor"].astype("boolean").array.take(v),
        "exit_year": villages["exit_year"].astype("Int64").array.take(v),
        "population": villages["population"].astype("Int64").array.take(v),
        "households": villages["households"].astype("Int64").array.take(v),
        **{c: take_text(spec[c], job) for c in ("indicator", "action", "item", "unit")},
        "quantity": q, "quantity_basis": take_text(BASES, basis),
        "unit_cost": unit_cost, "cost": np.round(q * unit_cost, 2),
        "distance_m": dist[gi], "deadline": take_text(spec["deadline"], job)},
        copy=False)  # no consolidating copy of the numeric columns
    return out[PROJECT_COLUMNS]
