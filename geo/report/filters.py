"""A run loaded for reporting, and the county / township / indicator selection every export uses.

:func:`load_report` reads a run once; :func:`select` narrows it. Selection is by boolean masks
(no loops over villages). The indicator selection keeps the villages assessed for any chosen
indicator, only those indicators' status columns (``missing``/``n_missing`` recomputed over
them), their gap and project rows and their feature layers. Feature layers are clipped to the
selected villages' extent plus the largest reach of the chosen indicators.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from buque.geo.archive import RunTables, list_runs, read_manifest, read_run
from buque.geo.lists import split_values
from buque.layers.errors import BuqueInputError
from buque.layers.profile import Indicator, Profile, load_profile

#: metres of one degree of latitude (for clipping margins only)
M_PER_DEG = 111_320.0
MIN_MARGIN_M = 1_000.0


class ExportError(ValueError):
    """An export that cannot be made as asked; ``param`` names the option at fault."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}" if param else message)


@dataclass(frozen=True)
class Selection:
    """Counties, townships and indicators to keep (empty = all)."""

    counties: tuple[str, ...] = ()
    townships: tuple[str, ...] = ()
    indicators: tuple[str, ...] = ()

    @classmethod
    def parse(cls, county: str | Sequence[str] | None = None,
              township: str | Sequence[str] | None = None,
              indicator: str | Sequence[str] | None = None) -> Selection:
        return cls(split_values(county), split_values(township), split_values(indicator))


@dataclass
class ReportData:
    """A run (or a selection of it) with everything the exports draw on: a view of the run's
    :class:`~geo.archive.RunTables` (the same frames a server's :class:`~geo.query.RunData`
    holds, made by :func:`report_data`), never a second read of the archive."""

    run: Path
    manifest: dict[str, Any]
    profile: Profile
    villages: gpd.GeoDataFrame
    gaps: pd.DataFrame
    projects: pd.DataFrame
    summary: pd.DataFrame
    layers: dict[str, gpd.GeoDataFrame]
    indicators: tuple[str, ...]
    all_villages: gpd.GeoDataFrame
    selection: Selection = field(default_factory=Selection)
    #: a plan of this run (``buque export --plan``: 项目库 and phases in the ledger, lines on maps)
    plan: Any = None

    def indicator(self, key: str) -> Indicator:
        return self.profile.indicators[key]

    @property
    def counties(self) -> list[str]:
        """Counties of the selected villages, sorted."""
        return sorted(self.villages["county"].dropna().unique().tolist())

    @property
    def run_counties(self) -> list[str]:
        return sorted(self.all_villages["county"].dropna().unique().tolist())

    @property
    def attribution(self) -> list[str]:
        return [str(a) for a in self.manifest.get("attribution", [])]


def resolve_run(path: str | Path) -> Path:
    """A run directory, or the newest run in a folder of runs."""
    p = Path(path)
    if not p.exists():
        raise ExportError("RUN", f"{p}: no such run or folder")
    runs = list_runs(p) if p.is_dir() else []
    if not runs:
        raise ExportError("RUN", f"{p}: not a Buque run (no manifest.json) and holds no runs")
    return runs[-1]


def _profile(manifest: dict[str, Any]) -> Profile:
    """The run's profile: its recorded path, else the bundled profile of the same name."""
    prof = manifest.get("profile", {})
    for ref in (prof.get("path"), prof.get("name")):
        if not ref:
            continue
        try:
            return load_profile(ref)
        except BuqueInputError:
            continue
    raise ExportError("RUN", f"the run's standards profile {prof.get('name')!r} cannot be found")


def load_report(run: str | Path) -> ReportData:
    """Read a run (or the newest run of a folder) for reporting."""
    path = resolve_run(run)
    return report_data(path, read_manifest(path), read_run(path))


def report_data(path: Path, manifest: dict[str, Any], tables: RunTables) -> ReportData:
    """A run already read (from its folder or from PostGIS) as report data: the same tables,
    not a second copy, with the run's profile and the indicators its village table holds."""
    profile = _profile(manifest)
    v = tables.villages
    inds = tuple(k for k in profile.indicators if k in v.columns)
    return ReportData(run=Path(path), manifest=manifest, profile=profile, villages=v,
                      gaps=tables.gaps, projects=tables.projects, summary=tables.summary,
                      layers=tables.layers, indicators=inds, all_villages=v)


def _check(param: str, asked: Iterable[str], available: Sequence[str]) -> None:
    bad = [a for a in asked if a not in set(available)]
    if bad:
        shown = ", ".join(available[:30]) + (" …" if len(available) > 30 else "")
        raise ExportError(param, f"not in this run: {', '.join(bad)} (available: {shown})")


