"""``/summary``: per county or township and indicator, rates against the profile's targets."""

from __future__ import annotations

from typing import Annotated, Literal

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
    link,
    negotiate,
    reject_unknown_params,
    viewer,
)
from buque.api.encoders import CSV, XLSX, csv_bytes, dumps, rows, xlsx_bytes
from buque.api.openapi import json_ok, problems
from buque.geo.lists import split_values
from buque.geo.query import choices, summary_rows, summary_total

router = APIRouter(tags=["Summary"], dependencies=[Depends(viewer), Depends(reject_unknown_params)])


@router.get("/summary", summary="Rates per county or township", response_class=Response,
            responses={**json_ok(tables=True), **problems(400, 404)})
def summary(request: Request, run: Run,
            by: Annotated[Literal["county", "township"], Query(
                description="One row per county, or per township, and indicator.")] = "county",
            county: Counties = None, township: Townships = None, indicator: Indicators = None,
            f: TableF = None) -> Response:
    """Per place and indicator: villages assessed, met, missing, unknown, the rate (met /
    assessed), the target, the shortfall (villages still to fix to reach the target) and the
    deadline; `total` is the same over all rows returned."""
    fmt = negotiate(request, f, ("json", "csv", "xlsx"), "json")
    inds = run.data.indicators
    sel = summary_rows(run.data.summary, by, county=split_values(county),
                       township=split_values(township),
                       indicator=choices(indicator, "indicator", inds))
    total = summary_total(sel, order=inds)
    name = f"summary-{by}-{run.run_id}"
    if fmt == "csv":
        return Response(csv_bytes(sel), media_type=CSV,
                        headers=attachment(f"{name}.csv"))
    if fmt == "xlsx":
        return Response(xlsx_bytes({"summary": sel, "total": total}),
                        media_type=XLSX,
                        headers=attachment(f"{name}.xlsx"))
    body = {"run": run.run_id, "by": by, "indicators": inds, "numberReturned": len(sel),
            "rows": rows(sel), "total": rows(total),
            "links": [link(str(request.url), "self", "application/json"),
                      *alternates(request, "json", ("csv", "xlsx"))]}
    return Response(dumps(body).encode(), media_type="application/json")
