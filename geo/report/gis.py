"""The run's layers for GIS users: GeoPackage, GeoJSON, CSV and Shapefile.

- ``gpkg``: ``villages`` (statuses per indicator), ``gaps`` (one point per village and indicator,
  at the village's reference point), the feature layers (with their evidence classes), and the
  ``projects`` and ``summary`` tables; the attribution and run id in each layer's metadata.
- ``geojson``: the villages (RFC 7946), attribution and run id as foreign members.
- ``csv``: the villages' attributes with ``ref_lon``/``ref_lat``; UTF-8 with a byte-order mark
  unless ``encoding`` says otherwise.
- ``shp``: the villages as points at their reference points (one geometry type per file), plus
  ``<name>_polygons.shp`` for villages given as polygons; field names cut to 10 characters
  (``<name>_fields.csv`` maps them back), a ``.cpg`` naming the ``encoding`` (UTF-8 or e.g. GBK).
  Characters the encoding cannot hold are replaced by ``?`` and counted in the returned notes.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from buque.geo.csvsafe import neutralise_frame
from buque.geo.report.filters import ExportError, ReportData

GIS_FORMATS = ("gpkg", "geojson", "csv", "shp")
SHORT = {"population": "population", "households": "households", "exit_year": "exit_year",
         "village_code": "parent", "village_code_source": "parent_src", "n_missing": "n_missing",
         "missing": "missing", "ref_lon": "ref_lon", "ref_lat": "ref_lat", "township": "township",
         "county": "county", "code": "code", "name": "name", "level": "level", "poor": "poor"}


def _meta(data: ReportData) -> dict[str, str]:
    m = data.manifest
    return {"attribution": "; ".join(data.attribution), "run_id": str(m.get("run_id", "")),
            "profile": f"{data.profile.name} {data.profile.version}",
            "project": str(m.get("project", {}).get("name", ""))}


def check_encoding(encoding: str | None) -> str | None:
    if encoding is None:
        return None
    try:
        codecs.lookup(encoding)
    except LookupError as e:
        raise ExportError("--encoding", f"unknown encoding {encoding!r}") from e
    return encoding


def _ref_points(v: gpd.GeoDataFrame) -> np.ndarray:
    lon = v["ref_lon"].to_numpy(dtype=float, na_value=np.nan)
    lat = v["ref_lat"].to_numpy(dtype=float, na_value=np.nan)
    fallback = shapely.point_on_surface(v.geometry.to_numpy())
    pts = shapely.points(lon, lat)
    return np.where(np.isfinite(lon) & np.isfinite(lat), pts, fallback)


def gap_points(data: ReportData) -> gpd.GeoDataFrame:
    """Gap rows located at their village's reference point, with the village's name and place."""
    v = data.villages
    attrs = pd.DataFrame({"village_code": v["code"], "name": v["name"], "county": v["county"],
                          "township": v["township"], "geometry": _ref_points(v)})
    g = data.gaps.merge(attrs, on="village_code", how="left", validate="many_to_one")
    return gpd.GeoDataFrame(g, geometry="geometry", crs="EPSG:4326")


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """Columns GDAL can write: text as object with None for missing (never "<NA>")."""
    out = df.copy()
    for c in out.columns:
        s = out[c]
        if c != "geometry" and (isinstance(s.dtype, pd.StringDtype) or s.dtype == object):
            out[c] = s.astype(object).where(s.notna(), None)
    return out


def write_gpkg(data: ReportData, out: Path) -> list[Path]:
    meta = _meta(data)
    layers: list[tuple[str, pd.DataFrame, str]] = [
        ("villages", data.villages, "Villages with a status per indicator"),
        ("gaps", gap_points(data), "One row per village and indicator"),
    ]
    layers += [(k, g, f"{k} as assessed, with evidence classes") for k, g in data.layers.items()]
    layers += [("projects", data.projects, "Remedy list"), ("summary", data.summary,
                                                            "Rates per county and township")]
    if out.exists():
        out.unlink()
    for i, (name, df, desc) in enumerate(layers):
        pyogrio.write_dataframe(plain(df), out, layer=name, driver="GPKG", append=i > 0,
                                layer_options={"DESCRIPTION": desc}, layer_metadata=meta)
    return [out]


def write_geojson(data: ReportData, out: Path) -> list[Path]:
    if out.exists():
        out.unlink()
    members = json.dumps(_meta(data), ensure_ascii=False)
    pyogrio.write_dataframe(plain(data.villages), out, driver="GeoJSON", layer="villages",
                            layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": 7,
                                           "FOREIGN_MEMBERS_COLLECTION": members})
    return [out]


def _recode(df: pd.DataFrame, encoding: str) -> tuple[pd.DataFrame, int]:
    """Text columns made encodable in ``encoding`` (others replaced by ``?``); cells changed."""
    out = df.copy()
    changed = 0
    for c in out.columns:
        s = out[c]
        if c == "geometry" or not (s.dtype == object or isinstance(s.dtype, pd.StringDtype)):
            continue
        txt = s.astype("string")
        fixed = txt.str.encode(encoding, errors="replace").str.decode(encoding)
        changed += int((fixed != txt).fillna(False).sum())
        out[c] = fixed.astype(object).where(txt.notna(), None)
    return out, changed


def write_csv(data: ReportData, out: Path, encoding: str | None = None) -> tuple[list[Path], list[str]]:
    df = pd.DataFrame(data.villages.drop(columns="geometry"))
    notes: list[str] = []
    enc = encoding or "utf-8-sig"
    if encoding and codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig"):
        df, n = _recode(df, encoding)
        if n:
            notes.append(f"{n} text cells had characters {encoding} cannot hold (written as ?)")
    neutralise_frame(df).to_csv(out, index=False, encoding=enc, lineterminator="\r\n")
    return [out], notes


DBF_TEXT_BYTES = 254  # a DBF character field's limit


def _fit_dbf(df: pd.DataFrame, encoding: str) -> tuple[pd.DataFrame, int]:
    """Text cells cut to what a DBF field holds in ``encoding`` (never inside a character);
    how many were cut. GDAL would cut them too, with a warning per layer."""
    out, cut = df, 0
    for c in df.columns:
        s = df[c]
        if c == "geometry" or not (s.dtype == object or isinstance(s.dtype, pd.StringDtype)):
            continue
        txt = s.astype("string")
        long = (txt.str.len() * 4 > DBF_TEXT_BYTES).fillna(False).to_numpy(dtype=bool)
        if not long.any():  # the byte count is only taken for the few cells that may be long
            continue
        idx = np.flatnonzero(long)
        enc = [x.encode(encoding, errors="replace") for x in txt.iloc[idx]]
        over = [i for i, b in zip(idx, enc, strict=True) if len(b) > DBF_TEXT_BYTES]
        if not over:
            continue
        if out is df:
            out = df.copy()
        col = out[c].astype(object)
        for i in over:  # the long cells only
            col.iloc[i] = str(col.iloc[i]).encode(encoding, errors="replace")[
                :DBF_TEXT_BYTES].decode(encoding, errors="ignore")
        out[c] = col
        cut += len(over)
    return out, cut


def short_names(columns: list[str]) -> dict[str, str]:
    """Column -> unique DBF field name of at most 10 characters."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for c in columns:  # columns, not rows
        base = SHORT.get(c)
        if base is None:
            base = c.replace("_distance_m", "_dist")
            if len(base) > 10 and base.endswith("_dist"):
                base = base[:5] + "_dist"
            base = base[:10]
        name, i = base, 1
        while name.lower() in used:
            suffix = str(i)
            name, i = base[:10 - len(suffix)] + suffix, i + 1
        used.add(name.lower())
        out[c] = name
    return out


