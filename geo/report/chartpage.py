"""The progress page of the PDF report: when the run's folder holds earlier runs of the same
project, the rate of each selected indicator per run date (over the selected counties) against
its target and deadline, drawn by :func:`geo.progress.chart_figure` at the page's size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from buque.geo.archive import list_runs, read_manifest
from buque.geo.progress import AXIS_X, AXIS_Y, chart_figure, series, totals
from buque.geo.report.filters import ReportData
from buque.geo.report.maps import MapOptions

MM = 1 / 25.4
WORDS = {"zh": {"title": "达标率进展", "axes": (AXIS_X, AXIS_Y), "key": "虚线 目标 · 点线 期限",
                "runs": "{n} 次评估（{first} 至 {last}）· 运行 {run}"},
         "en": {"title": "Progress of the rates", "axes": ("Run date", "Rate (%)"),
                "key": "dashed: target · dotted: deadline",
                "runs": "{n} runs ({first} to {last}) · run {run}"}}


def earlier_runs(data: ReportData) -> list[Path]:
    """The runs of ``data``'s folder of its project created up to it, oldest first (the run
    itself last); just the run when the folder holds no earlier one."""
    run = Path(data.run).resolve()
    name = (data.manifest.get("project") or {}).get("name")
    runs = [r.resolve() for r in list_runs(run.parent)]  # oldest first
    if run not in runs:
        return [run]
    return [r for r in runs[:runs.index(run)]
            if (read_manifest(r).get("project") or {}).get("name") == name] + [run]


def progress_figure(pages: Sequence[ReportData], opts: MapOptions):
    """The progress page for the selections ``pages`` (their counties together) at the size
    of ``opts``'s paper, or None when the run has no earlier run of its project beside it."""
    size_mm, lang = opts.size_mm, opts.lang
    data = pages[0]
    runs = earlier_runs(data)
    if len(runs) < 2:
        return None
    counties = sorted({c for d in pages for c in d.selection.counties})
    tot = totals(series(runs), counties or None)
    tot = tot[tot["indicator"].isin(data.indicators)].reset_index(drop=True)
    if tot.empty:
        return None
    w = WORDS["zh" if lang == "zh" else "en"]
    labels = {k: (i.label_zh if lang == "zh" else i.label_en)
              for k, i in data.profile.indicators.items()}
    name = (data.manifest.get("project") or {}).get("name") or ""
    place = "、".join(counties) if lang == "zh" else ", ".join(counties)
    title = " · ".join(x for x in (w["title"], name, place) if x)
    dates = tot["date"].tolist()
    sub = w["runs"].format(n=tot["run_id"].nunique(), first=dates[0], last=dates[-1],
                           run=data.manifest.get("run_id", ""))
    fig, _ = chart_figure(tot, labels, title, size=(size_mm[0] * MM, size_mm[1] * MM),
                          axes=w["axes"], key=w["key"], subtitle=sub)
    return fig
