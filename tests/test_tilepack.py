"""The offline tile package (PMTiles) holds every gap layer and reads back with pmtiles."""

from __future__ import annotations

import gzip
from pathlib import Path

import mapbox_vector_tile
import pytest
from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import TileType

from buque.geo.archive import read_run
from buque.geo.run import run_project
from buque.geo.tilepack import occupied_tiles, write_pmtiles
from buque.geo.tiles import gap_tile_layers
from buque.layers import __file__ as layers_init

DEMO = Path(layers_init).parent / "demo" / "andorra.toml"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return run_project(DEMO, tmp_path_factory.mktemp("pack") / "run").out


@pytest.fixture(scope="module")
def layers(run):
    t = read_run(run)
    return gap_tile_layers(t.villages, t.layers, ["road", "water", "power", "clinic", "broadband"])


def test_pmtiles_round_trip(layers, tmp_path) -> None:
    out = tmp_path / "gaps.pmtiles"
    counts = write_pmtiles(layers, out, maxzoom=13, attribution="© OpenStreetMap contributors")
    assert counts["tiles"] > 10
    with open(out, "rb") as f:
        r = Reader(MmapSource(f))
        h = r.header()
        assert h["tile_type"] == TileType.MVT and h["min_zoom"] == 0 and h["max_zoom"] == 13
        meta = r.metadata()
        assert {v["id"] for v in meta["vector_layers"]} == set(layers)
        assert "OpenStreetMap" in meta["attribution"]
        # every tile holding villages at z13 is in the archive, with the same features as served
        xy = occupied_tiles(layers["villages"], 13)
        for x, y in xy:
            data = r.get(13, int(x), int(y))
            assert data, (x, y)
            tile = mapbox_vector_tile.decode(gzip.decompress(data))
            served = mapbox_vector_tile.decode(layers["villages"].render(13, int(x), int(y)))
            codes = {f["properties"]["code"] for f in tile["villages"]["features"]}
            assert codes == {f["properties"]["code"] for f in served["villages"]["features"]}
        # the archive has no tile where nothing is
        assert r.get(13, 0, 0) is None


def test_occupied_tiles_cover_every_village(layers) -> None:
    xy = {tuple(t) for t in occupied_tiles(layers["villages"], 12)}
    import shapely
    size = 2 * 20037508.342789244 / 2**12
    for x, y in shapely.get_coordinates(layers["villages"].geoms):
        assert (int((x + 20037508.342789244) // size), int((20037508.342789244 - y) // size)) in xy


def test_cli_exports_pmtiles(tmp_path, run) -> None:
    import subprocess
    import sys

    out = tmp_path / "gaps.pmtiles"
    r = subprocess.run([sys.executable, "-m", "buque.cli", "export", str(run), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        assert Reader(MmapSource(f)).header()["tile_type"] == TileType.MVT