def write_shp(data: ReportData, out: Path, encoding: str | None = None
              ) -> tuple[list[Path], list[str]]:
    enc = encoding or "UTF-8"
    v = data.villages
    attrs = pd.DataFrame(v.drop(columns="geometry"))
    notes: list[str] = []
    if codecs.lookup(enc).name not in ("utf-8", "utf-8-sig"):
        attrs, n = _recode(attrs, enc)
        if n:
            notes.append(f"{n} text cells had characters {enc} cannot hold (written as ?)")
    attrs, n = _fit_dbf(attrs, enc)
    if n:
        notes.append(f"{n} text cells were longer than a Shapefile field holds "
                     f"({DBF_TEXT_BYTES} bytes) and were cut; the GeoPackage keeps them whole")
    names = short_names(list(attrs.columns))
    attrs = plain(attrs.rename(columns=names))
    written: list[Path] = []
    pts = gpd.GeoDataFrame(attrs, geometry=_ref_points(v), crs="EPSG:4326")
    _write_shp(pts, out, enc)
    written.append(out)
    poly = v.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    if poly.any():
        polys = gpd.GeoDataFrame(attrs[poly].reset_index(drop=True),
                                 geometry=v.geometry.to_numpy()[poly], crs="EPSG:4326")
        p = out.with_name(f"{out.stem}_polygons.shp")
        _write_shp(polys, p, enc)
        written.append(p)
    fields = out.with_name(f"{out.stem}_fields.csv")
    neutralise_frame(pd.DataFrame({"field": list(names.values()),
                                   "column": list(names.keys())})).to_csv(
        fields, index=False, encoding="utf-8-sig")
    written.append(fields)
    return written, notes


def _write_shp(gdf: gpd.GeoDataFrame, path: Path, encoding: str) -> None:
    for p in path.parent.glob(path.stem + ".*"):
        if p.suffix.lower() in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
            p.unlink()
    pyogrio.write_dataframe(gdf, path, driver="ESRI Shapefile", encoding=encoding,
                            layer_options={"RESIZE": "YES"})


def write_gis(data: ReportData, fmt: str, out: Path, encoding: str | None = None
              ) -> tuple[list[Path], list[str]]:
    """Write ``data`` as ``fmt``; the files written and any notes for the user."""
    check_encoding(encoding)
    if fmt == "gpkg":
        return write_gpkg(data, out), []
    if fmt == "geojson":
        return write_geojson(data, out), []
    if fmt == "csv":
        return write_csv(data, out, encoding)
    if fmt == "shp":
        return write_shp(data, out, encoding)
    raise ExportError("--format", f"not a GIS format: {fmt}")
