"""``/plans``, ``/plans/{id}``, ``/plans/{id}/works``, ``/plans/{a}/diff/{b}`` and ``/whatif``.

Plans are read from ``settings.plans`` (default: the ``plans`` folder inside the data folder),
each once per change of its plan.json. ``/whatif`` answers from the run's stored distances
(:class:`geo.plan.whatif.WhatIf`, built once per run).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.deps import get_settings, get_store, reject_unknown_params, unknown_run, viewer
from api.encoders import CSV, XLSX, csv_bytes, dumps, rows, xlsx_bytes
from api.openapi import features_ok, json_ok, problems
from api.problems import Problem
from api.store import UnknownRun
from geo.plan.params import set_pattern
from layers.errors import BuqueInputError

router = APIRouter(tags=["Plans"], dependencies=[Depends(viewer), Depends(reject_unknown_params)])
_lock = threading.Lock()
#: the shape of one ``set`` value; the OpenAPI document narrows it to the keys of the newest
#: run's profile (:func:`geo.plan.params.set_pattern`)
SET_PATTERN = set_pattern(None)


def _json(body: Any) -> Response:
    return Response(dumps(body).encode(), media_type="application/json")


def plans_folder(request: Request) -> Path:
    s = get_settings(request)
    return Path(s.plans) if s.plans is not None else Path(s.data) / "plans"


def _plans(request: Request) -> dict[str, Path]:
    from geo.plan.archive import list_plans

    out = {}
    for p in list_plans(plans_folder(request)):
        out[p.name] = p
    return out


def _plan(request: Request, plan_id: str):
    """A plan by folder name or plan id, cached until its plan.json changes."""
    from geo.plan.archive import read_plan

    found = _plans(request)
    path = found.get(plan_id)
    if path is None:
        import json

        for p in found.values():
            with open(p / "plan.json", encoding="utf-8") as f:
                if json.load(f).get("plan_id") == plan_id:
                    path = p
                    break
    if path is None:
        raise Problem(404, f"no plan {plan_id!r}; known plans: {', '.join(found) or 'none'}",
                      kind="unknown-plan")
    cache = request.app.state.__dict__.setdefault("plan_cache", {})
    key = (str(path), (path / "plan.json").stat().st_mtime_ns)
    with _lock:
        if key not in cache:
            cache[key] = read_plan(path)
        return cache[key]


@router.get("/plans", summary="Plans served", responses={**json_ok(), **problems(400)})
def plans(request: Request) -> Response:
    """Each plan's id, folder, run, budgets and totals."""
    out = []
    for name in _plans(request):
        m = _plan(request, name).meta
        out.append({"name": name, "plan_id": m.get("plan_id"), "run_id": m["run"].get("run_id"),
                    "budgets": m.get("budgets"), "totals": m.get("totals"),
                    "links": [{"rel": "self", "href": f"/plans/{name}"},
                              {"rel": "works", "href": f"/plans/{name}/works"}]})
    return _json({"plans": out})


@router.get("/plans/{plan_id}", summary="One plan: summary and phases",
            responses={**json_ok(), **problems(400, 404)})
def plan(request: Request, plan_id: str) -> Response:
    p = _plan(request, plan_id)
    meta = {k: v for k, v in p.meta.items() if k != "run"}
    meta["run"] = {"run_id": p.meta["run"].get("run_id"),
                   "manifest_sha256": p.meta["run"].get("manifest_sha256")}
    return _json({**meta, "phases": rows(p.phases)})


@router.get("/plans/{plan_id}/works", summary="A plan's works (GeoJSON, CSV or XLSX)",
            response_class=Response, responses={**features_ok(), **problems(400, 404)})
