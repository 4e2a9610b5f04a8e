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
from fastapi import Path as PathParam
from fastapi.responses import Response

from buque.api.deps import get_settings, get_store, reject_unknown_params, unknown_run, viewer
from buque.api.encoders import CSV, XLSX, csv_bytes, dumps, rows, xlsx_bytes
from buque.api.openapi import features_ok, json_ok, problems
from buque.api.problems import Problem
from buque.api.store import UnknownRun
from buque.geo.plan.params import set_pattern
from buque.layers.errors import BuqueInputError

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
    from buque.geo.plan.archive import list_plans

    out = {}
    for p in list_plans(plans_folder(request)):
        out[p.name] = p
    return out


def _pg_plans(request: Request):
    """The PostGIS plan store when the API serves ``--postgres`` and no plans folder is set."""
    s = get_settings(request)
    if s.postgres is None or s.plans is not None:
        return None
    store = request.app.state.__dict__.get("pg_plans")
    if store is None:
        from buque.api.pgplans import PgPlanStore

        # the run store's connections (closed with it when the app stops)
        pool = getattr(get_store(request), "pool", None)
        store = request.app.state.pg_plans = PgPlanStore(s.postgres, s.pg_schema, pool=pool)
    return store


def _names(request: Request) -> list[str]:
    pg = _pg_plans(request)
    return pg.names() if pg is not None else list(_plans(request))


def _plan(request: Request, plan_id: str):
    """A plan by folder name (published name) or plan id, cached until its plan.json changes
    (until it is published again)."""
    from buque.geo.plan.archive import read_plan

    pg = _pg_plans(request)
    if pg is not None:
        hit = pg.get(plan_id)
        if hit is None:
            raise Problem(404, f"no plan {plan_id!r}; known plans: "
                          f"{', '.join(pg.names()) or 'none'}", kind="unknown-plan")
        return hit
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
    for name in _names(request):
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
    from buque.geo.lists import split_values

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
    from buque.geo.plan.diff import diff_plans

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
    from buque.geo.plan.params import make_params, parse_set

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
    from buque.geo.plan.whatif import WhatIf
    from buque.geo.plan.works import load_run

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


# ------------------------------------------------------------------ the works on the map

WORK_PROPS = ["work_id", "indicator", "action", "item", "phase", "funded", "cost", "villages",
              "priority", "line_m"]


def _work_tiles(request: Request, plan_id: str):
    """The plan's works as one tile layer ``works`` (verify items and works without a geometry
    left out; ``phase`` is ``none`` when unfunded), built once per plan version."""
    from buque.geo.tiles import TileLayer

    p = _plan(request, plan_id)
    cache = request.app.state.__dict__.setdefault("plan_tiles", {})
    key = id(p)
    with _lock:
        if key not in cache:
            w = p.works
            w = w[(w["action"] != "verify").to_numpy() & w.geometry.notna().to_numpy()
                  & ~w.geometry.is_empty.to_numpy()].copy()
            w["phase"] = w["phase"].astype(object).where(w["phase"].notna(), "none").astype(str)
            w["funded"] = w["funded"].astype(bool)
            cache.clear()
            cache[key] = (p, TileLayer.from_frame("works", w, WORK_PROPS,
                                                  rank=w["cost"].to_numpy(float)))
        return cache[key][1]


MVT = "application/vnd.mapbox-vector-tile"


@router.get("/plans/{plan_id}/tiles/{z}/{x}/{y}.mvt", response_class=Response,
            summary="A plan's works as a vector tile (layer `works`)",
            responses={200: {"description": "Mapbox Vector Tile 2.1",
                             "content": {MVT: {"schema": {"type": "string",
                                                          "format": "binary"}}}},
                       204: {"description": "empty tile"}, **problems(400, 404)})
def work_tile(request: Request, plan_id: str, z: Annotated[int, PathParam(ge=0, le=24)],
              x: Annotated[int, PathParam(ge=0)], y: Annotated[int, PathParam(ge=0)]) -> Response:
    """One tile of the plan's works: lines to build or harden, sites and upgraded features;
    properties ``work_id``, ``indicator``, ``action``, ``item``, ``phase`` (``none``:
    unfunded), ``funded``, ``cost``, ``villages``, ``priority``, ``line_m``."""
    from buque.geo.tiles import valid_tile

    layer = _work_tiles(request, plan_id)
    if not valid_tile(z, x, y):
        raise Problem(404, f"tile {z}/{x}/{y} does not exist (x and y must be below 2^z)",
                      kind="no-such-tile")
    body = layer.render(z, x, y)
    headers = {"Cache-Control": "public, max-age=3600"}
    if not body:
        return Response(status_code=204, headers=headers)
    return Response(body, media_type=MVT, headers=headers)


@router.get("/plans/{plan_id}/works/{work_id}", summary="One work and the villages it serves",
            responses={**json_ok(), **problems(400, 404)})
def work(request: Request, plan_id: str, work_id: str) -> Response:
    """The work's fields (no geometry) and each village it serves: code, level, indicator,
    and the name, county and township of the plan's run when that run is served."""
    p = _plan(request, plan_id)
    w = p.works
    hit = w[(w["work_id"] == work_id).to_numpy()]
    if not len(hit):
        raise Problem(404, f"plan {plan_id!r} has no work {work_id!r}", kind="unknown-work")
    wv = p.work_villages
    served = pd.DataFrame(wv[(wv["work_id"] == work_id).to_numpy()]).drop(columns="work_id")
    served = served.merge(_village_names(request, p.meta["run"].get("run_id")),
                          on="village_code", how="left")
    fields = rows(pd.DataFrame(hit.drop(columns=hit.geometry.name)))[0]
    return _json({**fields, "served": rows(served.reset_index(drop=True))})


def _village_names(request: Request, run_id: str | None) -> pd.DataFrame:
    """village_code -> name, county, township of a served run (empty when it is not served)."""
    cols = ["village_code", "name", "county", "township"]
    try:
        v = get_store(request).get(run_id).data.tables.villages
    except (UnknownRun, KeyError, AttributeError):
        return pd.DataFrame(columns=cols).astype("string")
    keep = [c for c in ("code", "name", "county", "township") if c in v.columns]
    out = pd.DataFrame(v[keep]).rename(columns={"code": "village_code"})
    out["village_code"] = out["village_code"].astype("string")
    return out.drop_duplicates("village_code")
