"""Report exports over HTTP, as export jobs (:mod:`api.jobs`) making the same :mod:`geo.report`
exports as ``buque export``.

``POST /exports`` queues a job and answers 202 with its document (200 when the same export is
already done: the cached file); ``GET /exports/jobs/{id}`` tells its state, queue position and
progress; ``.../download`` sends the file. The older ``GET /exports/{format}`` and
``GET /exports/bundle`` run the same job and wait for it up to ``export_wait_s`` seconds: the
file when it is ready by then (small exports, or cached ones), else 202 with the job.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from buque.api.deps import (
    Run,
    attachment,
    get_settings,
    get_store,
    reject_unknown_params,
    unknown_run,
    url_for,
    viewer,
)
from buque.api.encoders import XLSX
from buque.api.jobs import JobManager, Limits, QueueFull, Task, job_key, work_area
from buque.api.openapi import BINARY, LINK_SCHEMA, problems
from buque.api.problems import Problem
from buque.api.store import ServedRun, UnknownRun
from buque.geo.lists import n_separators, split_values
from buque.geo.query import MAX_ITEMS
from buque.geo.report import MEDIA_TYPES, ExportError, ExportOptions, Selection
from buque.geo.report import fonts as report_fonts
from buque.geo.report.filters import ReportData, check_selection, report_data, select_codes
from buque.geo.report.ledger import ledger_bytes

router = APIRouter(tags=["Exports"], dependencies=[Depends(viewer), Depends(reject_unknown_params)])
_lock = threading.Lock()
_loaded: dict[str, ReportData] = {}
Fmt = Literal["png", "pdf", "html", "xlsx", "gpkg", "geojson", "csv", "shp", "pmtiles"]
#: comma-separated names: at least one that is not blank (the schema says so, not only the code)
Text = Annotated[str | None, Query(max_length=2000, pattern=r"[^,，、\s]",
                                   description="One or more names separated by commas (`,`, "
                                   "`，` or `、`).")]


def _report(run: ServedRun) -> ReportData:
    with _lock:
        if run.run_id not in _loaded:
            _loaded.clear()  # keep one run's report data (they are large)
            # the run the server holds (files or PostGIS), not read a second time
            _loaded[run.run_id] = report_data(run.data.path, run.data.manifest, run.data.tables)
        return _loaded[run.run_id]


#: the ledger's language, for the API's XLSX answers
Lang = Annotated[Literal["zh", "en"], Query(
    description="Language of an XLSX ledger (f=xlsx): zh (Chinese, default) or en.")]


def ledger_response(run: ServedRun, codes: Iterable[str], county: str | None,
                    township: str | None, indicators: Iterable[str], lang: str, filename: str,
                    headers: dict[str, str]) -> Response:
    """The ledger (台账, as ``buque export --format xlsx`` writes it) of the villages ``codes``,
    titled with the request's county / township and limited to the run's indicators named in
    ``indicators`` (all if none), in the run's order."""
    named = set(indicators)
    sel = Selection(split_values(county), split_values(township),
                    tuple(k for k in run.data.indicators if k in named))
    data = select_codes(_report(run), codes, sel)
    return Response(ledger_bytes(data, lang=lang), media_type=XLSX,
                    headers={**headers, **attachment(filename)})


def _options(fmt: str, county: str | None, township: str | None, indicator: str | None,
             paper: str, orientation: str, lang: str, dpi: int, encoding: str | None
             ) -> ExportOptions:
    for name, value in (("county", county), ("township", township), ("indicator", indicator)):
        if value is not None and not split_values(value):
            raise Problem(400, f"{name}: give one or more comma-separated names",
                          kind="invalid-parameter")
        if value is not None and n_separators(value) >= MAX_ITEMS:  # as the schema says
            raise Problem(400, f"{name}: at most {MAX_ITEMS} values", kind="invalid-parameter")
    try:
        return ExportOptions(fmt=fmt, selection=Selection.parse(county, township, indicator),
                             paper=paper, orientation=orientation, lang=lang, dpi=dpi,
                             encoding=encoding)
    except ExportError as e:
        raise Problem(400, str(e), kind="invalid-parameter") from None



