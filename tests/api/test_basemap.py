"""An office's own basemap (``buque serve --basemap FILE``): PMTiles (raster, vector) and MBTiles
read tile for tile as the test wrote them, drawn under the gap layers in a real headless
Chromium, hidden by its toggle."""

from __future__ import annotations

import gzip
import io
import json
import math
import sqlite3
from pathlib import Path

import mapbox_vector_tile
import pytest
from conftest import serve
from PIL import Image, PngImagePlugin
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import write
from test_map_browser import ARGS, CHROMIUM

from buque.geo.basemap import BasemapError, open_basemap

MAGENTA = (250, 0, 250)


def _tile_range(bounds, z):
    lon0, lat0, lon1, lat1 = bounds
    n = 2 ** z

    def xy(lon, lat):
        x = int((lon + 180) / 360 * n)
        y = int((1 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat)))
                 / math.pi) / 2 * n)
        return min(x, n - 1), min(y, n - 1)

    (x0, y1), (x1, y0) = xy(lon0, lat0), xy(lon1, lat1)
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def _png(z, x, y, colour=MAGENTA) -> bytes:
    """A one-colour 256 px tile; its text chunk names it, so every tile's bytes differ."""
    info = PngImagePlugin.PngInfo()
    info.add_text("tile", f"{z}/{x}/{y}")
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), colour).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _bounds(tables):
    v = tables.villages
    pad = 0.3
    return (float(v["ref_lon"].min()) - pad, float(v["ref_lat"].min()) - pad,
            float(v["ref_lon"].max()) + pad, float(v["ref_lat"].max()) + pad)


def write_pmtiles(path: Path, tiles: dict[tuple[int, int, int], bytes], tile_type: TileType,
                  bounds, compression=Compression.NONE, metadata=None) -> None:
    with write(str(path)) as w:
        for (z, x, y), body in sorted(tiles.items(), key=lambda t: zxy_to_tileid(*t[0])):
            w.write_tile(zxy_to_tileid(z, x, y), body)
        w.finalize({"tile_type": tile_type, "tile_compression": compression,
                    "min_lon_e7": int(bounds[0] * 1e7), "min_lat_e7": int(bounds[1] * 1e7),
                    "max_lon_e7": int(bounds[2] * 1e7), "max_lat_e7": int(bounds[3] * 1e7),
                    "center_zoom": 8, "center_lon_e7": int((bounds[0] + bounds[2]) / 2 * 1e7),
                    "center_lat_e7": int((bounds[1] + bounds[3]) / 2 * 1e7)},
                   metadata or {"name": "test raster", "attribution": "测试底图 © test"})


@pytest.fixture(scope="module")
def raster(tmp_path_factory, tables):
    """A raster PMTiles over the demo area, zooms 0-12: every tile magenta, each its own bytes."""
    b = _bounds(tables)
    tiles = {(z, x, y): _png(z, x, y) for z in range(0, 13) for x, y in _tile_range(b, z)}
    path = tmp_path_factory.mktemp("basemap") / "office.pmtiles"
    write_pmtiles(path, tiles, TileType.PNG, b)
    return path, tiles


def test_pmtiles_tiles_as_written(raster, demo_run, make_client):
    path, tiles = raster
    with make_client(demo_run, basemap=path) as c:
        tj = c.get("/basemap.json").json()
        assert tj["minzoom"] == 0 and tj["maxzoom"] == 12 and tj["format"] == "png"
        assert tj["attribution"] == "测试底图 © test"
        for (z, x, y), body in list(tiles.items())[::7]:
            r = c.get(f"/basemap/{z}/{x}/{y}.png")
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            assert r.content == body
        x, y = min((x, y) for (z, x, y) in tiles if z == 12)
        assert c.get(f"/basemap/12/{x + 50}/{y}.png").status_code == 204  # not in the archive
        assert c.get("/basemap/3/1/1.jpg").status_code == 404             # another format
        assert c.get("/basemap/3/8/1.png").status_code == 404             # off the grid
        style = c.get("/styles/gaps.json").json()
        ids = [lyr["id"] for lyr in style["layers"]]
        assert ids[:2] == ["background", "basemap"] and len(ids) > 3      # under the gaps
        assert style["sources"]["basemap"]["tileSize"] == 256
        assert c.get("/map/config.json").json()["basemap"]["style_layers"] == ["basemap"]


def test_no_basemap(client):
    assert client.get("/map/config.json").json()["basemap"] is None
    assert client.get("/basemap.json").status_code == 404
    style = client.get("/styles/gaps.json").json()
    assert "basemap" not in style["sources"]


def test_mbtiles_rows_are_flipped(tmp_path, demo_run, make_client):
    path = tmp_path / "office.mbtiles"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    db.execute("CREATE TABLE tiles (zoom_level INT, tile_column INT, tile_row INT, tile_data BLOB)")
    db.executemany("INSERT INTO metadata VALUES (?, ?)",
                   [("name", "m"), ("format", "jpg"), ("minzoom", "2"), ("maxzoom", "3"),
                    ("attribution", "天地图 test")])
    jpgs = {}
    for z, x, y in [(2, 1, 0), (2, 2, 3), (3, 5, 2)]:
        buf = io.BytesIO()
        Image.new("RGB", (256, 256), (x * 40, y * 40, z * 40)).save(buf, "JPEG")
        jpgs[(z, x, y)] = buf.getvalue()
        db.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, 2 ** z - 1 - y, buf.getvalue()))
    db.commit()
    db.close()
    with make_client(demo_run, basemap=path) as c:
        for (z, x, y), body in jpgs.items():
            r = c.get(f"/basemap/{z}/{x}/{y}.jpg")
            assert r.content == body and r.headers["content-type"] == "image/jpeg"
        assert c.get("/basemap/2/1/3.jpg").status_code == 204  # the TMS row of 2/1/0
        assert c.get("/basemap.json").json()["attribution"] == "天地图 test"


