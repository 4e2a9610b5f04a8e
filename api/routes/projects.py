"""``/projects``: the remedy list (项目清单) with filters and totals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from buque.api.deps import (
    Codes,
    Counties,
    Indicators,
    Levels,
    Paging,
    Run,
    TableF,
    Townships,
    alternates,
    attachment,
    get_settings,
    negotiate,
    office,
    paging,
    paging_links,
    reject_unknown_params,
    window,
)
from buque.api.encoders import CSV, dumps, rows
from buque.api.openapi import json_ok, problems
from buque.api.routes.exports import Lang, ledger_response
from buque.geo.lists import split_values
from buque.geo.query import ProjectFilter

router = APIRouter(tags=["Projects"], dependencies=[Depends(office), Depends(reject_unknown_params)])


@router.get("/projects", summary="Remedy list with totals", response_class=Response,
            responses={**json_ok(tables=True), **problems(400, 404)})
def projects(request: Request, run: Run, page: Annotated[Paging, Depends(paging)],
             county: Counties = None, township: Townships = None, indicator: Indicators = None,
             priority: Annotated[str | None, Query(
                 description="1 = poor village with a planned exit year, 2 = other poor "
                 "village, 3 = other village; comma-separated.", max_length=2000)] = None,
             level: Levels = None,
             action: Annotated[str | None, Query(description="build and/or upgrade.",
                                                 max_length=2000)] = None,
             village: Codes = None,
             f: TableF = None, lang: Lang = "zh") -> Response:
    """One row per missing (village, indicator): what fills it, quantity, unit, estimated cost,
    priority and deadline, in rank order. `totals` (quantity and cost per indicator, per
    county and indicator, per county) cover every matching row, not just the page. CSV holds
    every matching row unless `limit` is given. XLSX is the ledger (台账, as `buque export
    --format xlsx` writes it; `lang=en` for English) of the villages of the matching rows."""
    fmt = negotiate(request, f, ("json", "csv", "xlsx"), "json")
    pf = ProjectFilter.parse(indicators=run.data.indicators, county=county, township=township,
                             indicator=indicator, priority=priority, level=level, action=action,
                             village=village)
    ix = run.data.project_index
    sel = ix.select(pf)
    matched = len(sel)
    part = sel[window(matched, page, fmt, get_settings(request).max_export_rows)]
    totals = ix.totals(sel)
    name = f"projects-{run.run_id}"
    headers = {"OGC-NumberMatched": str(matched), "X-Buque-Run": run.run_id}
    if fmt == "csv":
        return Response(run.projects.csv(part), media_type=CSV, headers={
            **headers, **attachment(f"{name}.csv")})
    if fmt == "xlsx":
        codes = ix.table["village_code"].to_numpy(dtype=object)[part]
        return ledger_response(run, codes, county, township, split_values(indicator), lang,
                               f"{name}.xlsx", headers)
    body = {
        "run": run.run_id, "numberMatched": matched, "numberReturned": len(part),
        "totals": {"total": rows(totals["total"])[0],
                   "by_indicator": rows(totals["by_indicator"]),
                   "by_county": rows(totals["by_county"]),
                   "by_county_total": rows(totals["by_county_total"])},
        "projects": run.projects.rows(part),
        "links": [*paging_links(request, page, len(part), matched, "application/json"),
                  *alternates(request, "json", ("csv", "xlsx"))],
    }
    return Response(dumps(body).encode(), media_type="application/json", headers=headers)
