"""Layers derived from the real Andorra OpenStreetMap extract, checked two independent ways:
against the published tag counts (osm_tag_stats.json) and against our own reading of the
extract with GDAL's *default* OSM configuration (tags parsed from ``other_tags`` here)."""

from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from synth_world import ANDORRA_PBF, OSM_TAG_STATS

MOTORABLE = {"motorway", "trunk", "primary", "secondary", "tertiary", "unclassified",
             "residential", "motorway_link", "trunk_link", "primary_link", "secondary_link",
             "tertiary_link", "living_street", "service", "track", "road"}


@pytest.fixture(scope="module")
def stats() -> dict:
    return json.loads(OSM_TAG_STATS.read_text("utf-8"))


KEYS = ("place", "highway", "surface", "power", "amenity", "healthcare", "man_made",
        "drinking_water", "tower:type", "communication:mobile_phone", "natural", "boundary",
        "admin_level", "name")


def tags(df: pd.DataFrame) -> gpd.GeoDataFrame:
    """The tags used here as columns: GDAL's default columns, else parsed from other_tags."""
    out = {"osm_id": df["osm_id"]}
    if "osm_way_id" in df:
        out["osm_way_id"] = df["osm_way_id"]
    other = df["other_tags"].astype("string")
    for k in KEYS:
        if k in df:
            out[k] = df[k]
        else:
            out[k] = other.str.extract(rf'(?:^|,)"{re.escape(k)}"=>"((?:[^"\\]|\\.)*)"')[0]
    return gpd.GeoDataFrame(out, geometry=df.geometry.to_numpy(), crs=df.crs)


@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    """The extract read with GDAL's default osmconf (not Buque's)."""
    from buque.layers import osm  # noqa: F401  (make sure Buque's config option is not left set)

    pyogrio.set_gdal_config_options({"OSM_CONFIG_FILE": None})
    out = {}
    for layer in ("points", "lines", "multipolygons"):
        out[layer] = tags(pyogrio.read_dataframe(ANDORRA_PBF, layer=layer))
    return out


def ids(df: pd.DataFrame, prefix: str) -> set[str]:
    if "osm_way_id" in df:
        way = df["osm_way_id"]
        return {f"osm:w{w}" if pd.notna(w) else f"osm:r{r}" for w, r in zip(way, df["osm_id"],
                                                                             strict=True)}
    return {f"osm:{prefix}{i}" for i in df["osm_id"]}


def col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df else pd.Series(np.nan, index=df.index, dtype=object)


def select(raw: dict, fn) -> set[str]:
    """Nodes, areas, and closed ways (GDAL's default config leaves e.g. power=substation or
    man_made=* closed ways in the lines layer) whose tags satisfy ``fn``."""
    lines = raw["lines"][raw["lines"].geometry.is_closed]
    return ids(raw["points"][fn(raw["points"])], "n") | ids(
        raw["multipolygons"][fn(raw["multipolygons"])], "w") | ids(lines[fn(lines)], "w")


def test_villages_from_place_village(andorra_layers, raw, stats):
    v = andorra_layers[0]["villages"]
    n_stats = sum(stats["tags"]["place=village"].values())
    assert n_stats == 34 and len(v) == 34
    assert set(v["code"]) == select(raw, lambda d: col(d, "place") == "village")
    assert set(v["name"]) >= set(stats["place_name_samples"]["place=village"])
    assert (v["county"] == "Andorra").all()


def test_natural_villages_from_hamlets_and_isolated_dwellings(andorra_layers, raw, stats):
    n = andorra_layers[0]["natural_villages"]
    want = sum(stats["tags"]["place=hamlet"].values()) + \
        sum(stats["tags"]["place=isolated_dwelling"].values())
    assert want == 34 and len(n) == want
    expected = select(raw, lambda d: col(d, "place").isin(["hamlet", "isolated_dwelling"]))
    assert set(n["code"]) == expected
    # all points; a hamlet mapped as an area stands at a point inside that area
    assert set(n.geom_type) == {"Point"}
    areas = raw["multipolygons"][col(raw["multipolygons"], "place") == "hamlet"]
    assert len(areas) == stats["tags"]["place=hamlet"].get("way", 0) == 2
    by_code = n.set_index("code").geometry
    for w, poly in zip(areas["osm_way_id"], areas.geometry, strict=True):
        assert poly.contains(by_code[f"osm:w{w}"])
    assert set(n["name"]) >= set(stats["place_name_samples"]["place=isolated_dwelling"])


def test_roads_motorable_with_surface(andorra_layers, raw, stats):
    r = andorra_layers[0]["roads"].set_index("id")
    lines = raw["lines"][col(raw["lines"], "highway").isin(MOTORABLE)]
    top = stats["highway_ways_top"]
    in_top = sum(c for k, c in top.items() if k in MOTORABLE)
    not_in_top = stats["highway_ways_total"] - sum(top.values())
    assert in_top <= len(r) <= in_top + not_in_top
    assert set(r.index) == ids(lines, "w")
    assert set(r.geom_type) <= {"LineString", "MultiLineString"}
    # surface and class carried over verbatim
    want = col(lines, "surface").set_axis([f"osm:w{i}" for i in lines["osm_id"]])
    got = r["surface"].reindex(want.index)
    assert (got.fillna("-") == want.fillna("-").astype(str)).all()
    assert (r["highway"].reindex(want.index).to_numpy() == lines["highway"].to_numpy()).all()
    assert (r["surface"] == "asphalt").sum() > 1000
    # footways, paths, steps are not roads
    assert not r["highway"].isin(["path", "footway", "steps", "pedestrian", "cycleway"]).any()


