"""Features: ``/collections/villages/items`` with the gap filters, items by code, input layers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

import numpy as np
import shapely
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from buque.api.deps import (
    Codes,
    Counties,
    FeatureF,
    Levels,
    Paging,
    Run,
    Townships,
    alternates,
    attachment,
    get_settings,
    link,
    negotiate,
    paging,
    paging_links,
    reject_unknown_params,
    url_for,
    viewer,
    window,
)
from buque.api.encoders import CSV, GEOJSON, XLSX, FeatureTable, dumps
from buque.api.openapi import features_ok, problems
from buque.api.problems import Problem
from buque.api.routes.exports import Lang, ledger_response
from buque.api.routes.ogc import check_collection
from buque.api.store import ServedRun
from buque.geo.lists import split_values
from buque.geo.query import VillageFilter, parse_bbox

router = APIRouter(tags=["Villages"], dependencies=[Depends(viewer), Depends(reject_unknown_params)])
layers = APIRouter(tags=["Input layers"],
                   dependencies=[Depends(viewer), Depends(reject_unknown_params)])
FORMATS = ("geojson", "json", "csv", "xlsx")
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CrsParam = Annotated[Literal["http://www.opengis.net/def/crs/OGC/1.3/CRS84"] | None, Query(
    description="Coordinate reference system of the response: CRS84 (WGS 84 lon/lat) only.")]
BBoxCrs = Annotated[Literal["http://www.opengis.net/def/crs/OGC/1.3/CRS84",
                            "http://www.opengis.net/def/crs/OGC/1.3/CRS84h"] | None,
                    Query(alias="bbox-crs", description="CRS of `bbox`: CRS84 only.")]
BBox = Annotated[str | None, Query(
    description="minlon,minlat,maxlon,maxlat in CRS84 (WGS 84 longitude, latitude); "
    "villages whose geometry intersects the box.", max_length=1000)]


@dataclass
class VillageParams:
    """The village filters as they arrive in the URL (see :class:`geo.query.VillageFilter`)."""

    bbox: BBox = None
    missing: Annotated[str | None, Query(
        description="Comma-separated indicator keys; villages missing any of them "
        "(`any`: missing at least one indicator).", max_length=2000)] = None
    met: Annotated[str | None, Query(
        description="Comma-separated indicator keys; villages meeting any of them.",
        max_length=2000)] = None
    county: Counties = None
    township: Townships = None
    level: Levels = None
    poor: Annotated[bool | None, Query(description="Registered poor villages (true) or the "
                                       "others (false).")] = None
    exit_year: Annotated[str | None, Query(description="Planned poverty-exit year(s), "
                                           "comma-separated.", max_length=2000)] = None
    indicator: Annotated[str | None, Query(
        description="Indicator key(s); with `status`, villages where any of them has any of "
        "the statuses; alone, villages assessed for any of them.", max_length=2000)] = None
    status: Annotated[str | None, Query(description="met, missing and/or unknown (see "
                                        "`indicator`).", max_length=2000)] = None
    q: Annotated[str | None, Query(description="Text search: case-insensitive part of the "
                                   "village name or code.", max_length=200)] = None
    code: Codes = None


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def page_window(request: Request, page: Paging, fmt: str) -> Callable[[int], slice]:
    """The rows served of ``n`` matches: :func:`api.deps.window` with this request's settings."""
    max_rows = get_settings(request).max_export_rows
    return lambda n: window(n, page, fmt, max_rows)


def feature_response(request: Request, run: ServedRun, table: FeatureTable, matched: int,
                     sel: np.ndarray, page: Paging, fmt: str, name: str) -> Response:
    """``sel`` (row positions of ``table``) of ``matched`` features, in the asked format."""
    headers = {"OGC-NumberMatched": str(matched), "OGC-NumberReturned": str(len(sel)),
               "X-Buque-Run": run.run_id, "Content-Crs": f"<{CRS84}>"}
    if fmt == "csv":
        return Response(table.csv(sel), media_type=CSV,
                        headers={**headers, **attachment(f"{name}-{run.run_id}.csv")})
    if fmt == "xlsx":
        return Response(table.xlsx(sel, name), media_type=XLSX,
                        headers={**headers, **attachment(f"{name}-{run.run_id}.xlsx")})
    links = paging_links(request, page, len(sel), matched, GEOJSON)
    links += alternates(request, "geojson", ("csv", "xlsx"))
    links.append(link(url_for(request, f"/collections/{name}"), "collection", "application/json"))
    meta: dict[str, Any] = {"numberMatched": matched, "numberReturned": len(sel),
                            "timeStamp": now(), "run": run.run_id, "links": links}
    return Response(table.collection(sel, meta), media_type=GEOJSON, headers=headers)


