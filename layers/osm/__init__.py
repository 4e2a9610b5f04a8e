"""Derive canonical Buque layers from an OpenStreetMap extract (.osm.pbf / .osm).

GDAL's OSM driver (bundled with pyogrio) reads the file with Buque's ``osmconf.ini``, which
turns the tags used here into columns; selection and mapping are vectorised pandas operations.

Mapping (tags -> layer):
- villages: ``place`` in ``admin_places`` (default village); natural_villages: ``place`` in
  ``natural_places`` (default hamlet, isolated_dwelling). ``code`` is ``osm:n<id>``/``osm:w<id>``.
- roads: ``highway`` of motorable classes, with ``surface``, ``width``.
- power: ``power`` = line, minor_line, cable (lines); transformer, substation (points/areas);
  with ``voltage`` and ``phases`` (the power_supply rule, docs/rules.md).
- clinics: ``amenity`` = clinic, doctors, hospital; ``healthcare`` = clinic, doctor, hospital,
  centre (pharmacies, dentists and the like are not clinics). ``standardized`` is unknown in OSM.
- water: ``man_made`` = water_well, water_tap, water_works, water_tower; ``amenity`` =
  drinking_water, water_point; ``safe`` from ``drinking_water`` = yes/no where tagged.
- broadband: ``man_made`` = mast/tower with ``tower:type`` = communication, or a
  ``communication:mobile_phone`` tag.
- boundaries: ``boundary=administrative`` areas of the project's ``county_admin_level`` and
  ``township_admin_level`` (outlines for maps; empty when neither is set).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from buque.layers.errors import BuqueInputError, Report
from buque.layers.project import LayerSpec, OsmSpec
from buque.layers.readers import normalise

OSMCONF = Path(__file__).with_name("osmconf.ini")
MOTORABLE = ("motorway", "trunk", "primary", "secondary", "tertiary", "unclassified",
             "residential", "motorway_link", "trunk_link", "primary_link", "secondary_link",
             "tertiary_link", "living_street", "service", "track", "road")
CLINIC_AMENITY = ("clinic", "doctors", "hospital")
CLINIC_HEALTHCARE = ("clinic", "doctor", "hospital", "centre")
WATER_MAN_MADE = {"water_well": "well", "water_tap": "tap", "water_works": "water_works",
                  "water_tower": "water_tower"}
WATER_AMENITY = {"drinking_water": "drinking_water", "water_point": "water_point"}
DERIVABLE = ("villages", "natural_villages", "roads", "power", "clinics", "water", "broadband",
             "boundaries")


@cache
def _read(path: str, layer: str, digest: str) -> gpd.GeoDataFrame:
    pyogrio.set_gdal_config_options({"OSM_CONFIG_FILE": str(OSMCONF),
                                     "OSM_USE_CUSTOM_INDEXING": "YES"})
    try:
        df = pyogrio.read_dataframe(path, layer=layer)
    except Exception as e:
        raise BuqueInputError(path, f"cannot read OSM layer '{layer}': {e}") from e
    finally:
        pyogrio.set_gdal_config_options({"OSM_CONFIG_FILE": None})
    return df


def _layer(spec: OsmSpec, layer: str) -> gpd.GeoDataFrame:
    st = spec.path.stat()
    digest = hashlib.sha1(f"{spec.path}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
    return _read(str(spec.path), layer, digest).copy()


def _ids(df: pd.DataFrame, prefix: str) -> pd.Series:
    """OSM object ids as ``osm:n123`` (nodes), ``osm:w123`` (ways), ``osm:r123`` (relations)."""
    if "osm_way_id" in df:  # multipolygons: from a closed way or a relation
        way = df["osm_way_id"].astype("string")
        rel = df["osm_id"].astype("string")
        return ("osm:w" + way).fillna("osm:r" + rel)
    return (f"osm:{prefix}" + df["osm_id"].astype("string")).astype("string")


def _points_and_areas(spec: OsmSpec, mask_fn) -> gpd.GeoDataFrame:
    pts = _layer(spec, "points")
    pts = pts[mask_fn(pts)]
    pts = pts.assign(id=_ids(pts, "n"))
    pol = _layer(spec, "multipolygons")
    pol = pol[mask_fn(pol)]
    pol = pol.assign(id=_ids(pol, "w"))
    cols = sorted((set(pts.columns) & set(pol.columns)) - {"geometry"})
    out = pd.concat([pts[cols + ["geometry"]], pol[cols + ["geometry"]]], ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs="EPSG:4326")


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df else pd.Series(pd.NA, index=df.index, dtype="string")


def _places(spec: OsmSpec, places: Iterable[str]) -> gpd.GeoDataFrame:
    places = tuple(places)
    df = _points_and_areas(spec, lambda d: _col(d, "place").isin(places))
    name = _col(df, "name").fillna(_col(df, "name_zh"))
    geom = df.geometry
    if not set(spec.admin_places) & set(places):
        # natural villages are points: a hamlet mapped as an area stands at a point inside it
        geom = geom.where(geom.geom_type == "Point", geom.representative_point())
    return gpd.GeoDataFrame({"code": df["id"], "name": name, "population": _col(df, "population"),
                             "households": _col(df, "households"), "county": spec.county},
                            geometry=geom, crs="EPSG:4326")


def _roads(spec: OsmSpec) -> gpd.GeoDataFrame:
    df = _layer(spec, "lines")
    df = df[_col(df, "highway").isin(MOTORABLE)]
    return gpd.GeoDataFrame({"id": _ids(df, "w"), "name": _col(df, "name"),
                             "surface": _col(df, "surface"), "width_m": _col(df, "width"),
                             "highway": _col(df, "highway")}, geometry=df.geometry, crs="EPSG:4326")


def _power(spec: OsmSpec) -> gpd.GeoDataFrame:
    lines = _layer(spec, "lines")
    lines = lines[_col(lines, "power").isin(("line", "minor_line", "cable"))]
    lines = lines.assign(id=_ids(lines, "w"))
    pts = _points_and_areas(spec, lambda d: _col(d, "power").isin(("transformer", "substation")))
    lines, pts = (d.assign(phases=_col(d, "phases")) for d in (lines, pts))
    df = pd.concat([lines[["id", "power", "voltage", "phases", "geometry"]],
                    pts[["id", "power", "voltage", "phases", "geometry"]]], ignore_index=True)
    return gpd.GeoDataFrame({"id": df["id"], "kind": df["power"], "voltage": df["voltage"],
                             "phases": df["phases"]},
                            geometry=df.geometry, crs="EPSG:4326")


def _clinics(spec: OsmSpec) -> gpd.GeoDataFrame:
    df = _points_and_areas(spec, lambda d: _col(d, "amenity").isin(CLINIC_AMENITY)
                           | _col(d, "healthcare").isin(CLINIC_HEALTHCARE))
    kind = _col(df, "amenity").where(_col(df, "amenity").isin(CLINIC_AMENITY),
                                     _col(df, "healthcare"))
    return gpd.GeoDataFrame({"id": df["id"], "name": _col(df, "name"), "kind": kind,
                             "level": kind, "standardized": pd.NA},
                            geometry=df.geometry, crs="EPSG:4326")


def _water(spec: OsmSpec) -> gpd.GeoDataFrame:
    df = _points_and_areas(spec, lambda d: _col(d, "man_made").isin(tuple(WATER_MAN_MADE))
                           | _col(d, "amenity").isin(tuple(WATER_AMENITY)))
    kind = _col(df, "man_made").map(WATER_MAN_MADE).fillna(_col(df, "amenity").map(WATER_AMENITY))
    dw = _col(df, "drinking_water").astype("string").str.lower()
    safe = pd.Series(pd.NA, index=df.index, dtype="boolean")
    safe[dw.isin(("yes", "treated")).fillna(False)] = True
    safe[dw.isin(("no", "conditional")).fillna(False)] = False
    return gpd.GeoDataFrame({"id": df["id"], "name": _col(df, "name"), "kind": kind,
                             "safe": safe}, geometry=df.geometry, crs="EPSG:4326")


def _broadband(spec: OsmSpec) -> gpd.GeoDataFrame:
    def sel(d: pd.DataFrame) -> pd.Series:
        tower = _col(d, "man_made").isin(("mast", "tower", "communications_tower"))
        comm = _col(d, "tower_type").isin(("communication", "telecommunication"))
        mobile = _col(d, "communication_mobile_phone").notna()
        return (tower & comm) | mobile | _col(d, "man_made").eq("communications_tower").fillna(False)
    df = _points_and_areas(spec, sel)
    return gpd.GeoDataFrame({"id": df["id"], "name": _col(df, "name"), "kind": "tower",
                             "radius_m": pd.NA}, geometry=df.geometry, crs="EPSG:4326")


def _admin_areas(spec: OsmSpec, level: str) -> gpd.GeoDataFrame:
    pol = _layer(spec, "multipolygons")
    return pol[(_col(pol, "boundary") == "administrative") & (_col(pol, "admin_level") == level)]


def _boundaries(spec: OsmSpec) -> gpd.GeoDataFrame:
    """County and township outlines: the admin areas of the levels the project names."""
    parts = []
    for kind, level in (("county", spec.county_admin_level), ("township", spec.township_admin_level)):
        if level is None:
            continue
        a = _admin_areas(spec, level)
        parts.append(gpd.GeoDataFrame({"id": _ids(a, "w"), "name": _col(a, "name").fillna(
            _col(a, "name_zh")), "level": kind}, geometry=a.geometry, crs="EPSG:4326"))
    if not parts:
        return gpd.GeoDataFrame({"id": [], "name": [], "level": []}, geometry=[], crs="EPSG:4326")
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs="EPSG:4326")


def _admin_names(spec: OsmSpec, points: gpd.GeoSeries, level: str) -> pd.Series:
    """Name of the ``boundary=administrative`` area of ``admin_level`` containing each point."""
    pol = _admin_areas(spec, level)
    out = pd.Series(pd.NA, index=points.index, dtype="string")
    if len(pol) == 0:
        return out
    i_pt, i_pol = pol.sindex.query(points.representative_point(), predicate="within")
    names = (_col(pol, "name").fillna(_col(pol, "name_zh"))).to_numpy()
    out.iloc[i_pt] = names[i_pol]
    return out


def derive_layers(spec: OsmSpec, kinds: Iterable[str], report: Report) -> dict[str, gpd.GeoDataFrame]:
    """Canonical, validated layers of the requested ``kinds`` from the extract."""
    if not spec.path.is_file():
        raise BuqueInputError(str(spec.path), "[osm]: no such file")
    builders = {"villages": lambda: _places(spec, spec.admin_places),
                "natural_villages": lambda: _places(spec, spec.natural_places),
                "roads": lambda: _roads(spec), "power": lambda: _power(spec),
                "clinics": lambda: _clinics(spec), "water": lambda: _water(spec),
                "broadband": lambda: _broadband(spec), "boundaries": lambda: _boundaries(spec)}
    out = {}
    for kind in kinds:
        raw = builders[kind]().reset_index(drop=True)
        if kind in ("villages", "natural_villages"):
            for fld, level in (("county", spec.county_admin_level),
                               ("township", spec.township_admin_level)):
                if level is not None:
                    names = _admin_names(spec, raw.geometry, level)
                    raw[fld] = names.fillna(raw[fld]) if fld in raw else names
        lspec = LayerSpec(kind=kind, path=spec.path)
        out[kind] = normalise(raw.assign(_row=np.arange(1, len(raw) + 1)), lspec, report)
    return out