def test_power_lines_and_substations(andorra_layers, raw, stats):
    p = andorra_layers[0]["power"]
    t = stats["tags"]
    assert len(p) == t["power=line"]["way"] + t["power=minor_line"]["way"] + \
        t["power=substation"]["way"] == 24
    lines = raw["lines"][col(raw["lines"], "power").isin(["line", "minor_line", "cable"])]
    subst = select(raw, lambda d: col(d, "power").isin(["transformer", "substation"]))
    assert set(p["id"]) == ids(lines, "w") | subst
    assert p["kind"].value_counts().to_dict() == {"line": 19, "substation": 3, "minor_line": 2}
    # towers and poles are not evidence of supply
    assert not p["kind"].isin(["tower", "pole"]).any()


def test_clinics(andorra_layers, raw):
    c = andorra_layers[0]["clinics"]
    want = select(raw, lambda d: col(d, "amenity").isin(["clinic", "doctors", "hospital"])
                  | col(d, "healthcare").isin(["clinic", "doctor", "hospital", "centre"]))
    assert set(c["id"]) == want
    assert c["standardized"].isna().all()          # OSM does not record it: never guessed
    pharmacies = select(raw, lambda d: col(d, "amenity") == "pharmacy")
    assert not pharmacies & set(c["id"])


def test_water(andorra_layers, raw, stats):
    w = andorra_layers[0]["water"].set_index("id")
    want = select(raw, lambda d: col(d, "man_made").isin(["water_well", "water_tap",
                                                           "water_works", "water_tower"])
                  | col(d, "amenity").isin(["drinking_water", "water_point"]))
    assert set(w.index) == want
    t = stats["tags"]
    assert len(w) <= t["amenity=drinking_water"]["node"] + t["amenity=water_point"]["node"] + \
        t["man_made=water_tap"]["node"]
    # safe only where drinking_water=yes/no says so
    pts = raw["points"].assign(id=[f"osm:n{i}" for i in raw["points"]["osm_id"]]).set_index("id")
    dw = col(pts, "drinking_water").reindex(w.index)
    assert (w.loc[dw == "yes", "safe"] == True).all()            # noqa: E712
    assert (w.loc[dw == "no", "safe"] == False).all()            # noqa: E712
    assert w.loc[dw.isna(), "safe"].isna().all()
    springs = select(raw, lambda d: col(d, "natural") == "spring")
    assert not springs & set(w.index)


def test_broadband(andorra_layers, raw):
    b = andorra_layers[0]["broadband"]

    def sel(d):
        tower = col(d, "man_made").isin(["mast", "tower", "communications_tower"])
        comm = col(d, "tower:type").isin(["communication", "telecommunication"])
        return (tower & comm) | col(d, "communication:mobile_phone").notna() | \
            (col(d, "man_made") == "communications_tower")

    assert set(b["id"]) == select(raw, sel) and len(b) > 0
    assert b["radius_m"].isna().all()               # the profile's default radius applies


def test_townships_from_admin_level_7(andorra_layers, raw):
    v = andorra_layers[0]["villages"]
    mp = raw["multipolygons"]
    parishes = mp[(col(mp, "boundary") == "administrative") & (col(mp, "admin_level") == "7")]
    assert len(parishes) == 7
    for row in v.itertuples():
        inside = parishes[parishes.contains(row.geometry)]
        want = inside["name"].iloc[0] if len(inside) else None
        assert (row.township if pd.notna(row.township) else None) == want, row.code
    assert v["township"].notna().mean() > 0.9


def test_no_rows_lost_in_derivation(andorra_layers):
    layers, report = andorra_layers
    assert report.rejected_frame().empty
    for kind, g in layers.items():
        assert g.crs.to_epsg() == 4326, kind
        assert shapely.is_valid(g.geometry.to_numpy()).all(), kind
        assert g["id" if "id" in g else "code"].is_unique, kind


def test_demo_run_manifest_and_attribution(andorra_run):
    m = andorra_run.manifest
    assert m["counts"]["villages_in"] == 68
    assert m["counts"]["by_level"] == {"admin": 34, "natural": 34}
    assert any("OpenStreetMap" in a and "ODbL" in a for a in m["attribution"])
    assert {i["source"] for i in m["inputs"]} == {"osm"}
    import hashlib

    digest = hashlib.sha256(ANDORRA_PBF.read_bytes()).hexdigest()
    assert {i["sha256"] for i in m["inputs"]} == {digest}


def test_cli_demo_no_serve_prints_where_the_outputs_are(andorra_run):
    out = andorra_run.out
    assert out.name.startswith("demo-") and (out / "gaps.parquet").is_file()
    assert str(out.resolve()) in "".join(andorra_run.proc.stdout.split())