def test_vector_pmtiles_gzip(tmp_path, demo_run, make_client):
    b = (1.0, 42.0, 2.0, 43.0)
    mvt = mapbox_vector_tile.encode([{"name": "water", "features": [
        {"geometry": "POLYGON ((0 0, 0 2000, 2000 2000, 2000 0, 0 0))", "properties": {}}]}])
    path = tmp_path / "vector.pmtiles"
    write_pmtiles(path, {(5, 16, 11): gzip.compress(mvt)}, TileType.MVT, b, Compression.GZIP,
                  {"name": "v", "attribution": "a",
                   "vector_layers": [{"id": "water", "fields": {}}]})
    with make_client(demo_run, basemap=path) as c:
        gz = c.get("/basemap/5/16/11.pbf", headers={"Accept-Encoding": "gzip"})
        assert gz.headers["content-encoding"] == "gzip"
        plain = c.get("/basemap/5/16/11.pbf", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert mapbox_vector_tile.decode(plain.content)["water"]["features"]
        style = c.get("/styles/gaps.json").json()
        water = next(lyr for lyr in style["layers"] if lyr["id"] == "basemap-water-fill")
        assert water["source-layer"] == "water" and style["sources"]["basemap"]["type"] == "vector"
    # the HTML export (Leaflet) draws raster basemaps only: a vector one is a clear error
    from buque.geo.report import ExportError, ExportOptions, export

    with pytest.raises(ExportError, match="--basemap.*vector"):
        export(demo_run, tmp_path / "m.html", ExportOptions(fmt="html", basemap=path))


def test_not_a_basemap(tmp_path):
    bad = tmp_path / "x.pmtiles"
    bad.write_bytes(b"hello, world" * 20)
    with pytest.raises(BasemapError, match="x.pmtiles"):
        open_basemap(bad)
    with pytest.raises(BasemapError, match="no such"):
        open_basemap(tmp_path / "missing.pmtiles")


# --------------------------------------------------------------------------- in the browser

def _magenta_share(png: bytes) -> float:
    import numpy as np

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    hit = (a[..., 0] > 200) & (a[..., 1] < 60) & (a[..., 2] > 200)
    return float(hit.mean())


@pytest.fixture(scope="module")
def basemap_url(raster, demo_run):
    yield from serve(demo_run, basemap=str(raster[0]))


def test_basemap_drawn_under_the_gaps_and_toggled(basemap_url):
    from playwright.sync_api import sync_playwright

    url = basemap_url
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (setup.sh installs it)")
    asked: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 800})

        def route(r):
            asked.append(r.request.url)
            r.continue_() if r.request.url.startswith(url) else r.abort()

        pg.route("**/*", route)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(f"{url}/map")
        pg.wait_for_function("() => window.buqueReady === true", timeout=60_000)
        pg.wait_for_function("() => window.buqueMap.loaded() && "
                             "window.buqueMap.areTilesLoaded()", timeout=60_000)
        canvas = pg.locator(".maplibregl-canvas")
        on = _magenta_share(canvas.screenshot())
        assert "测试底图 © test" in pg.inner_text("#attribution")
        # the toggle clicked and the next idle awaited in one step (an idle event fired
        # before the listener is registered would never come again)
        pg.evaluate("""() => new Promise((done) => {
            window.buqueMap.once('idle', done);
            document.getElementById('show-basemap').click();
            window.buqueMap.triggerRepaint();
        })""")
        pg.wait_for_function("() => window.buqueMap.loaded()", timeout=30_000)
        assert not pg.is_checked("#show-basemap")
        off = _magenta_share(canvas.screenshot())
        browser.close()
    assert not errors
    tiles = [u for u in asked if "/basemap/" in u]
    assert tiles and all(u.endswith(".png") for u in tiles)
    assert [u for u in asked if not u.startswith(url)] == []
    assert on > 0.5, on      # the basemap fills most of the map, under the villages
    assert off < 0.01, off   # hidden by its toggle: the plain background again
    assert on < 0.999        # the villages are drawn on top of it (not magenta)


def test_html_export_embeds_the_basemap(raster, demo_run, make_client, tables, tmp_path):
    """/exports/html on a server with a raster basemap: every tile over the map's area, as
    written, embedded; drawn under the villages in Chromium with no network at all."""
    import base64
    import re

    from playwright.sync_api import sync_playwright

    path, tiles = raster
    with make_client(demo_run, basemap=path) as c:
        r = c.get("/exports/html")
    assert r.status_code == 200
    html = r.text
    m = re.search(r"var (\w+)_tiles = (\{.*?\});\n", html)
    assert m, "no embedded basemap"
    embedded = json.loads(m[2])
    b = tuple(tables.villages.total_bounds)
    want = {f"{z}/{x}/{y}" for z in range(0, 13) for x, y in _tile_range(b, z)}
    assert set(embedded) == want
    for k in list(want)[::5]:
        z, x, y = map(int, k.split("/"))
        assert base64.b64decode(embedded[k].split(",", 1)[1]) == tiles[(z, x, y)]
    assert "测试底图 © test" in html
    out = tmp_path / "map.html"
    out.write_text(html, encoding="utf-8")
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1000, "height": 700})

        def route(rq):
            if rq.request.url.startswith(("file:", "data:")):
                rq.continue_()
            else:
                outside.append(rq.request.url)
                rq.abort()

        pg.route("**/*", route)
        pg.goto(out.as_uri())
        pg.wait_for_timeout(2500)
        share = _magenta_share(pg.screenshot())
        browser.close()
    assert outside == []
    assert share > 0.3, share
