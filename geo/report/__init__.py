"""Report exports of a run: print maps, an offline web map, the ledger, GIS files, bundles.

One entry point, :func:`export`, serves the CLI (``buque export``) and the API alike::

    from buque.geo.report import ExportOptions, Selection, export
    export("runs/2026-11", "水龙县.pdf", ExportOptions(fmt="pdf",
           selection=Selection.parse(county="水龙县")))

Formats: ``png`` ``pdf`` (print maps), ``html`` (offline folium map), ``xlsx`` (ledger),
``gpkg`` ``geojson`` ``csv`` ``shp`` (GIS). ``per_county`` writes one file per county
(``<stem>-<county><suffix>``), except ``pdf``, which gets one page per county. A ``pdf`` ends
with a progress chart page when the run's folder holds earlier runs of its project.
:func:`export_bundle` zips each county's map, ledger and GeoPackage. Files are written into a
temporary folder beside the output and moved into place when complete.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from buque.geo.report.filters import (
    ExportError,
    ReportData,
    Selection,
    load_report,
    select,
)
from buque.geo.report.fonts import FontError
from buque.geo.report.maps import MapOptions
from buque.geo.report.progress import Progress, part, reporter
from buque.geo.report.text import LANGS

FORMATS = ("png", "pdf", "html", "xlsx", "gpkg", "geojson", "csv", "shp", "pmtiles")
MEDIA_TYPES = {
    "pmtiles": "application/vnd.pmtiles",
    "png": "image/png", "pdf": "application/pdf", "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "gpkg": "application/geopackage+sqlite3", "geojson": "application/geo+json",
    "csv": "text/csv; charset=utf-8", "shp": "application/zip", "zip": "application/zip",
}

__all__ = ["FORMATS", "MEDIA_TYPES", "ExportError", "ExportOptions", "ExportResult", "FontError",
           "Progress", "ReportData", "Selection", "export", "export_bundle", "format_of",
           "load_report", "select"]


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how; map options apply to png/pdf (and bundles)."""

    fmt: str
    selection: Selection = field(default_factory=Selection)
    paper: str = "A4"
    orientation: str = "landscape"
    lang: str = "zh"
    dpi: int = 300
    encoding: str | None = None
    per_county: bool = False
    #: an own raster basemap (PMTiles/MBTiles) embedded under the HTML map
    basemap: Path | None = None
    #: a plan of the run: 项目库 and phase sheets in the ledger, planned lines on the maps
    plan: str | Path | None = None

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ExportError("--format", f"must be one of {', '.join(FORMATS)}")
        if self.lang not in LANGS:
            raise ExportError("--lang", f"must be one of {', '.join(LANGS)}")
        self.map_options()  # validates paper, orientation, dpi

    def map_options(self) -> MapOptions:
        return MapOptions(paper=self.paper, orientation=self.orientation, lang=self.lang,
                          dpi=self.dpi)


@dataclass
class ExportResult:
    files: list[Path]
    notes: list[str]
    seconds: float


def format_of(path: str | Path) -> str | None:
    """The export format a file name implies (``.json`` counts as GeoJSON), else None."""
    suffix = Path(path).suffix.lower().lstrip(".")
    suffix = {"json": "geojson", "htm": "html"}.get(suffix, suffix)
    return suffix if suffix in FORMATS else None


def _suffixed(out: Path, county: str) -> Path:
    from buque.geo.report.bundle import _safe

    return out.with_name(f"{out.stem}-{_safe(county)}{out.suffix}")


def _write_one(data: ReportData, fmt: str, out: Path, opts: ExportOptions,
               progress: Progress | None = None) -> tuple[list[Path], list[str]]:
    reporter(progress)(0.0, f"writing {fmt.upper()}")
    if fmt in ("png", "pdf"):
        from buque.geo.report.maps import write_maps

        kw = {fmt: out}
        from buque.geo.report.chartpage import progress_figure

        return write_maps([data], opts.map_options(), progress=progress,
                          extra_page=progress_figure if fmt == "pdf" else None, **kw), []
    if fmt == "html":
        from buque.geo.basemap import BasemapError
        from buque.geo.report.html import write_html

        try:
            path, notes = write_html(data, out, lang=opts.lang, basemap=opts.basemap)
        except BasemapError as e:
            raise ExportError("--basemap", str(e)) from None
        return [path], notes
    if fmt == "pmtiles":  # the gap map's tiles, for use with no server
        from buque.geo.tilepack import write_pmtiles
        from buque.geo.tiles import gap_tile_layers

        layers = gap_tile_layers(data.villages, data.layers, list(data.indicators))
        counts = write_pmtiles(layers, out, maxzoom=14, attribution=" · ".join(data.attribution),
                               name=f"Buque gap map {data.manifest.get('run_id', '')}")
        return [out], [f"{counts['tiles']:,} tiles (z0-14) of {', '.join(layers)}"]
    if fmt == "xlsx":
        from buque.geo.report.ledger import write_xlsx

        return [write_xlsx(data, out, lang=opts.lang, paper=opts.paper)], []
    from buque.geo.report.gis import write_gis

    return write_gis(data, fmt, out, encoding=opts.encoding)


