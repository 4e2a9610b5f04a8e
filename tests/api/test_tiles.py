"""Vector tiles of the gap map, decoded with mapbox_vector_tile and checked against the run."""

from __future__ import annotations

import gzip

import mapbox_vector_tile
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

TO_MERC = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
HALF = 20037508.342789244
BUFFER = 64 / 4096  # of a tile's width, as served


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    x, y = TO_MERC.transform(lon, lat)
    size = 2 * HALF / 2**z
    return int((x + HALF) // size), int((HALF - y) // size)


def _decode(resp) -> dict:
    assert resp.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert resp.headers["content-encoding"] == "gzip"
    raw = resp.content
    if raw[:2] == b"\x1f\x8b":  # the test client may hand over the encoded body
        raw = gzip.decompress(raw)
    return mapbox_vector_tile.decode(raw, default_options={"y_coord_down": True})


@pytest.mark.parametrize("z", [10, 12, 14])
def test_villages_in_a_tile_are_exactly_those_inside_it(client, tables, z: int) -> None:
    v = tables.villages
    lon, lat = v["ref_lon"].to_numpy(float), v["ref_lat"].to_numpy(float)
    mx, my = TO_MERC.transform(lon, lat)
    # the tile holding the most villages at this zoom
    tiles = [_tile_of(a, b, z) for a, b in zip(lon, lat, strict=True)]
    x, y = max(set(tiles), key=tiles.count)
    size = 2 * HALF / 2**z
    minx, maxy = -HALF + x * size, HALF - y * size
    pad = BUFFER * size
    inside = ((mx >= minx - pad) & (mx <= minx + size + pad)
              & (my >= maxy - size - pad) & (my <= maxy + pad))
    expected = set(v.loc[inside, "code"])
    r = client.get(f"/tiles/villages/{z}/{x}/{y}.mvt")
    assert r.status_code == 200
    feats = _decode(r)["villages"]["features"]
    got = {f["properties"]["code"] for f in feats}
    assert got == expected and len(feats) == len(expected)
    by_code = v.set_index("code")
    for f in feats:
        p, row = f["properties"], by_code.loc[f["properties"]["code"]]
        assert p.get("name") == (None if pd.isna(row["name"]) else row["name"])
        assert p["level"] == row["level"]
        assert p.get("missing", "") == ("" if pd.isna(row["missing"]) else row["missing"])
        assert p["n_missing"] == row["n_missing"]
        for k in ("road", "water", "power", "clinic", "broadband"):
            assert p.get(k) == (None if pd.isna(row[k]) else row[k])
        # the point sits where the village's reference point is, to within a tile unit
        gx, gy = f["geometry"]["coordinates"]
        ex = (TO_MERC.transform(row["ref_lon"], row["ref_lat"])[0] - minx) / size * 4096
        ey = (maxy - TO_MERC.transform(row["ref_lon"], row["ref_lat"])[1]) / size * 4096
        assert abs(gx - ex) <= 1 and abs(gy - ey) <= 1


def test_roads_tile_carries_evidence(client, tables) -> None:
    roads = tables.layers["roads"]
    c = roads.geometry.iloc[0].representative_point()
    x, y = _tile_of(c.x, c.y, 13)
    r = client.get(f"/tiles/roads/13/{x}/{y}.mvt")
    assert r.status_code == 200
    feats = _decode(r)["roads"]["features"]
    assert feats and all(f["properties"]["evidence_road"] in ("pass", "fail", "unknown") for f in feats)
    ids = set(roads["id"])
    assert all(f["properties"]["id"] in ids for f in feats)


def test_empty_tile_is_204_every_time(client) -> None:
    for _ in range(2):  # cold and cached
        r = client.get("/tiles/villages/12/0/0.mvt")
        assert r.status_code == 204 and r.content == b""


def test_etag_and_cache_headers(client, tables) -> None:
    lon, lat = tables.villages["ref_lon"].iloc[0], tables.villages["ref_lat"].iloc[0]
    x, y = _tile_of(lon, lat, 11)
    r = client.get(f"/tiles/villages/11/{x}/{y}.mvt")
    assert r.status_code == 200 and "max-age" in r.headers["cache-control"]
    etag = r.headers["etag"]
    r2 = client.get(f"/tiles/villages/11/{x}/{y}.mvt", headers={"If-None-Match": etag})
    assert r2.status_code == 304


@pytest.mark.parametrize("path,status", [("/tiles/villages/3/8/0.mvt", 404),
                                         ("/tiles/nosuch/3/1/1.mvt", 404),
                                         ("/tiles/villages/30/1/1.mvt", 400)])
def test_bad_tiles_are_client_errors(client, path: str, status: int) -> None:
    r = client.get(path)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")


def test_tilejson_and_style(client) -> None:
    tj = client.get("/tiles/villages.json").json()
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"][0].split("?")[0].endswith("/tiles/villages/{z}/{x}/{y}.mvt")
    assert tj["vector_layers"][0]["id"] == "villages"
    assert {"code", "missing", "road"} <= set(tj["vector_layers"][0]["fields"])
    lo_lon, lo_lat, hi_lon, hi_lat = tj["bounds"]
    assert 1.2 < lo_lon < hi_lon < 1.9 and 42.3 < lo_lat < hi_lat < 42.8
    assert "OpenStreetMap" in tj["attribution"]
    style = client.get("/styles/gaps.json").json()
    assert style["version"] == 8
    assert {"villages", "roads"} <= set(style["sources"])
    urls = [s["tiles"][0] for s in style["sources"].values()]
    assert all(u.startswith("http://testserver/tiles/") for u in urls)  # served here, no CDN
    assert "glyphs" not in style and "sprite" not in style
    assert np.any([lyr["id"] == "villages" for lyr in style["layers"]])


def test_township_outlines_are_tiled(client, tables) -> None:
    b = tables.layers["boundaries"]
    assert set(b["level"]) == {"township"} and len(b) == 7  # Andorra's seven parishes
    c = b.geometry.iloc[0].boundary.interpolate(0.5, normalized=True)
    x, y = _tile_of(c.x, c.y, 12)
    feats = _decode(client.get(f"/tiles/boundaries/12/{x}/{y}.mvt"))["boundaries"]["features"]
    assert feats and all(f["geometry"]["type"] in ("LineString", "MultiLineString") for f in feats)
    assert b["name"].iloc[0] in {f["properties"]["name"] for f in feats}


def test_tiles_are_gzipped_only_for_clients_that_accept_it(client, tables) -> None:
    """GDAL's and Python's plain clients send no Accept-Encoding: they get the tile as is."""
    lon, lat = tables.villages["ref_lon"].iloc[0], tables.villages["ref_lat"].iloc[0]
    x, y = _tile_of(lon, lat, 11)
    url = f"/tiles/villages/11/{x}/{y}.mvt"
    req = client.build_request("GET", url)
    del req.headers["accept-encoding"]
    plain = client.send(req)
    assert plain.status_code == 200
    assert "content-encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["vary"]
    assert plain.content[:2] != b"\x1f\x8b"
    assert mapbox_vector_tile.decode(plain.content)["villages"]["features"]
    ident = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in ident.headers and ident.content == plain.content
    refused = client.get(url, headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in refused.headers
    gz = client.get(url, headers={"Accept-Encoding": "gzip, deflate"})
    assert gz.headers["content-encoding"] == "gzip" and "Accept-Encoding" in gz.headers["vary"]
    # one ETag per encoding: a cache never answers a plain client with gzip
    assert gz.headers["etag"] != plain.headers["etag"]
    r = client.get(url, headers={"Accept-Encoding": "identity", "If-None-Match": gz.headers["etag"]})
    assert r.status_code == 200 and r.content == plain.content


@pytest.mark.parametrize("header,expected", [(None, False), ("", False), ("identity", False),
                                             ("gzip", True), ("GZIP;q=0.5", True),
                                             ("gzip;q=0", False), ("*", True),
                                             ("*;q=0", False), ("br, x-gzip", True),
                                             ("deflate, *;q=0.1, gzip;q=0", False)])
def test_accepts_gzip(header, expected) -> None:
    from buque.api.routes.tiles import accepts_gzip

    assert accepts_gzip(header) is expected
