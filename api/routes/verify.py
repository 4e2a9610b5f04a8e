"""``/discrepancies`` (the ledger against the evidence), ``/progress`` and
``/progress/regressions`` (runs of one project over time). Handlers call :mod:`geo.ledger` and
:mod:`geo.progress`, the same functions as ``buque check-ledger`` and ``buque progress``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from buque.api.deps import (
    Counties,
    Indicators,
    Run,
    TableF,
    Townships,
    alternates,
    attachment,
    get_store,
    link,
    negotiate,
    office,
    reject_unknown_params,
    viewer,
)
from buque.api.encoders import CSV, XLSX, csv_bytes, dumps, rows, xlsx_bytes
from buque.api.openapi import json_ok, problems
from buque.api.problems import Problem
from buque.geo.ledger import CLASSES, DISCREPANCY_COLUMNS, class_counts, read_discrepancies
from buque.geo.lists import split_values
from buque.geo.progress import pace, regressions, series
from buque.geo.query import choices

router = APIRouter(tags=["Verification"], dependencies=[Depends(reject_unknown_params)])
_cache: dict[tuple, Any] = {}
_lock = threading.Lock()
CACHE = 8


def _table(request: Request, name: str, df: pd.DataFrame, fmt: str, body: dict) -> Response:
    if fmt == "csv":
        return Response(csv_bytes(df), media_type=CSV, headers=attachment(f"{name}.csv"))
    if fmt == "xlsx":
        return Response(xlsx_bytes({name.split("-")[0]: df}), media_type=XLSX,
                        headers=attachment(f"{name}.xlsx"))
    body["links"] = [link(str(request.url), "self", "application/json"),
                     *alternates(request, "json", ("csv", "xlsx"))]
    return Response(dumps(body).encode(), media_type="application/json")


def _pick(df: pd.DataFrame, county: str | None, township: str | None,
          indicator: tuple[str, ...]) -> pd.DataFrame:
    m = pd.Series(True, index=df.index)
    if county:
        m &= df["county"].astype("string").isin(split_values(county)).fillna(False)
    if township:
        m &= df["township"].astype("string").isin(split_values(township)).fillna(False)
    if indicator:
        m &= df["indicator"].astype("string").isin(indicator).fillna(False)
    return df[m.to_numpy(bool)].reset_index(drop=True)


@router.get("/discrepancies", summary="The ledger against the evidence", response_class=Response,
            dependencies=[Depends(office)],
            responses={**json_ok(tables=True), **problems(400, 404)})
def discrepancies(request: Request, run: Run, county: Counties = None,
                  township: Townships = None, indicator: Indicators = None,
                  cls: Annotated[str | None, Query(
                      alias="class", max_length=2000,
                      description="claimed_met_evidence_missing (疑似虚报/错退), "
                      "claimed_met_evidence_unknown (待核实) and/or claimed_missing_evidence_met "
                      "(台账未更新).")] = None,
                  f: TableF = None) -> Response:
    """One row per (village, indicator) where the office's ledger and the evidence disagree,
    with the evidence (status, distance, nearest feature) and the ledger's row; `counts` per
    county and class. `checked` is false (and the list empty) when the run was not checked
    against a ledger (`buque check-ledger RUN LEDGER`, or `[ledger]` in the project)."""
    fmt = negotiate(request, f, ("json", "csv", "xlsx"), "json")
    path = getattr(run.data, "path", None)
    d = read_discrepancies(Path(path)) if path is not None and Path(path).is_dir() else None
    checked = d is not None
    if d is None:
        d = pd.DataFrame({c: pd.Series(dtype="string") for c in DISCREPANCY_COLUMNS})
    sel = _pick(d, county, township, choices(indicator, "indicator", run.data.indicators))
    classes = choices(cls, "class", CLASSES)
    if classes:
        sel = sel[sel["class"].isin(classes)].reset_index(drop=True)
    counts = class_counts(sel.assign(county=sel["county"].fillna("")), ["county"])
    ledger = {k: v for k, v in (run.data.manifest.get("ledger") or {}).items() if k != "path"}
    return _table(request, f"discrepancies-{run.run_id}", sel, fmt, {
        "run": run.run_id, "checked": checked, "ledger": ledger if checked else None,
        "numberReturned": len(sel), "counts": rows(counts), "discrepancies": rows(sel)})


def _runs(request: Request) -> list[Path]:
    store = get_store(request)
    store.refresh()
    paths = getattr(store, "paths", None)
    if not paths:
        raise Problem(404, "progress needs the served runs as archives (buque serve DIR)",
                      kind="no-archives")
    newest = store.manifests[store.newest] if store.newest else {}
    name = (newest.get("project") or {}).get("name")
    return [Path(p) for rid, p in paths.items()
            if (store.manifests[rid].get("project") or {}).get("name") == name]


def _indicators(request: Request, s: pd.DataFrame) -> list[str]:
    """The indicators a request may name: the newest run's and the series'."""
    store = get_store(request)
    return list(dict.fromkeys([*store.get().data.indicators, *s["indicator"].astype(str)]))


def _cached(kind: str, runs: list[Path], make):
    key = (kind, *((str(p), (p / "manifest.json").stat().st_mtime_ns) for p in runs))
    with _lock:
        if key in _cache:
            return _cache[key]
    value = make(runs)
    with _lock:
        _cache[key] = value
        while len(_cache) > CACHE:
            _cache.pop(next(iter(_cache)))
    return value


@router.get("/progress", summary="Rates over the runs of the project", response_class=Response,
            dependencies=[Depends(viewer)],
            responses={**json_ok(tables=True), **problems(400, 404)})
def progress(request: Request,
             by: Annotated[Literal["county", "township"], Query(
                 description="Per county, or per township, and indicator.")] = "county",
             county: Counties = None, township: Townships = None, indicator: Indicators = None,
             f: TableF = None) -> Response:
    """Per place and indicator: the rate of each run of the newest run's project (oldest
    first, dated by the run), the target and deadline, the pace (rate per day, least squares)
    and the date the target is reached at that pace (`reached_on`; null when not at this
    pace), `on_track` when that is by the deadline. CSV/XLSX give the series."""
    fmt = negotiate(request, f, ("json", "csv", "xlsx"), "json")
    runs = _runs(request)
    s = _cached("series", runs, series)
    chosen = choices(indicator, "indicator", _indicators(request, s))
    s = _pick(s[s["scope"] == by], county, township, chosen)
    p = _pick(_cached("pace", runs, lambda r: pace(series(r))), county, township, chosen)
    p = p[p["scope"] == by].reset_index(drop=True)
    body: dict[str, Any] = {"by": by, "runs": list(dict.fromkeys(s["run_id"])),
                            "numberReturned": len(p), "pace": rows(p),
                            "series": rows(s.drop(columns="created"))}
    return _table(request, "progress", s.drop(columns="created"), fmt, body)


@router.get("/progress/regressions", summary="Pairs met in a run and missing in the next",
            response_class=Response, dependencies=[Depends(viewer)],
            responses={**json_ok(tables=True), **problems(400, 404)})
def progress_regressions(request: Request, county: Counties = None, township: Townships = None,
                         indicator: Indicators = None, f: TableF = None) -> Response:
    """Regressions (反弹) over the runs of the project: each (village, indicator) met in a run
    and missing in the next, with what changed in the evidence (`cause`: feature_removed,
    feature_changed, profile_changed, field or other; `detail` names the feature)."""
    fmt = negotiate(request, f, ("json", "csv", "xlsx"), "json")
    runs = _runs(request)
    reg = _cached("regressions", runs, regressions)
    chosen = choices(indicator, "indicator", _indicators(request, _cached("series", runs, series)))
    sel = _pick(reg, county, township, chosen)
    return _table(request, "regressions", sel, fmt, {"numberReturned": len(sel),
                                                     "regressions": rows(sel)})