def works(request: Request, plan_id: str,
          county: Annotated[str | None, Query(description="County name(s), comma-separated.")] = None,
          indicator: Annotated[str | None, Query(description="Indicator key(s).")] = None,
          phase: Annotated[str | None, Query(description="Phase label(s); `none` for unfunded.")] = None,
          limit: Annotated[int, Query(ge=1, description="Works per page (at most 10000).")] = 100,
          offset: Annotated[int, Query(ge=0)] = 0,
          f: Annotated[str, Query(pattern="^(json|csv|xlsx)$")] = "json") -> Response:
    from geo.lists import split_values

    w = _plan(request, plan_id).works
    sel = pd.Series(True, index=w.index)
    if county:
        sel &= w["county"].isin(split_values(county))
    if indicator:
        sel &= w["indicator"].isin(split_values(indicator))
    if phase:
        ph = split_values(phase)
        sel &= w["phase"].isin(ph) | (w["phase"].isna() & ("none" in ph))
    sub = w[sel.to_numpy()]
    limit = min(limit, 10000)
    if f in ("csv", "xlsx"):
        table = pd.DataFrame(sub.drop(columns="geometry")).assign(wkt=sub.geometry.to_wkt())
        if f == "csv":
            return Response(csv_bytes(table), media_type=CSV)
        return Response(xlsx_bytes({"项目库": table}), media_type=XLSX)
    page = sub.iloc[offset:offset + limit]
    import json

    fc = json.loads(page.to_json(na="null", drop_id=True))
    fc.update({"numberMatched": int(len(sub)), "numberReturned": int(len(page))})
    if offset + limit < len(sub):
        fc["links"] = [{"rel": "next", "href": str(request.url.include_query_params(
            offset=offset + limit))}]
    return Response(json.dumps(fc, ensure_ascii=False).encode(),
                    media_type="application/geo+json")


@router.get("/plans/{a}/diff/{b}", summary="Two plans compared",
            responses={**json_ok(), **problems(400, 404)})
def diff(request: Request, a: str, b: str,
         limit: Annotated[int, Query(ge=1, description="Changed works listed (at most "
                                     "10000).")] = 1000) -> Response:
    from geo.plan.diff import diff_plans

    summary, changed = diff_plans(_plan(request, a), _plan(request, b))
    return _json({**summary, "numberMatched": int(len(changed)),
                  "works": rows(changed.head(min(limit, 10000)))})


@router.get("/whatif", summary="Rates and costs under changed parameters",
            responses={**json_ok(), **problems(400, 404)})
def whatif(request: Request,
           set_: Annotated[list[str] | None, Query(
               alias="set", json_schema_extra={"items": {"type": "string",
                                                         "pattern": SET_PATTERN}},
               description="KEY=VALUE, repeated: e.g. water.threshold_m=1000, "
               "road.unit_cost=800000, county.NAME=1.4")] = None,
           run: Annotated[str | None, Query(max_length=100, description="Run id (newest when "
                                            "absent).")] = None) -> Response:
    """Per indicator under the changed parameters: pairs met / missing / unknown, the rate
    against the target, and the standalone cost of the missing pairs (see docs/planning.md);
    answered from the run's stored distances, nothing re-read."""
    from geo.plan.params import make_params, parse_set

    t0 = time.perf_counter()
    wi = _whatif(request, run)
    try:
        params = make_params(wi.profile, dict(parse_set(s) for s in set_ or []))
    except BuqueInputError as e:
        raise Problem(400, str(e), kind="bad-parameter") from None
    ind = wi.summary(params)
    base = wi.summary(make_params(wi.profile, {}))
    return _json({"run": wi.run_id, "set": params.sets, "indicators": ind,
                  "baseline": {k: {"rate": v["rate"], "standalone_cost": v["standalone_cost"]}
                               for k, v in base.items()},
                  "standalone_cost": round(sum(v["standalone_cost"] for v in ind.values()), 2),
                  "ms": round((time.perf_counter() - t0) * 1000, 2)})


def _whatif(request: Request, run: str | None):
    from geo.plan.whatif import WhatIf
    from geo.plan.works import load_run

    store = get_store(request)
    try:
        rid = store.resolve(run)
    except UnknownRun:
        raise unknown_run(store, run) from None
    path = getattr(store, "paths", {}).get(rid)
    if path is None:
        raise Problem(501, "what-ifs need a run archive on disk (not served from PostGIS)",
                      kind="not-implemented")
    cache = request.app.state.__dict__.setdefault("whatif_cache", {})
    with _lock:
        if rid not in cache:
            inp = load_run(path, layers=False)
            wi = WhatIf(inp.gaps, inp.villages, inp.profile)
            wi.run_id = rid
            cache[rid] = wi
        return cache[rid]