def _per_county(data: ReportData) -> list[tuple[str, ReportData]]:
    counties = data.counties
    if not counties:
        raise ExportError("--per-county", "the selected villages have no county names")
    return [(c, select(data, replace(data.selection, counties=(c,)))) for c in counties]


def _staged(out: Path):
    """A temporary folder beside ``out`` whose files are moved next to ``out`` when done."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=f".{out.name}.tmp-", dir=out.parent)


def _commit(files: list[Path], tmp: Path, dest: Path) -> list[Path]:
    """Move everything written in ``tmp`` (sidecars included) to ``dest``; ``files`` there."""
    for f in sorted(tmp.iterdir()):
        os.replace(f, dest / f.name)
    return [dest / f.name for f in files]


def _selected(run: str | Path | ReportData, opts: ExportOptions) -> ReportData:
    """The run's report data (loaded if given as a path), narrowed to the selection."""
    data = run if isinstance(run, ReportData) else load_report(run)
    if opts.plan is not None:
        from buque.geo.report.planned import attach_plan

        data = attach_plan(data, opts.plan)
    data = select(data, opts.selection)
    if data.villages.empty:
        raise ExportError("--county", "the selection holds no villages")
    return data


def export(run: str | Path | ReportData, out: str | Path, opts: ExportOptions,
           progress: Progress | None = None) -> ExportResult:
    """Export a run (path, or an already loaded :class:`ReportData`) as ``opts.fmt`` to ``out``;
    ``progress(fraction, step)`` is told of each step as it starts."""
    t0 = time.perf_counter()
    out = Path(out).resolve()
    report = reporter(progress)
    report(0.0, "reading the run" if not isinstance(run, ReportData) else "selecting")
    data = _selected(run, opts)
    notes: list[str] = []
    with _staged(out) as tmp_name:
        tmp = Path(tmp_name)
        staged = tmp / out.name
        files: list[Path] = []
        if opts.per_county and opts.fmt == "pdf":
            from buque.geo.report.chartpage import progress_figure
            from buque.geo.report.maps import write_maps

            pages = [d for _, d in _per_county(data)]
            files = write_maps(pages, opts.map_options(), pdf=staged,
                               progress=part(progress, 0.05, 0.95), extra_page=progress_figure)
        elif opts.per_county:
            counties = _per_county(data)
            for i, (county, d) in enumerate(counties):  # counties, not villages
                sub = part(progress, 0.05 + 0.9 * i / len(counties),
                           0.05 + 0.9 * (i + 1) / len(counties), county)
                f, n = _write_one(d, opts.fmt, _suffixed(staged, county), opts, sub)
                files += f
                notes += [f"{county}: {x}" for x in n]
        else:
            files, notes = _write_one(data, opts.fmt, staged, opts, part(progress, 0.05, 0.95))
        report(0.95, "moving into place")
        files = _commit(files, tmp, out.parent)
    report(1.0, "done")
    return ExportResult(files=files, notes=notes, seconds=time.perf_counter() - t0)


def export_bundle(run: str | Path | ReportData, out: str | Path, opts: ExportOptions,
                  progress: Progress | None = None) -> ExportResult:
    """One zip per county of the selection: ``out`` itself when it ends in .zip and one county
    is selected, else ``out`` is a folder receiving ``<county>.zip`` files; ``progress`` is told
    of each county's steps (each county an equal share)."""
    from buque.geo.report.bundle import _safe, write_bundle

    t0 = time.perf_counter()
    out = Path(out).resolve()
    reporter(progress)(0.0, "reading the run" if not isinstance(run, ReportData) else "selecting")
    data = _selected(run, opts)
    pages = _per_county(data)
    single = out.suffix.lower() == ".zip"
    if single and len(pages) > 1:
        raise ExportError("--out", f"{len(pages)} counties selected: give a folder for one zip "
                          "per county, or --county for one")
    dest = out.parent if single else out
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    mopts = opts.map_options()
    for i, (county, d) in enumerate(pages):  # counties, not villages
        target = out if single else dest / f"{_safe(county)}.zip"
        sub = part(progress, 0.02 + 0.98 * i / len(pages), 0.02 + 0.98 * (i + 1) / len(pages),
                   f"{county} ({i + 1}/{len(pages)})")
        files.append(write_bundle(d, target, mopts, progress=sub))
    reporter(progress)(1.0, "done")
    return ExportResult(files=files, notes=[], seconds=time.perf_counter() - t0)
