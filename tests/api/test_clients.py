"""Real clients against a live server (uvicorn on loopback, page cap 7 so they must page):
GDAL's OAPIF driver (bundled with pyogrio) and OWSLib."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import numpy as np
import pyogrio
import pytest
import shapely


def _missing(tables, indicators) -> set[str]:
    g = tables.gaps
    m = g["indicator"].isin(list(indicators)) & (g["status"] == "missing")
    return set(g.loc[m, "village_code"].astype(str))


def test_gdal_oapif_reads_every_village(live, tables):
    assert len(tables.villages) > live.max_limit * 3
    layers = pyogrio.list_layers(f"OAPIF:{live.url}/")
    assert "villages" in layers[:, 0]
    df = pyogrio.read_dataframe(f"OAPIF:{live.url}/", layer="villages")
    v = tables.villages.set_index("code")
    assert len(df) == len(v) and df["code"].is_unique
    assert set(df["code"]) == set(v.index)
    df = df.set_index("code").loc[v.index]
    # values and geometry survive the trip
    assert (df["level"] == v["level"]).all()
    assert (df["missing"].fillna("") == v["missing"].fillna("")).all()
    np.testing.assert_allclose(df["road_distance_m"].to_numpy(float),
                               v["road_distance_m"].to_numpy(float), rtol=1e-9)
    assert shapely.equals_exact(df.geometry.values, v.geometry.values, tolerance=1e-9).all()
    # field types come from the published schema, not guessed from one page
    info = pyogrio.read_info(f"OAPIF:{live.url}/", layer="villages")
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert types["n_missing"].startswith("int") and types["road_distance_m"] == "float64"


def test_gdal_oapif_bbox(live, tables):
    v = tables.villages
    x0, y0, x1, y1 = (float(x) for x in v.total_bounds)
    box = (x0, y0, (x0 + x1) / 2, (y0 + y1) / 2)
    df = pyogrio.read_dataframe(f"OAPIF:{live.url}/", layer="villages", bbox=box)
    assert set(df["code"]) == set(v.loc[v.intersects(shapely.box(*box)), "code"])


def test_gdal_oapif_reads_an_input_layer(live, tables):
    kind = "power" if "power" in tables.layers else sorted(tables.layers)[0]
    df = pyogrio.read_dataframe(f"OAPIF:{live.url}/", layer=kind)
    assert len(df) == len(tables.layers[kind])


def _all_items(features, collection: str, **params):
    """Follow the ``next`` links through OWSLib until the last page."""
    out, pages = [], 0
    while True:
        page = features.collection_items(collection, **params)
        out += page["features"]
        pages += 1
        nxt = [link for link in page["links"] if link["rel"] == "next"]
        if not nxt:
            return out, page, pages
        params = {k: v[0] for k, v in parse_qs(urlparse(nxt[0]["href"]).query).items()}


def test_owslib_pages_through_the_collection(live, tables):
    from owslib.ogcapi.features import Features

    w = Features(live.url + "/")
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in \
        w.conformance()["conformsTo"]
    assert "villages" in [c["id"] for c in w.collections()["collections"]]
    assert w.collection("villages")["itemType"] == "feature"
    feats, last, pages = _all_items(w, "villages", limit=100)   # 100 is capped to 7
    assert pages == -(-len(tables.villages) // live.max_limit)
    assert [f["id"] for f in feats] == list(tables.villages["code"])
    assert last["numberMatched"] == len(tables.villages)
    one = w.collection_item("villages", feats[0]["id"])
    assert one["properties"] == feats[0]["properties"]


@pytest.mark.parametrize("missing", ["road", "water,power", "clinic,broadband"])
def test_owslib_missing_filter_is_exact(live, tables, missing):
    from owslib.ogcapi.features import Features

    w = Features(live.url + "/")
    feats, last, _ = _all_items(w, "villages", missing=missing)
    got = {f["id"] for f in feats}
    assert got == _missing(tables, missing.split(","))
    assert last["numberMatched"] == len(got)


def test_gdal_with_an_api_key(live_keyed, tables):
    """GDAL sends the key as a bearer token (GDAL_HTTP_AUTH=BEARER), which the API accepts."""
    url = f"OAPIF:{live_keyed}/"
    with pytest.raises(pyogrio.errors.DataSourceError, match="401"):
        pyogrio.read_dataframe(url, layer="villages")
    pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": "v-key"})
    try:
        df = pyogrio.read_dataframe(url, layer="villages")
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": None, "GDAL_HTTP_BEARER": None})
    assert set(df["code"]) == set(tables.villages["code"])


def test_owslib_with_an_api_key(live_keyed, tables):
    from owslib.ogcapi.features import Features

    w = Features(live_keyed + "/", headers={"X-API-Key": "v-key"})
    feats, last, _ = _all_items(w, "villages", missing="water")
    assert {f["id"] for f in feats} == _missing(tables, ["water"])


def test_gdal_pushes_queryable_filters_to_the_server(live, tables):
    """GDAL turns `where` on queryables (county, township, level, ...) into query parameters;
    other conditions it evaluates itself. Both give the run's answer."""
    v = tables.villages
    town = v["township"].dropna().value_counts().index[0]
    df = pyogrio.read_dataframe(f"OAPIF:{live.url}/", layer="villages",
                                where=f"level = 'natural' AND township = '{town}'")
    assert set(df["code"]) == set(v.loc[(v["level"] == "natural") & (v["township"] == town), "code"])
    df = pyogrio.read_dataframe(f"OAPIF:{live.url}/", layer="villages", where="n_missing >= 2")
    assert set(df["code"]) == set(v.loc[v["n_missing"] >= 2, "code"])
