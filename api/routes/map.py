"""The gap map in the browser: ``/map`` (MapLibre, served from this app, works offline), its
configuration and the per-village details shown in popups."""

from __future__ import annotations

import threading
from pathlib import Path as FsPath
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from buque.api.deps import Run, page_viewer, viewer
from buque.api.mapstyle import STYLE_LAYERS
from buque.api.problems import Problem
from buque.api.store import ServedRun
from buque.layers.profile import load_profile

STATIC = FsPath(__file__).resolve().parent.parent / "static"
MAPLIBRE = FsPath(__file__).resolve().parents[2] / "web" / "node_modules" / "maplibre-gl" / "dist"
router = APIRouter(tags=["Map"], dependencies=[Depends(viewer)])
public = APIRouter()  # no sign-in: the browser asks for the icon on every page
pages = APIRouter(dependencies=[Depends(page_viewer)])  # no session: to the sign-in page
_lock = threading.Lock()
_by_code: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}


def mount_static(app: FastAPI) -> None:
    """Serve the map's own files and MapLibre GL JS (installed from npm by setup.sh)."""
    if MAPLIBRE.is_dir():
        app.mount("/static/vendor/maplibre-gl", StaticFiles(directory=MAPLIBRE), name="maplibre")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


@public.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """The site icon (api/static/favicon.ico; map.html also links favicon.svg)."""
    return FileResponse(STATIC / "favicon.ico", media_type="image/x-icon",
                        headers={"Cache-Control": "public, max-age=86400"})


@pages.get("/map", response_class=HTMLResponse, include_in_schema=False)
def map_page() -> HTMLResponse:
    if not (MAPLIBRE / "maplibre-gl.js").is_file():
        raise Problem(503, "MapLibre GL JS is not installed: run setup.sh (npm install in web/)",
                      kind="map-assets-missing")
    return HTMLResponse((STATIC / "map.html").read_text(encoding="utf-8"))


@router.get("/map/config.json")
def map_config(request: Request, run: Run) -> dict[str, Any]:
    """What the web map needs: run, indicators with labels, layers, places, bounds."""
    data = run.data
    m = data.manifest
    prof = m.get("profile", {})
    try:
        p = load_profile(prof["path"])
        inds = [{"key": k, "label_zh": i.label_zh, "label_en": i.label_en}
                for k, i in p.indicators.items() if k in data.indicators]
    except Exception:  # the profile file moved: fall back to the keys
        inds = [{"key": k, "label_zh": k, "label_en": k} for k in data.indicators]
    v = data.tables.villages
    places = (v[["county", "township"]].astype("string").fillna("").drop_duplicates()
              .sort_values(["county", "township"]))
    towns = places[places["township"] != ""].groupby("county")["township"].apply(list)
    counties = {c: towns.get(c, []) for c in places["county"].unique() if c}
    lon, lat = v["ref_lon"].to_numpy(float), v["ref_lat"].to_numpy(float)
    bounds = ([[float(np.nanmin(lon)), float(np.nanmin(lat))],
               [float(np.nanmax(lon)), float(np.nanmax(lat))]] if len(v) else None)
    layers = ["villages", *data.input_layers()]
    return {"basemap": _basemap_config(request),"run_id": run.run_id, "created": m.get("created"),
            "profile": {"name": prof.get("name"), "version": prof.get("version")},
            "indicators": inds, "layers": layers,
            "style_layers": {k: STYLE_LAYERS.get(k, [k]) for k in layers},
            "places": counties, "bounds": bounds, "attribution": m.get("attribution", [])}


def _basemap_config(request: Request) -> dict[str, Any] | None:
    """The server's basemap for the map's toggle and attribution (None: it has none)."""
    from buque.api.mapstyle import basemap_layers, basemap_of

    bm = basemap_of(request)
    if bm is None:
        return None
    _, layers = basemap_layers(bm, "")
    return {"kind": bm.kind, "name": bm.name, "attribution": bm.attribution,
            "style_layers": [lyr["id"] for lyr in layers]}


def _rows_by_code(run: ServedRun) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Row positions of gaps and projects per village code, built once per run."""
    with _lock:
        if run.run_id not in _by_code:
            g = run.data.gaps["village_code"].astype(str)
            p = run.data.projects["village_code"].astype(str)
            _by_code[run.run_id] = (pd.Series(np.arange(len(g))).groupby(g.to_numpy()).indices,
                                    pd.Series(np.arange(len(p))).groupby(p.to_numpy()).indices)
        return _by_code[run.run_id]


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if v is None or (isinstance(v, float) and v != v) or v is pd.NA else
                 v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
            for r in df.astype(object).to_dict("records")]


@router.get("/map/villages/{code}")
def village_detail(code: Annotated[str, Path(max_length=64)], run: Run) -> dict[str, Any]:
    """One village for the map's popup: attributes, each indicator's status and evidence, and
    its remedies."""
    pos = run.data.index.position(code)
    if pos is None:
        raise Problem(404, f"no village with code {code!r} in run {run.run_id}",
                      kind="unknown-village")
    v = run.data.tables.villages
    attrs = _records(v.drop(columns=v.geometry.name).iloc[[pos]])[0]
    gaps_at, proj_at = _rows_by_code(run)
    gaps = run.data.gaps.iloc[gaps_at.get(code, [])]
    projects = run.data.projects.iloc[proj_at.get(code, [])]
    return {"village": attrs, "gaps": _records(gaps), "projects": _records(projects)}
