"""Report exports over HTTP: ``GET /exports/{format}`` and ``GET /exports/bundle`` call the same
:mod:`geo.report` functions as ``buque export``; the file is built in a temporary folder, sent,
and removed."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from api.deps import Run, attachment, reject_unknown_params, viewer
from api.encoders import XLSX
from api.limits import export_slot
from api.openapi import BINARY, problems
from api.problems import Problem
from api.store import ServedRun
from geo.lists import n_separators, split_values
from geo.query import MAX_ITEMS, RunData
from geo.report import (
    MEDIA_TYPES,
    ExportError,
    ExportOptions,
    FontError,
    Selection,
    export,
    export_bundle,
)
from geo.report.filters import ReportData, load_report, select_codes
from geo.report.filters import _profile as report_profile
from geo.report.fonts import CJK_PACKAGE
from geo.report.ledger import ledger_bytes

T = TypeVar("T")
router = APIRouter(tags=["Exports"], dependencies=[Depends(viewer), Depends(reject_unknown_params),
                                                  Depends(export_slot)])
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
            _loaded[run.run_id] = (load_report(run.data.path) if run.origin == "files"
                                   else report_of(run.data))
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


def report_of(data: RunData) -> ReportData:
    """Report data from a run already loaded (from PostGIS), as :func:`load_report` reads it."""
    v = data.tables.villages
    profile = report_profile(data.manifest)
    inds = tuple(k for k in profile.indicators if k in v.columns)
    return ReportData(run=data.path, manifest=data.manifest, profile=profile, villages=v,
                      gaps=data.tables.gaps, projects=data.tables.projects,
                      summary=data.tables.summary, layers=data.tables.layers, indicators=inds,
                      all_villages=v)


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


def _send(files: list[Path], tmp: Path, name: str, media: str) -> FileResponse:
    """One file as is; several (a shapefile's sidecars, per-county zips) zipped together."""
    cleanup = BackgroundTask(shutil.rmtree, tmp, ignore_errors=True)
    if len(files) == 1 and not any(p != files[0] for p in tmp.rglob("*") if p.is_file()):
        return FileResponse(files[0], media_type=media, filename=name, background=cleanup)
    zpath = tmp / "export.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(tmp.rglob("*")):
            if p.is_file() and p != zpath:
                z.write(p, p.relative_to(tmp / "out"))
    return FileResponse(zpath, media_type="application/zip",
                        filename=Path(name).with_suffix(".zip").name, background=cleanup)




@router.get("/exports/bundle", response_class=FileResponse,
            responses={200: {"description": "a zip", "content": {"application/zip": {
                "schema": BINARY}}}, **problems(400, 404, 429, 503)})
def bundle(run: Run, county: Text = None, township: Text = None, indicator: Text = None,
           paper: Literal["A4", "A3"] = "A4",
           orientation: Literal["landscape", "portrait"] = "landscape",
           lang: Literal["zh", "en"] = "zh",
           dpi: Annotated[int, Query(ge=72, le=300)] = 150) -> FileResponse:
    """A zip per county of the selection (map PDF/PNG, ledger, GeoPackage), zipped together when
    there are several."""
    opts = _options("pdf", county, township, indicator, paper, orientation, lang, dpi, None)
    res, tmp = _in_workdir(lambda tmp: export_bundle(_report(run), tmp / "out", opts))
    return _send(res.files, tmp, f"buque-{run.run_id}.zip", "application/zip")


@router.get("/exports/{fmt}", response_class=FileResponse,
            responses={200: {"description": "the exported file", "content": {
                m: {"schema": {"type": "object"} if "json" in m else BINARY}
                for m in sorted({*MEDIA_TYPES.values(), "application/zip"})}},
                       **problems(400, 404, 429, 503)})
def export_file(request: Request, fmt: Fmt, run: Run, county: Text = None, township: Text = None,
                indicator: Text = None, paper: Literal["A4", "A3"] = "A4",
                orientation: Literal["landscape", "portrait"] = "landscape",
                lang: Literal["zh", "en"] = "zh",
                dpi: Annotated[int, Query(ge=72, le=300)] = 150,
                encoding: Literal["UTF-8", "GBK"] | None = None) -> FileResponse:
    """The run (or a county / township / indicator selection) as a print map (png, pdf), an
    offline HTML map (over the server's raster basemap, when it has one), the XLSX ledger,
    GIS files (gpkg, geojson, csv, shp zipped) or PMTiles."""
    opts = _options(fmt, county, township, indicator, paper, orientation, lang, dpi, encoding)
    bm = getattr(request.app.state, "basemap", None)
    if fmt == "html" and bm is not None and bm.kind == "raster":  # the server's own basemap
        opts = dataclasses.replace(opts, basemap=bm.path)
    name = f"buque-{run.run_id}.{fmt}"
    res, tmp = _in_workdir(lambda tmp: export(_report(run), tmp / "out" / name, opts))
    return _send(res.files, tmp, name, MEDIA_TYPES.get(fmt, "application/octet-stream"))


def _in_workdir(make: Callable[[Path], T]) -> tuple[T, Path]:
    """``make(tmp)`` in a new temporary folder (removed by :func:`_send` once the file is sent,
    or here when the export fails), its export errors answered as problem documents: a
    selection naming places or indicators the run does not have is a 404 (nothing to export);
    a server without a Chinese font a 503 naming the package that fixes it."""
    tmp = Path(tempfile.mkdtemp(prefix="buque-export-"))
    try:
        return make(tmp), tmp
    except ExportError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Problem(404, str(e), kind="empty-selection") from None
    except FontError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Problem(503, str(e), kind="no-cjk-font", package=CJK_PACKAGE) from None
