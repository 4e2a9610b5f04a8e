"""OGC API - Features discovery: landing page, conformance, collections, queryables, schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from buque.api.deps import (
    Run,
    get_settings,
    link,
    reject_unknown_params,
    url_for,
    viewer,
)
from buque.api.encoders import CSV, GEOJSON, XLSX, json_type
from buque.api.openapi import json_ok
from buque.api.problems import Problem
from buque.api.store import ServedRun

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
OPENAPI_MEDIA = "application/vnd.oai.openapi+json;version=3.0"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
JsonF = Annotated[Literal["json"] | None, Query(description="Output format (JSON only).")]
#: villages properties a client may filter by with ``name=value`` (equality), per OGC Part 3
QUERYABLES = {
    "code": ("string", "Village code"), "county": ("string", "County (县)"),
    "township": ("string", "Township (乡镇)"), "level": ("string", "admin or natural"),
    "poor": ("boolean", "Registered poor village"), "exit_year": ("integer", "Planned exit year"),
}
LAYER_TITLES = {"roads": "Roads", "power": "Power lines and transformers",
                "water": "Water sources and service areas", "clinics": "Clinics",
                "broadband": "Broadband towers and coverage"}

public = APIRouter(tags=["OGC API - Features"], dependencies=[Depends(reject_unknown_params)])
router = APIRouter(tags=["OGC API - Features"],
                   dependencies=[Depends(viewer), Depends(reject_unknown_params)])


@public.get("/", summary="Landing page", responses=json_ok())
def landing(request: Request, f: JsonF = None) -> JSONResponse:
    s = get_settings(request)
    links = [
        link(url_for(request, "/"), "self", "application/json", "this document"),
        link(url_for(request, "/openapi.json"), "service-desc", OPENAPI_MEDIA,
             "the API definition (OpenAPI 3.0)"),
        link(url_for(request, "/docs"), "service-doc", "text/html", "the API documentation"),
        link(url_for(request, "/conformance"), "conformance", "application/json",
             "conformance classes implemented"),
        link(url_for(request, "/conformance"), REL + "conformance", "application/json"),
        link(url_for(request, "/collections"), "data", "application/json", "collections"),
        link(url_for(request, "/collections"), REL + "data", "application/json"),
        link(url_for(request, "/summary"), "summary", "application/json",
             "rates per county and township"),
        link(url_for(request, "/projects"), "projects", "application/json",
             "remedy list (项目清单)"),
        link(url_for(request, "/runs"), "runs", "application/json", "runs served"),
    ]
    return JSONResponse({"title": s.title,
                         "description": "Buque (补缺): rural-village infrastructure gaps against "
                         "the national standard — deficient-village lists, summaries, remedy "
                         "lists and run comparisons (OGC API - Features).",
                         "links": links})


@public.get("/conformance", summary="Conformance classes", responses=json_ok())
def conformance(f: JsonF = None) -> JSONResponse:
    return JSONResponse({"conformsTo": CONFORMANCE})


def _run_q(request: Request, run: ServedRun) -> str | None:
    """Carry an explicit ``run=`` into the links of the documents it names."""
    return run.run_id if request.query_params.get("run") else None


def villages_collection(request: Request, run: ServedRun) -> dict[str, Any]:
    idx = run.data.index
    rq = _run_q(request, run)
    base = "/collections/villages"
    created = run.data.manifest.get("created")
    doc: dict[str, Any] = {
        "id": "villages",
        "title": "Villages (administrative and natural) and their gaps",
        "description": "One feature per village: level (admin | natural), place, population, "
        "poverty status, and per indicator (" + ", ".join(idx.indicators) + ") its status "
        "(met | missing | unknown) and distance in metres to the nearest qualifying feature; "
        "'missing' lists the indicators missing. Filters: missing, met, county, township, "
        "level, poor, exit_year, indicator + status, q.",
        "itemType": "feature", "crs": [CRS84], "storageCrs": CRS84,
        "links": [
            link(url_for(request, base, run=rq), "self", "application/json"),
            link(url_for(request, base + "/items", run=rq), "items", GEOJSON, "villages (GeoJSON)"),
            link(url_for(request, base + "/items", run=rq, f="csv"), "items", CSV.split(";")[0],
                 "villages (CSV)"),
            link(url_for(request, base + "/items", run=rq, f="xlsx"), "items", XLSX,
                 "villages (XLSX)"),
            link(url_for(request, base + "/queryables", run=rq), REL + "queryables",
                 "application/schema+json", "queryable properties"),
            link(url_for(request, base + "/schema", run=rq), REL + "schema",
                 "application/schema+json", "feature properties"),
            link(url_for(request, base + "/feature-schema", run=rq), "describedby",
                 "application/schema+json", "JSON Schema of a GeoJSON feature"),
        ],
        "numberOfFeatures": idx.n,
        "run": run.run_id,
    }
    extent: dict[str, Any] = {}
    if idx.bounds is not None:
        extent["spatial"] = {"bbox": [list(idx.bounds)], "crs": CRS84}
    if created:
        extent["temporal"] = {"interval": [[created, created]],
                              "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    if extent:
        doc["extent"] = extent
    return doc


def layer_collection(request: Request, run: ServedRun, kind: str) -> dict[str, Any]:
    rq = _run_q(request, run)
    base = f"/collections/{kind}"
    return {
        "id": kind, "title": LAYER_TITLES.get(kind, kind) + " (run input)",
        "description": f"The '{kind}' layer as the run read it (canonical fields), re-read from "
        "its source on first use; unavailable if the source changed since the run.",
        "itemType": "feature", "crs": [CRS84], "storageCrs": CRS84,
        "links": [link(url_for(request, base, run=rq), "self", "application/json"),
                  link(url_for(request, base + "/items", run=rq), "items", GEOJSON, kind),
                  link(url_for(request, base + "/items", run=rq, f="csv"), "items",
                       CSV.split(";")[0], f"{kind} (CSV)")],
        "run": run.run_id,
    }


def input_kinds(request: Request, run: ServedRun) -> list[str]:
    return run.data.input_layers() if get_settings(request).input_layers else []


def check_collection(request: Request, run: ServedRun, collection_id: str) -> None:
    if collection_id != "villages" and collection_id not in input_kinds(request, run):
        known = ", ".join(["villages", *input_kinds(request, run)])
        raise Problem(404, f"no collection {collection_id!r}; collections: {known}",
                      kind="unknown-collection")


@router.get("/collections", summary="Collections", responses=json_ok())
def collections(request: Request, run: Run, f: JsonF = None) -> JSONResponse:
    rq = _run_q(request, run)
    cols = [villages_collection(request, run)]
    cols += [layer_collection(request, run, k) for k in input_kinds(request, run)]
    return JSONResponse({"links": [link(url_for(request, "/collections", run=rq), "self",
                                        "application/json")],
                         "collections": cols})


@router.get("/collections/{collection_id}", summary="One collection", responses=json_ok())
def collection(request: Request, collection_id: str, run: Run, f: JsonF = None) -> JSONResponse:
    check_collection(request, run, collection_id)
    if collection_id == "villages":
        return JSONResponse(villages_collection(request, run))
    return JSONResponse(layer_collection(request, run, collection_id))


def _schema_doc(request: Request, run: ServedRun, collection_id: str, what: str,
                props: dict[str, Any]) -> JSONResponse:
    doc: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2019-09/schema",
                           "$id": url_for(request, f"/collections/{collection_id}/{what}"),
                           "type": "object", "title": collection_id, "properties": props}
    if what == "queryables":
        doc["additionalProperties"] = False
    return JSONResponse(doc, media_type="application/schema+json")


@router.get("/collections/{collection_id}/queryables", summary="Queryable properties",
            responses={200: {"description": "JSON Schema",
                             "content": {"application/schema+json": {"schema": {"type": "object"}}}}})
def queryables(request: Request, collection_id: str, run: Run, f: JsonF = None) -> JSONResponse:
    check_collection(request, run, collection_id)
    props = ({k: {"type": t, "title": title} for k, (t, title) in QUERYABLES.items()}
             if collection_id == "villages" else {})
    return _schema_doc(request, run, collection_id, "queryables", props)


def _properties(request: Request, run: ServedRun, collection_id: str) -> dict[str, Any]:
    table = run.villages if collection_id == "villages" else run.input_table(collection_id)
    return {name: {"type": json_type(t)} for name, t in table.schema.items()}


@router.get("/collections/{collection_id}/feature-schema",
            summary="JSON Schema of one GeoJSON feature (rel describedby)",
            responses={200: {"description": "JSON Schema",
                             "content": {"application/schema+json": {"schema": {"type": "object"}}}}})
def feature_schema(request: Request, collection_id: str, run: Run, f: JsonF = None) -> JSONResponse:
    """GDAL's OAPIF driver reads field types from this instead of guessing from a sample."""
    check_collection(request, run, collection_id)
    props = _properties(request, run, collection_id)
    return _schema_doc(request, run, collection_id, "feature-schema", {
        "type": {"type": "string", "enum": ["Feature"]},
        "id": {"type": "string"},
        "geometry": {"type": "object"},
        "properties": {"type": "object", "properties": props}})


@router.get("/collections/{collection_id}/schema", summary="Feature schema",
            responses={200: {"description": "JSON Schema",
                             "content": {"application/schema+json": {"schema": {"type": "object"}}}}})
def schema(request: Request, collection_id: str, run: Run, f: JsonF = None) -> JSONResponse:
    """The feature properties and their types (OGC API - Features Part 5 style)."""
    check_collection(request, run, collection_id)
    props: dict[str, Any] = {"geometry": {"format": "geometry-any", "x-ogc-role": "primary-geometry"}}
    props.update(_properties(request, run, collection_id))
    return _schema_doc(request, run, collection_id, "schema", props)