def missing_columns(v: pd.DataFrame, indicators: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``n_missing`` and the comma-joined ``missing`` keys over ``indicators`` (vectorised)."""
    n = np.zeros(len(v), dtype=np.int64)
    joined = np.full(len(v), "", dtype=object)
    for k in indicators:
        miss = (v[k] == "missing").fillna(False).to_numpy(dtype=bool)
        n += miss
        joined = np.where(miss, np.where(joined == "", k, joined + "," + k), joined)
    return n, joined


def select(data: ReportData, sel: Selection) -> ReportData:
    """The part of ``data`` that ``sel`` asks for; raises :class:`ExportError` on unknown names."""
    mask, inds = selection_mask(data.villages, data.indicators, sel)
    return _narrow(data, mask, inds, sel, clip=True)


def check_selection(villages: pd.DataFrame, indicators: Sequence[str], sel: Selection) -> int:
    """The number of villages ``sel`` selects (as :func:`select` would), or the
    :class:`ExportError` it would raise, also when it selects none: an export's parameters
    checked before the export is queued."""
    mask, _ = selection_mask(villages, tuple(indicators), sel)
    if not mask.any():
        raise ExportError("--county", "the selection holds no villages")
    return int(mask.sum())


def selection_mask(v: pd.DataFrame, indicators: tuple[str, ...], sel: Selection
                   ) -> tuple[np.ndarray, tuple[str, ...]]:
    """The villages of ``v`` that ``sel`` selects and the indicators it keeps; raises
    :class:`ExportError` on names the run does not have."""
    _check("--county", sel.counties, sorted(v["county"].dropna().unique().tolist()))
    mask = np.ones(len(v), dtype=bool)
    if sel.counties:
        mask &= v["county"].isin(sel.counties).to_numpy(dtype=bool)
    if sel.townships:
        _check("--township", sel.townships,
               sorted(v.loc[mask, "township"].dropna().unique().tolist()))
        mask &= v["township"].isin(sel.townships).to_numpy(dtype=bool)
    _check("--indicator", sel.indicators, list(indicators))
    inds = tuple(k for k in indicators if not sel.indicators or k in sel.indicators)
    if sel.indicators:
        mask &= v[list(inds)].notna().any(axis=1).to_numpy(dtype=bool)
    return mask, inds


def select_codes(data: ReportData, codes: Iterable[str], sel: Selection) -> ReportData:
    """The villages ``codes`` of ``data`` (e.g. an API request's matches), with the indicators,
    counties and townships of ``sel`` for titles and the summary; unknown names select nothing
    (no error). Feature layers are left out (the ledger does not draw them)."""
    v = data.villages
    inds = tuple(k for k in data.indicators if not sel.indicators or k in sel.indicators)
    mask = v["code"].astype("string").isin(pd.Index(list(codes), dtype="string")).to_numpy(
        dtype=bool, na_value=False)
    sel = replace(sel, indicators=tuple(k for k in sel.indicators if k in inds))
    return _narrow(data, mask, inds, sel, clip=False)


def _narrow(data: ReportData, mask: np.ndarray, inds: tuple[str, ...], sel: Selection,
            clip: bool) -> ReportData:
    """``data`` with the villages of ``mask`` and the indicators ``inds``."""
    v = data.villages
    dropped = [k for k in data.indicators if k not in inds]
    drop_cols = [c for k in dropped for c in (k, f"{k}_distance_m") if c in v.columns]
    sv = v.loc[mask].drop(columns=drop_cols).reset_index(drop=True)
    if dropped:
        n, joined = missing_columns(sv, inds)
        sv["n_missing"] = n
        sv["missing"] = pd.array(joined, dtype="string")
    codes = sv["code"]
    gaps = data.gaps[data.gaps["village_code"].isin(codes) & data.gaps["indicator"].isin(inds)]
    projects = data.projects[data.projects["village_code"].isin(codes)
                             & data.projects["indicator"].isin(inds)]
    summ = data.summary[data.summary["indicator"].isin(inds)]
    if sel.counties:
        summ = summ[summ["county"].isin(sel.counties)]
    if sel.townships:
        summ = summ[summ["township"].isin(sel.townships)]
    layer_kinds = {data.profile.indicators[k].layer for k in inds}
    reach = max([data.profile.indicators[k].reach_m for k in inds] + [MIN_MARGIN_M])
    layers = ({k: clip_to(g, sv, reach) for k, g in data.layers.items() if k in layer_kinds}
              if clip else {})
    return replace(data, villages=sv, gaps=gaps.reset_index(drop=True),
                   projects=projects.reset_index(drop=True), summary=summ.reset_index(drop=True),
                   layers=layers, indicators=inds, selection=sel)


def bounds_with_margin(v: gpd.GeoDataFrame, margin_m: float) -> tuple[float, float, float, float]:
    """Lon/lat bounds of ``v`` widened by ``margin_m`` metres."""
    x0, y0, x1, y1 = v.total_bounds
    lat = max(abs(y0), abs(y1))
    dy = margin_m / M_PER_DEG
    dx = margin_m / (M_PER_DEG * max(math.cos(math.radians(min(lat, 89.0))), 0.01))
    return x0 - dx, y0 - dy, x1 + dx, y1 + dy


def clip_to(layer: gpd.GeoDataFrame, v: gpd.GeoDataFrame, margin_m: float) -> gpd.GeoDataFrame:
    """Features of ``layer`` intersecting the extent of ``v`` plus ``margin_m``."""
    if v.empty or layer.empty:
        return layer.iloc[:0]
    idx = layer.sindex.query(shapely.box(*bounds_with_margin(v, margin_m)), predicate="intersects")
    return layer.iloc[np.sort(idx)].reset_index(drop=True)


def place_name(data: ReportData, lang: str) -> str:
    """The selection's place for titles: township(s) with county, county(ies), or the project."""
    from buque.geo.report.text import t

    sep = t("sep", lang)

    def joined(names: Sequence[str]) -> str:
        return sep.join(names[:3]) + (t("etc", lang) if len(names) > 3 else "")

    counties = data.counties
    if data.selection.townships:
        towns = sorted(data.villages["township"].dropna().unique().tolist())
        space = "" if lang == "zh" else ", "
        return (joined(counties) + space if counties else "") + joined(towns)
    if data.selection.counties or (counties and len(data.run_counties) == 1):
        return joined(counties)
    return str(data.manifest.get("project", {}).get("name", "")) or joined(counties)