@router.get("/collections/villages/items", summary="Villages (filterable, paged)",
            response_class=Response, responses={**features_ok(), **problems(400, 404)})
def villages_items(request: Request, run: Run, params: Annotated[VillageParams, Depends()],
                   page: Annotated[Paging, Depends(paging)], f: FeatureF = None,
                   crs: CrsParam = None, bbox_crs: BBoxCrs = None, lang: Lang = "zh"
                   ) -> Response:
    """Villages with their gaps. GeoJSON by default; `f=csv` (or the Accept header) gives the
    data as a table, `f=xlsx` the ledger (台账, as `buque export --format xlsx` writes it:
    rates, one sheet per indicator, to verify; `lang=en` for English) of the matching
    villages, for the indicators of `missing` or `indicator` (all when neither names any).
    CSV and XLSX hold every match unless `limit` is given."""
    fmt = negotiate(request, f, FORMATS, "geojson")
    vf = VillageFilter.parse(indicators=run.data.indicators, **asdict(params))
    matched, sel = run.village_selector.select_window(vf, page_window(request, page, fmt))
    if fmt == "xlsx":
        keys = [k for k in split_values(params.missing) if k != "any"] or list(
            split_values(params.indicator))
        codes = run.data.index.properties["code"].to_numpy(dtype=object)[sel]
        return ledger_response(run, codes, params.county, params.township, keys, lang,
                               f"villages-{run.run_id}.xlsx", {
                                   "OGC-NumberMatched": str(matched),
                                   "OGC-NumberReturned": str(len(sel)), "X-Buque-Run": run.run_id})
    return feature_response(request, run, run.villages, matched, sel, page, fmt, "villages")


@router.get("/collections/villages/items/{code}", summary="One village by code",
            response_class=Response, responses={**features_ok(single=True), **problems(400, 404)})
def village(request: Request, code: str, run: Run,
            f: Annotated[Literal["json", "geojson"] | None, Query()] = None,
            crs: CrsParam = None) -> Response:
    pos = run.data.index.position(code)
    if pos is None:
        raise Problem(404, f"no village with code {code!r} in run {run.run_id}",
                      kind="unknown-feature")
    links = [link(str(request.url), "self", GEOJSON),
             link(url_for(request, "/collections/villages"), "collection", "application/json")]
    body = run.villages.feature(pos)[:-1] + ',"links":' + dumps(links) + "}"
    return Response(body.encode(), media_type=GEOJSON, headers={"Content-Crs": f"<{CRS84}>"})


@layers.get("/collections/{collection_id}/items", summary="Features of a run input layer",
            response_class=Response, responses={**features_ok(), **problems(400, 404, 410)})
def layer_items(request: Request, collection_id: str, run: Run,
                page: Annotated[Paging, Depends(paging)], bbox: BBox = None,
                f: FeatureF = None, crs: CrsParam = None, bbox_crs: BBoxCrs = None) -> Response:
    check_collection(request, run, collection_id)
    fmt = negotiate(request, f, FORMATS, "geojson")
    boxes = parse_bbox(bbox)
    table, tree = run.input_layer(collection_id)
    if boxes:
        hits = np.concatenate([tree.query(shapely.box(*b), predicate="intersects") for b in boxes])
        idx = np.unique(hits)
    else:
        idx = np.arange(len(table))
    sel = idx[page_window(request, page, fmt)(len(idx))]
    return feature_response(request, run, table, len(idx), sel, page, fmt, collection_id)


@layers.get("/collections/{collection_id}/items/{feature_id}", summary="One input feature",
            response_class=Response,
            responses={**features_ok(single=True), **problems(400, 404, 410)})
def layer_item(request: Request, collection_id: str, feature_id: str, run: Run,
               f: Annotated[Literal["json", "geojson"] | None, Query()] = None,
               crs: CrsParam = None) -> Response:
    check_collection(request, run, collection_id)
    table, _ = run.input_layer(collection_id)
    ids = table.properties["id"].astype("object") if "id" in table.properties else None
    hit: np.ndarray = (np.flatnonzero((ids == feature_id).to_numpy(bool)) if ids is not None
                       else np.array([], dtype=np.int64))
    if len(hit) == 0:
        raise Problem(404, f"no feature {feature_id!r} in {collection_id}", kind="unknown-feature")
    links = [link(str(request.url), "self", GEOJSON),
             link(url_for(request, f"/collections/{collection_id}"), "collection",
                  "application/json")]
    body = table.feature(int(hit[0]))[:-1] + ',"links":' + dumps(links) + "}"
    return Response(body.encode(), media_type=GEOJSON, headers={"Content-Crs": f"<{CRS84}>"})
