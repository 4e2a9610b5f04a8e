"""The API description: OpenAPI 3.0 (what the OGC ``oas30`` class and GIS clients expect).

FastAPI writes OpenAPI 3.1; :func:`build_openapi` generates it, rewrites it as 3.0.3, documents
the problem responses (400 instead of FastAPI's 422), the paging limits of these settings, the
comma-separated list parameters as ``style: form, explode: false`` arrays of their allowed
values (indicator keys of the newest run), and the API-key scheme when keys are configured.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from buque.api.encoders import GEOJSON, XLSX
from buque.api.problems import PROBLEM
from buque.api.settings import Settings
from buque.geo.diff import CHANGES
from buque.geo.query import ACTIONS, LEVELS, MAX_ITEMS, STATUSES

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["title", "status"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                   "status": {"type": "integer"}, "detail": {"type": "string"},
                   "instance": {"type": "string"}},
}
LINK_SCHEMA: dict[str, Any] = {"type": "object", "required": ["href", "rel"],
                               "properties": {"href": {"type": "string"}, "rel": {"type": "string"},
                                              "type": {"type": "string"},
                                              "title": {"type": "string"}}}
FEATURE_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["type", "geometry", "properties"],
    "properties": {"type": {"type": "string", "enum": ["Feature"]},
                   "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                   "geometry": {"type": "object", "nullable": True},
                   "properties": {"type": "object", "nullable": True}},
}
COLLECTION_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["type", "features"],
    "properties": {"type": {"type": "string", "enum": ["FeatureCollection"]},
                   "features": {"type": "array", "items": FEATURE_SCHEMA},
                   "numberMatched": {"type": "integer", "minimum": 0},
                   "numberReturned": {"type": "integer", "minimum": 0},
                   "timeStamp": {"type": "string", "format": "date-time"},
                   "links": {"type": "array", "items": LINK_SCHEMA}},
}
OBJECT = {"type": "object"}
TEXT = {"type": "string"}
BINARY = {"type": "string", "format": "binary"}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "Invalid parameter", 401: "API key missing or unknown",
            403: "Role not allowed", 404: "No such resource", 410: "Input changed since the run",
            429: "Too many at once (the detail names the limit; see Retry-After)",
            503: "A system package the server needs is not installed (the detail names it)"}
    return {c: {"description": text.get(c, "Error"),
                "content": {PROBLEM: {"schema": PROBLEM_SCHEMA}}} for c in codes}


def json_ok(schema: dict[str, Any] | None = None, description: str = "OK",
            *, tables: bool = False) -> dict[int | str, dict[str, Any]]:
    content: dict[str, Any] = {"application/json": {"schema": schema or OBJECT}}
    if tables:
        content["text/csv"] = {"schema": TEXT}
        content[XLSX] = {"schema": BINARY}
    return {200: {"description": description, "content": content}}


def features_ok(single: bool = False) -> dict[int | str, dict[str, Any]]:
    if single:
        return {200: {"description": "A GeoJSON feature",
                      "content": {GEOJSON: {"schema": FEATURE_SCHEMA}}}}
    return {200: {"description": "GeoJSON FeatureCollection, CSV or XLSX",
                  "content": {GEOJSON: {"schema": COLLECTION_SCHEMA}, "text/csv": {"schema": TEXT},
                              XLSX: {"schema": BINARY}}}}


# ------------------------------------------------------------------------ 3.1 -> 3.0 rewrite

def _downgrade(node: Any) -> Any:
    if isinstance(node, list):
        return [_downgrade(x) for x in node]
    if not isinstance(node, dict):
        return node
    d = {k: _downgrade(v) for k, v in node.items()}
    for key in ("anyOf", "oneOf"):
        alts = d.get(key)
        if isinstance(alts, list) and any(a == {"type": "null"} for a in alts):
            rest = [a for a in alts if a != {"type": "null"}]
            d.pop(key)
            if len(rest) == 1:
                merged = {**rest[0], **{k: v for k, v in d.items()}}
                d = merged
            elif rest:
                d[key] = rest
            d["nullable"] = True
    t = d.get("type")
    if isinstance(t, list):
        kinds = [x for x in t if x != "null"]
        if len(kinds) < len(t):
            d["nullable"] = True
        if len(kinds) == 1:
            d["type"] = kinds[0]
        else:
            d.pop("type")
            d["anyOf"] = [{"type": x} for x in kinds]
    if "const" in d:
        d["enum"] = [d.pop("const")]
    if isinstance(d.get("examples"), list) and "schema" not in d and "in" not in d:
        ex = d.pop("examples")
        if ex:
            d["example"] = ex[0]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(d.get(bound), int | float) and not isinstance(d.get(bound), bool):
            d[flag] = d.pop(bound)
            d[bound] = True
    if d.get("contentMediaType") == "application/octet-stream" or "contentEncoding" in d:
        d.pop("contentMediaType", None)
        d.pop("contentEncoding", None)
        d["format"] = "binary"
    d.pop("$schema", None)
    return d


def _list_param(values: list[Any], item_type: str = "string") -> dict[str, Any]:
    return {"type": "array", "items": {"type": item_type, "enum": values},
            "minItems": 1, "maxItems": MAX_ITEMS}


def build_openapi(app: FastAPI, settings: Settings, indicators: list[str],
                  set_pattern: str | None = None) -> dict[str, Any]:
    """``set_pattern``: the ``/whatif`` ``set`` values the served run's profile accepts
    (:func:`geo.plan.params.set_pattern`), so that every schema-valid request is answerable."""
    spec = get_openapi(title=app.title, version=app.version, description=app.description,
                       routes=app.routes, tags=getattr(app, "openapi_tags", None))
    spec = _downgrade(spec)
    spec["openapi"] = "3.0.3"
    spec.pop("jsonSchemaDialect", None)
    spec.pop("webhooks", None)
    schemas = spec.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    keys = indicators or ["road", "water", "power", "clinic", "broadband"]
    lists: dict[str, dict[str, Any]] = {
        "missing": _list_param([*keys, "any"]), "met": _list_param(list(keys)),
        "indicator": _list_param(list(keys)), "status": _list_param(list(STATUSES)),
        "level": _list_param(list(LEVELS)), "action": _list_param(list(ACTIONS)),
        "priority": _list_param([1, 2, 3], "integer"), "change": _list_param(list(CHANGES)),
        "class": _list_param(["claimed_met_evidence_missing", "claimed_met_evidence_unknown",
                              "claimed_missing_evidence_met"]),
        "exit_year": {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS,
                      "items": {"type": "integer", "minimum": 1900, "maximum": 2200}},
        "bbox": {"type": "array", "minItems": 4, "maxItems": 4,
                 "items": {"type": "number", "minimum": -180, "maximum": 180}},
    }
    for path, ops in spec.get("paths", {}).items():
        for op in ops.values():
            if not isinstance(op, dict):
                continue
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            params = op.get("parameters", [])
            codes = [400]
            if any(p.get("name") == "run" for p in params) or "{" in path:
                codes.append(404)
            if settings.api_keys and path not in ("/", "/conformance"):
                codes += [401, 403]
            for c, r in problems(*codes).items():
                responses.setdefault(str(c), r)
            for p in params:
                name, sch = p.get("name"), p.get("schema", {})
                if p.get("in") != "query":
                    continue
                if name == "limit":
                    # larger limits are capped, not rejected (OGC permits either), so the
                    # maximum is stated in words rather than as a schema bound
                    p["schema"] = {"type": "integer", "minimum": 1,
                                   "default": settings.default_limit}
                    p["description"] = (f"Items per page (default {settings.default_limit}); "
                                        f"values above {settings.max_limit} are capped to it. "
                                        "CSV/XLSX without it: every match, up to "
                                        f"{settings.max_export_rows:,} rows (max_export_rows; "
                                        "more is a 400 too-many-rows).")
                elif name == "set" and path == "/whatif" and set_pattern:
                    p["schema"] = {**sch, "items": {**sch.get("items", {}),
                                                    "pattern": set_pattern}}
                elif name in lists and sch.get("type", "string") != "boolean":
                    desc = p.get("description", "") or sch.get("description", "")
                    p["schema"] = {**lists[name]}
                    p["style"], p["explode"] = "form", False
                    if desc:
                        p["description"] = desc
    from buque.api.limits import limits_markdown

    info = spec.setdefault("info", {})
    info["description"] = info.get("description", "") + limits_markdown(settings)
    for path, ops in spec.get("paths", {}).items():
        if path.startswith("/exports/"):
            for op in ops.values():
                if isinstance(op, dict):
                    op["description"] = (op.get("description", "") + "\n\nAt most "
                                         f"{settings.export_workers} exports are built at once "
                                         f"and {settings.export_queue} wait (`export_workers`, "
                                         "`export_queue`); one more is answered 429 "
                                         "`too-many-jobs` with `Retry-After`.")
    if settings.api_keys:
        spec.setdefault("components", {}).setdefault("securitySchemes", {})["ApiKey"] = {
            "type": "apiKey", "in": "header", "name": "X-API-Key"}
        for path, ops in spec.get("paths", {}).items():
            if path in ("/", "/conformance"):
                continue
            for op in ops.values():
                if isinstance(op, dict):
                    op["security"] = [{"ApiKey": []}]
    return spec