# ------------------------------------------------------------------------------------- jobs

MAPS = ("png", "pdf", "bundle")
JobFormat = Literal["png", "pdf", "html", "xlsx", "gpkg", "geojson", "csv", "shp", "pmtiles",
                    "bundle"]
NAMES = r"[^,，、\s]"
STATE_HEADERS = {"Location": {"description": "The job's URL (`/exports/jobs/{job_id}`).",
                              "schema": {"type": "string"}}}
JOB_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["id", "state", "format", "run_id", "progress", "links"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
        "format": {"type": "string"}, "run_id": {"type": "string"},
        "params": {"type": "object"},
        "created": {"type": "string"}, "started": {"type": "string", "nullable": True},
        "finished": {"type": "string", "nullable": True},
        "position": {"type": "integer", "minimum": 1, "nullable": True,
                     "description": "Place in the queue while queued (1: starts next)."},
        "progress": {"type": "object", "required": ["fraction", "step"], "properties": {
            "fraction": {"type": "number", "minimum": 0, "maximum": 1},
            "step": {"type": "string"}}},
        "error": {"type": "object", "nullable": True, "properties": {
            "status": {"type": "integer"}, "kind": {"type": "string"},
            "detail": {"type": "string"}}},
        "result": {"type": "object", "nullable": True, "properties": {
            "filename": {"type": "string"}, "size": {"type": "integer"},
            "media_type": {"type": "string"}}},
        "links": {"type": "array", "items": LINK_SCHEMA},
    },
}
JOB_CONTENT = {"application/json": {"schema": JOB_SCHEMA}}
FILES = {m: {"schema": {"type": "object"} if "json" in m else BINARY}
         for m in sorted({*MEDIA_TYPES.values(), "application/zip"})}
ASYNC_NOTE = (" Runs as an export job (see `POST /exports`): the file is answered when it is "
              "ready within the server's `export_wait_s` (20 s by default: small or cached "
              "exports), else 202 with the job to follow.")


class ExportRequest(BaseModel):
    """An export to make: a format and the selection and options of `GET /exports/{fmt}`."""

    model_config = ConfigDict(extra="forbid")
    format: JobFormat = Field(description="An export format, or `bundle` (a zip per county of "
                              "map PDF/PNG, ledger and GeoPackage).")
    run: str | None = Field(None, max_length=100, description="Run id or folder name; the "
                            "newest run when absent.")
    county: str | None = Field(None, max_length=2000, pattern=NAMES,
                               description="County name(s), comma-separated.")
    township: str | None = Field(None, max_length=2000, pattern=NAMES,
                                 description="Township name(s), comma-separated.")
    indicator: str | None = Field(None, max_length=2000, pattern=NAMES,
                                  description="Indicator key(s), comma-separated.")
    paper: Literal["A4", "A3"] = "A4"
    orientation: Literal["landscape", "portrait"] = "landscape"
    lang: Literal["zh", "en"] = "zh"
    dpi: int = Field(150, ge=72, le=300)
    encoding: Literal["UTF-8", "GBK"] | None = None


def _form_schema() -> dict[str, Any]:
    """The request's JSON schema, with a form's fields (text only, absent rather than null)."""
    schema = ExportRequest.model_json_schema()
    for prop in schema["properties"].values():
        alts = prop.pop("anyOf", None)
        if alts:
            prop.update(next(a for a in alts if a.get("type") != "null"))
        if "default" in prop and prop["default"] is None:
            del prop["default"]
    schema.pop("title", None)
    return schema


