"""``/exit``: the exit checks of a run (贫困村退出, 贫困县摘帽; ``exit.csv``, docs/exit.md)."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from buque.api.deps import (
    Counties,
    Run,
    TableF,
    alternates,
    attachment,
    link,
    negotiate,
    reject_unknown_params,
    viewer,
)
from buque.api.encoders import CSV, XLSX, csv_bytes, dumps, rows, xlsx_bytes
from buque.api.openapi import json_ok, problems
from buque.geo.exit import EXIT_FIRST
from buque.geo.lists import split_values

NOT_CHECKED = ("this run has no exit checks: its project sets no year, or it was written "
               "before exit checks existed")

router = APIRouter(tags=["Exit"], dependencies=[Depends(viewer), Depends(reject_unknown_params)])


@router.get("/exit", summary="Exit checks: villages due to exit this year, and counties",
            response_class=Response, responses={**json_ok(tables=True), **problems(400, 404)})
def exit_checks(request: Request, run: Run, county: Counties = None,
                scope: Annotated[Literal["village", "county"] | None, Query(
                    description="village rows, county rows, or both when absent.")] = None,
                ready: Annotated[bool | None, Query(
                    description="only ready (true) or blocked (false) rows.")] = None,
                f: TableF = None) -> Response:
    """One row per poor administrative village whose exit year is the run's assessment year
    (`year` in the project) and one per county: `ready`, each criterion's value and the
    `blockers` in words (an unknown never passes: `待核实`). Runs without exit checks (no
    `year`, or written before them) answer no rows, with `checked: false` and a `note`."""
    fmt = negotiate(request, f, ("json", "csv", "xlsx"), "json")
    table = run.data.tables.exit
    checked = table is not None
    if table is None:  # no rows, and the JSON says why (CSV/XLSX: the columns only)
        table = pd.DataFrame({c: pd.Series(dtype="string") for c in [*EXIT_FIRST, "blockers"]})
        table["ready"] = table["ready"].astype(bool)
    keep = np.ones(len(table), dtype=bool)
    counties = split_values(county)
    if counties:
        keep &= table["county"].isin(counties).to_numpy(bool)
    if scope is not None:
        keep &= (table["scope"] == scope).to_numpy(bool)
    if ready is not None:
        keep &= (table["ready"] == ready).to_numpy(bool)
    sel = table[keep].reset_index(drop=True)
    name = f"exit-{run.run_id}"
    if fmt == "csv":
        return Response(csv_bytes(sel), media_type=CSV, headers=attachment(f"{name}.csv"))
    if fmt == "xlsx":
        return Response(xlsx_bytes({"exit": sel}), media_type=XLSX,
                        headers=attachment(f"{name}.xlsx"))
    year = run.data.manifest.get("project", {}).get("year")
    body = {"run": run.run_id, "year": year, "checked": checked,
            **({} if checked else {"note": NOT_CHECKED}), "numberReturned": len(sel),
            "ready": int(sel["ready"].sum()), "rows": rows(sel),
            "links": [link(str(request.url), "self", "application/json"),
                      *alternates(request, "json", ("csv", "xlsx"))]}
    return Response(dumps(body).encode(), media_type="application/json")
