"""``/runs``: the runs served, one run's manifest, and the comparison of two runs."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from buque.api.deps import (
    Indicators,
    TableF,
    alternates,
    attachment,
    get_settings,
    get_store,
    link,
    negotiate,
    reject_unknown_params,
    unknown_run,
    url_for,
    viewer,
)
from buque.api.encoders import CSV, XLSX, csv_bytes, dumps, xlsx_bytes
from buque.api.openapi import json_ok, problems
from buque.api.settings import Role
from buque.api.store import RunStoreBase, UnknownRun
from buque.geo.diff import CHANGES, diff_codes, diff_counts, filter_diff
from buque.geo.query import choices

router = APIRouter(tags=["Runs"], dependencies=[Depends(reject_unknown_params)])


def _json(body: Any) -> Response:
    return Response(dumps(body).encode(), media_type="application/json")


def _resolve(store: RunStoreBase, run_id: str) -> str:
    try:
        return store.resolve(run_id)
    except UnknownRun:
        raise unknown_run(store, run_id) from None


def redact(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest without server file paths (only file names)."""
    def walk(x: Any, key: str = "") -> Any:
        if isinstance(x, dict):
            return {k: walk(v, k) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        if key == "path" and isinstance(x, str):
            return PurePath(x).name
        return x
    return walk(manifest)


@router.get("/runs", summary="Runs served", responses={**json_ok(), **problems(400)})
def runs(request: Request, role: Annotated[Role, Depends(viewer)]) -> Response:
    store = get_store(request)
    store.refresh()
    manifests = store.manifests  # one snapshot: a refresh may swap in a new registry
    newest = next(reversed(manifests), None)
    items = []
    for rid in reversed(manifests):
        m = manifests[rid]
        c = m.get("counts", {})
        items.append({
            "run_id": rid, "folder": store.folder(rid), "created": m.get("created"),
            "newest": rid == newest,
            "project": (m.get("project") or {}).get("name"),
            "profile": {k: (m.get("profile") or {}).get(k) for k in ("name", "version")},
            "counts": {k: c.get(k) for k in ("villages_in", "assessed", "rejected", "gaps",
                                             "remedy_cost") if k in c},
            "links": [link(url_for(request, f"/runs/{rid}"), "self", "application/json"),
                      link(url_for(request, "/collections/villages/items", run=rid), "items",
                           "application/geo+json", "villages of this run"),
                      link(url_for(request, "/summary", run=rid), "summary", "application/json")],
        })
    return _json({"newest": newest, "numberReturned": len(items), "runs": items,
                  "links": [link(url_for(request, "/runs"), "self", "application/json")]})


@router.get("/runs/{run_id}", summary="A run's manifest", responses={**json_ok(), **problems(400, 404)})
def run_manifest(request: Request, run_id: str, role: Annotated[Role, Depends(viewer)]) -> Response:
    """The run's manifest (inputs with hashes, profile, counts). With API keys configured,
    viewer keys see file names only; office keys see the full paths."""
    store = get_store(request)
    rid = _resolve(store, run_id)
    m = store.manifests[rid]
    if get_settings(request).api_keys and role != "office":
        m = redact(m)
    return _json({**m, "links": [
        link(url_for(request, f"/runs/{rid}"), "self", "application/json"),
        link(url_for(request, "/collections", run=rid), "data", "application/json")]})


@router.get("/runs/{a}/diff/{b}", summary="What changed between two runs", response_class=Response,
            responses={**json_ok(tables=True), **problems(400, 404)})
def diff(request: Request, a: str, b: str, role: Annotated[Role, Depends(viewer)],
         indicator: Indicators = None,
         change: Annotated[str | None, Query(
             description="fixed, regressed, newly_assessed, removed and/or changed.",
             max_length=2000)] = None,
         f: TableF = None) -> Response:
    """Villages whose status changed from run `a` to run `b` (a run id or a run's folder name;
    `latest` names the newest run),
    per indicator: **fixed** (missing/unknown -> met), **regressed** (met -> missing: a gap
    that came back), **newly_assessed**, **removed**, and **changed** (other status changes,
    with from/to). CSV/XLSX give one row per change with the village's name and place."""
    store = get_store(request)
    ra, rb = _resolve(store, a), _resolve(store, b)
    fmt = negotiate(request, f, ("json", "csv", "xlsx"), "json")
    run_b = store.get(rb)
    inds = list(dict.fromkeys([*run_b.data.indicators, *store.get(ra).data.indicators]))
    chosen = choices(indicator, "indicator", inds)
    d = filter_diff(store.diff(ra, rb), indicator=chosen,
                    change=choices(change, "change", CHANGES))
    inds = list(chosen) or inds
    if fmt in ("csv", "xlsx"):
        place = run_b.data.index.properties.set_index("code")[["name", "county", "township"]]
        old = store.get(ra).data.index.properties.set_index("code")[["name", "county", "township"]]
        place = place.combine_first(old)
        table = d.join(place, on="village_code")
        table = table[["village_code", "name", "county", "township", "level", "indicator",
                       "change", "status_a", "status_b", "distance_m_a", "distance_m_b"]]
        name = f"diff-{ra}-{rb}"
        if fmt == "csv":
            return Response(csv_bytes(table), media_type=CSV,
                            headers=attachment(f"{name}.csv"))
        return Response(xlsx_bytes({"changes": table}), media_type=XLSX,
                        headers=attachment(f"{name}.xlsx"))
    return _json({"a": ra, "b": rb, "counts": diff_counts(d, inds),
                  "changes": diff_codes(d, inds), "numberReturned": len(d),
                  "links": [link(str(request.url), "self", "application/json"),
                            *alternates(request, "json", ("csv", "xlsx"))]})