def jobs_of(app: FastAPI) -> JobManager:
    """The app's export jobs, started on first use."""
    with _lock:
        jobs = getattr(app.state, "jobs", None)
        if jobs is None:
            s = app.state.settings
            root = work_area(s.data, s.work) / "exports"
            jobs = JobManager(root, Limits(
                workers=s.export_workers, queue=s.export_queue,
                max_age_s=s.export_max_age_h * 3600, cache_bytes=s.export_cache_mb * 1024**2,
                processes=s.export_executor == "process" and not s.postgres,
                nice=s.export_nice))
            app.state.jobs = jobs
        return jobs


def close_jobs(app: FastAPI) -> None:
    jobs = getattr(app.state, "jobs", None)
    if jobs is not None:
        jobs.close()
        app.state.jobs = None


def _normalised(fmt: str, opts: ExportOptions) -> dict[str, Any]:
    """The parameters that shape this format's file (others are left out of its cache key)."""
    sel = opts.selection
    out: dict[str, Any] = {"county": list(sel.counties), "township": list(sel.townships),
                           "indicator": list(sel.indicators)}
    if fmt in MAPS:
        out.update(paper=opts.paper, orientation=opts.orientation, lang=opts.lang, dpi=opts.dpi)
    elif fmt == "xlsx":
        out.update(paper=opts.paper, lang=opts.lang)
    elif fmt == "html":
        out.update(lang=opts.lang)
    elif fmt in ("gpkg", "geojson", "csv", "shp"):
        out.update(encoding=opts.encoding)
    return out


def _submit(request: Request, run: ServedRun, req: ExportRequest) -> dict[str, Any]:
    """Check the export (400 bad parameters, 404 a selection of nothing, 503 no Chinese font
    for a Chinese map) and queue it, or find it queued, running or done."""
    fmt = req.format
    opts = _options("pdf" if fmt == "bundle" else fmt, req.county, req.township, req.indicator,
                    req.paper, req.orientation, req.lang, req.dpi, req.encoding)
    try:
        check_selection(run.data.tables.villages, run.data.indicators, opts.selection)
    except ExportError as e:
        raise Problem(404, str(e), kind="empty-selection") from None
    if fmt in MAPS and req.lang == "zh" and report_fonts.find_cjk_font() is None:
        raise Problem(503, report_fonts.NO_CJK_FONT, kind="no-cjk-font",
                      package=report_fonts.CJK_PACKAGE)
    params = _normalised(fmt, opts)
    bm = getattr(request.app.state, "basemap", None)
    if fmt == "html" and bm is not None and bm.kind == "raster":  # over the server's own basemap
        params["basemap"] = str(bm.path)
    key = job_key(run.run_id, fmt, params)
    options = {k: v for k, v in params.items()}
    for k in ("paper", "orientation", "lang", "dpi", "encoding"):
        options.setdefault(k, getattr(opts, k))
    source: Any = (str(run.data.path) if run.origin == "files" else (lambda: _report(run)))
    name = f"buque-{run.run_id}.{'zip' if fmt == 'bundle' else fmt}"
    jobs = jobs_of(request.app)
    try:
        return jobs.submit(key, lambda d: Task(job_dir=str(d), run_id=run.run_id, fmt=fmt,
                                               options=options, filename=name, source=source),
                           {"format": fmt, "run_id": run.run_id, "params": params})
    except QueueFull as e:
        raise Problem(429, str(e), kind="too-many-jobs",
                      headers={"Retry-After": str(e.retry_after)}) from None


def job_document(request: Request, job: dict[str, Any]) -> dict[str, Any]:
    """A job as the API shows it (its owner and queue order left out; links added)."""
    doc = {k: v for k, v in job.items() if k not in ("owner", "seq")}
    if doc.get("result"):
        doc["result"] = {k: doc["result"][k] for k in ("filename", "size", "media_type")}
    base = f"/exports/jobs/{job['id']}"
    links = [{"href": url_for(request, base), "rel": "self", "type": "application/json",
              "title": "this job"}]
    if job["state"] == "done":
        links.append({"href": url_for(request, base + "/download"), "rel": "enclosure",
                      "type": job["result"]["media_type"], "title": job["result"]["filename"]})
    doc["links"] = links
    return doc


def _job_answer(request: Request, job: dict[str, Any], status: int | None = None) -> JSONResponse:
    headers = {"Location": f"/exports/jobs/{job['id']}"}
    if job["state"] in ("queued", "running"):
        headers["Retry-After"] = "1" if job["state"] == "running" else "2"
    code = status or (202 if job["state"] in ("queued", "running") else 200)
    return JSONResponse(job_document(request, job), status_code=code, headers=headers)


def _file(request: Request, job: dict[str, Any]) -> FileResponse:
    res = job["result"]
    return FileResponse(jobs_of(request.app).result(job), media_type=res["media_type"],
                        filename=res["filename"])


async def _parse_body(request: Request) -> ExportRequest:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    try:
        if ctype == "application/json":
            data = json.loads(body or b"null")
        elif ctype == "application/x-www-form-urlencoded":
            data = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        else:
            raise Problem(415, "send the export as application/json or "
                          "application/x-www-form-urlencoded", kind="unsupported-media-type")
    except (ValueError, UnicodeDecodeError) as e:
        raise Problem(400, f"the request body is not valid: {e}", kind="invalid-body") from None
    if not isinstance(data, dict):
        raise Problem(400, "the request body must be an object with at least `format`",
                      kind="invalid-body")
    try:
        return ExportRequest.model_validate(data)
    except ValidationError as e:
        detail = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'body'}: {err['msg']}"
                           for err in e.errors())
        raise Problem(400, detail, kind="invalid-parameter") from None


def _run_of(request: Request, run_id: str | None) -> ServedRun:
    store = get_store(request)
    try:
        return store.get(run_id)
    except UnknownRun:
        raise unknown_run(store, run_id) from None


@router.post(
    "/exports", status_code=202, response_class=JSONResponse,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": ExportRequest.model_json_schema()},
        "application/x-www-form-urlencoded": {"schema": _form_schema()}}}},
    responses={202: {"description": "The export job, queued or running (follow `Location`).",
                     "headers": STATE_HEADERS, "content": JOB_CONTENT},
               200: {"description": "The same export is already done: the job, with its "
                     "download link.", "headers": STATE_HEADERS, "content": JOB_CONTENT},
               **problems(400, 404, 415, 429, 503)})
async def create_export(request: Request) -> JSONResponse:
    """Queue an export (any format, or `bundle`) of a run or a selection of it. The same
    request later finds the same job: while it runs, its state; once done, the cached file.
    Jobs run a few at a time (the rest queue, first in first out); a server restart fails
    the unfinished ones, with that reason."""
    req = await _parse_body(request)
    run = await anyio.to_thread.run_sync(_run_of, request, req.run)
    job = await anyio.to_thread.run_sync(_submit, request, run, req)
    return _job_answer(request, job)


JobId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$", description="A job id (from "
                                 "`POST /exports`).")]


def _job(request: Request, job_id: str) -> dict[str, Any]:
    job = jobs_of(request.app).get(job_id)
    if job is None:
        raise Problem(404, f"no export job {job_id} (finished jobs are removed after a while; "
                      "POST the export again)", kind="unknown-job")
    return job


@router.get("/exports/jobs/{job_id}", response_class=JSONResponse,
            responses={200: {"description": "The job: state, position, progress, and once "
                             "done its download link.", "content": JOB_CONTENT},
                       **problems(400, 404)})
def export_job(request: Request, job_id: JobId) -> JSONResponse:
    """An export job's state (queued, running, done, failed), place in the queue, progress
    (fraction and step) and, when done, its download link (`rel: enclosure`); a failed job
    says why."""
    return _job_answer(request, _job(request, job_id), status=200)


@router.get("/exports/jobs/{job_id}/download", response_class=FileResponse,
            responses={200: {"description": "The exported file", "content": FILES},
                       **problems(400, 404, 409)})
def export_job_download(request: Request, job_id: JobId) -> FileResponse:
    """The file of a done export job (409 while it is queued or running, or when it failed)."""
    job = _job(request, job_id)
    if job["state"] != "done":
        why = f": {job['error']['detail']}" if job.get("error") else ""
        raise Problem(409, f"the export job is {job['state']}{why}", kind="job-not-done",
                      state=job["state"])
    return _file(request, job)


async def _wait_answer(request: Request, job: dict[str, Any]) -> Response:
    """The file when the job is done within ``export_wait_s``; its problem if it failed;
    else 202 with the job."""
    jobs = jobs_of(request.app)
    deadline = time.monotonic() + get_settings(request).export_wait_s
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        await anyio.to_thread.run_sync(jobs.wait, job["id"], min(0.5, deadline - time.monotonic()))
        job = jobs.get(job["id"]) or job
        if job["state"] in ("queued", "running"):
            await anyio.sleep(0.05)  # another server's job: polled
    if job["state"] == "done":
        return _file(request, job)
    if job["state"] == "failed":
        err = job["error"]
        extra = {"package": err["package"]} if "package" in err else {}
        raise Problem(err["status"], err["detail"], kind=err["kind"], **extra)
    return _job_answer(request, job)


WAIT_RESPONSES = {202: {"description": "Not ready within the wait: the export job (follow "
                        "`Location`).", "headers": STATE_HEADERS, "content": JOB_CONTENT},
                  **problems(400, 404, 429, 503)}


@router.get("/exports/bundle", response_class=FileResponse,
            responses={200: {"description": "a zip", "content": {"application/zip": {
                "schema": BINARY}}}, **WAIT_RESPONSES},
            description="A zip per county of the selection (map PDF/PNG, ledger, GeoPackage), "
                        "zipped together when there are several." + ASYNC_NOTE)
async def bundle(request: Request, run: Run, county: Text = None, township: Text = None,
                 indicator: Text = None, paper: Literal["A4", "A3"] = "A4",
                 orientation: Literal["landscape", "portrait"] = "landscape",
                 lang: Literal["zh", "en"] = "zh",
                 dpi: Annotated[int, Query(ge=72, le=300)] = 150) -> Response:
    req = ExportRequest.model_construct(format="bundle", county=county, township=township,
                                        indicator=indicator, paper=paper,
                                        orientation=orientation, lang=lang, dpi=dpi,
                                        encoding=None)
    job = await anyio.to_thread.run_sync(_submit, request, run, req)
    return await _wait_answer(request, job)


@router.get("/exports/{fmt}", response_class=FileResponse,
            responses={200: {"description": "the exported file", "content": FILES},
                       **WAIT_RESPONSES},
            description="The run (or a county / township / indicator selection) as a print "
                        "map (png, pdf), an offline HTML map (over the server's raster basemap, "
                        "when it has one), the XLSX ledger, GIS files (gpkg, "
                        "geojson, csv, shp zipped) or PMTiles." + ASYNC_NOTE)
async def export_file(request: Request, fmt: Fmt, run: Run, county: Text = None,
                      township: Text = None, indicator: Text = None,
                      paper: Literal["A4", "A3"] = "A4",
                      orientation: Literal["landscape", "portrait"] = "landscape",
                      lang: Literal["zh", "en"] = "zh",
                      dpi: Annotated[int, Query(ge=72, le=300)] = 150,
                      encoding: Literal["UTF-8", "GBK"] | None = None) -> Response:
    req = ExportRequest.model_construct(format=fmt, county=county, township=township,
                                        indicator=indicator, paper=paper,
                                        orientation=orientation, lang=lang, dpi=dpi,
                                        encoding=encoding)
    job = await anyio.to_thread.run_sync(_submit, request, run, req)
    return await _wait_answer(request, job)
