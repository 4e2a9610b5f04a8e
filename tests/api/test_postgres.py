"""PostGIS as a store: ``buque publish`` into a real PostgreSQL + PostGIS cluster (started here,
in a temp dir), then the API served from it compared with the API served from the run files.

No database mocks: a machine without PostgreSQL fails these tests (``setup.sh`` installs it).
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import mapbox_vector_tile
import numpy as np
import pandas as pd
import pytest

from buque.api.pgstore import PgRunStore, PgStoreError, publish
from buque.api.settings import Settings
from buque.geo.archive import read_manifest, read_run, write_run

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

from pgtest import throwaway_cluster

from buque.api.app import create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pg():
    """A throwaway PostgreSQL cluster with PostGIS available (bench/pgcluster.py)."""
    yield from throwaway_cluster("buque-test", "the PostGIS store tests")


@pytest.fixture(scope="module")
def dsn(pg, runs) -> str:
    """Both demo runs (a and the derived b) published into schema ``buque``."""
    url = pg.dsn()
    for run in (runs.a, runs.b):
        publish(run, url)
    return url


@pytest.fixture(scope="module")
def pgc(dsn):
    with TestClient(create_app(Settings(postgres=dsn))) as c:
        yield c


def _same(a, b) -> None:
    assert a.status_code == b.status_code, (a.status_code, b.status_code, b.text[:300])
    if a.headers.get("content-type", "").startswith(("application/geo+json", "application/json")):
        ja, jb = a.json(), b.json()
        for j in (ja, jb):
            if isinstance(j, dict):
                j.pop("timeStamp", None)
        assert ja == jb
    elif a.content[:2] == b"PK":  # XLSX: the same cells (the zip holds a creation time)
        ca = _cells(a.content)
        assert ca == _cells(b.content)
        assert any(r[0] in GENERATED for rows in ca.values() for r in rows if r)
    else:
        assert a.content == b.content


def _cells(xlsx: bytes) -> dict[str, list[tuple]]:
    import io

    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(xlsx), read_only=True)
    try:  # the time a ledger was made (to the minute) differs between two requests
        return {ws.title: [(r[0], "<time>", *r[2:]) if r and r[0] in GENERATED else r
                           for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}
    finally:
        wb.close()


GENERATED = ("生成", "Generated")  # the ledger's row that says when it was made


QUERIES = [
    "",
    "missing=road",
    "missing=road,power&limit=5",
    "missing=any&limit=3&offset=4",
    "county=Andorra&township=Escaldes-Engordany",
    "level=natural&limit=4&offset=3",
    "poor=false",                       # no poverty register in the demo: none match
    "bbox=1.45,42.45,1.6,42.6&limit=7&offset=2",
    "indicator=clinic,road&status=unknown,missing",
    "met=water&limit=3",
    "q=a&limit=2&offset=1",
    "missing=road&f=csv",
    "missing=power&f=xlsx&limit=10",
]


def _items_same(pgc, folder_client, runs, query: str) -> None:
    """The village list of both runs, from PostGIS and from the files: the same answer."""
    for run in (runs.a_id, runs.b_id):
        url = f"/collections/villages/items?run={run}&{query}"
        a, b = folder_client.get(url), pgc.get(url)
        _same(a, b)
        assert a.headers.get("OGC-NumberMatched") == b.headers.get("OGC-NumberMatched")


@pytest.mark.parametrize("query", QUERIES)
def test_village_items_same_as_files(pgc, folder_client, runs, query: str) -> None:
    _items_same(pgc, folder_client, runs, query)
    body = pgc.get(f"/collections/villages/items?run={runs.a_id}&{query}")
    if "f=" not in query and "poor" not in query:
        assert body.json()["numberReturned"] > 0, query  # the queries select something


#: every filter alone, several combined, text search with case, accents and LIKE
#: metacharacters, empty results, last pages and beyond, bad values (the same 400 problems)
MORE_QUERIES = [
    "missing=broadband", "met=road", "county=Andorra", "township=Canillo,Encamp",
    "township=Sant%20Julià%20de%20Lòria",
    "level=admin", "poor=true", "exit_year=2020", "indicator=road", "status=unknown",
    "indicator=road&status=met", "q=sant", "q=SANT&limit=3", "q=aubinyà", "q=AUBINYÀ", "q=d’a",
    "q=%25", "q=_", "q=a_b", "q=100%25", "q=%5C", "q=osm:n", "q=n6495438", "q=%20a%20",
    "code=osm:n64954377,osm:n64954382,nope", "code=nope", "county=Nowhere",
    "bbox=1.4,42.4,1.5,42.5", "bbox=1.4,42.4,0,1.5,42.5,10", "bbox=170,40,-170,50",
    "bbox=1.5,42.5,1.5,42.5", "bbox=-200,-100,200,100&limit=2",
    "missing=any&county=Andorra&level=admin&limit=4&offset=2",
    "missing=road,water&met=power", "missing=any,road&q=a&bbox=1.4,42.4,1.8,42.7",
    "missing=any&q=a&bbox=1.45,42.45,1.6,42.6&township=La%20Massana,Ordino",
    "indicator=road,power&status=missing,unknown&township=Canillo&f=csv",
    "level=admin,natural&poor=false&exit_year=2020,2021",
    "missing=any&limit=10&offset=60", "limit=10&offset=68", "limit=5&offset=1000",
    "missing=any&f=csv&limit=3&offset=5", "q=a&f=xlsx",
    "missing=nope", "status=bad", "level=town", "poor=maybe", "exit_year=1800",
    "bbox=1,2,3", "bbox=1,50,2,40", "limit=0", "offset=-1",
]


@pytest.mark.parametrize("query", MORE_QUERIES)
def test_more_village_filters_same_as_files(pgc, folder_client, runs, query: str) -> None:
    _items_same(pgc, folder_client, runs, query)


def test_village_filters_run_in_sql(pgc, folder_client, runs, monkeypatch) -> None:
    """The PostGIS store selects, counts and pages villages in SQL: with the in-memory
    selection disabled its answers are still those of the file-based API."""
    from buque.api.pgstore import PgVillageSelector
    from buque.geo.query import VillageIndex

    queries = ["", "missing=any&limit=3&offset=4", "q=sant&county=Andorra", "code=nope",
               "bbox=1.45,42.45,1.6,42.6&f=csv", "indicator=road&status=met&limit=2"]
    urls = [f"/collections/villages/items?run={r}&{q}" for r in (runs.a_id, runs.b_id)
            for q in queries]
    expected = [folder_client.get(u) for u in urls]
    store = pgc.app.state.store
    assert all(isinstance(store.get(r).selector, PgVillageSelector) for r in store.ids)
    calls: list[str] = []
    real = PgVillageSelector.select_window

    def counted(self, f, window):  # noqa: ANN001, ANN202
        calls.append(self.run_id)
        return real(self, f, window)

    def boom(self, f):  # noqa: ANN001, ANN202
        raise AssertionError("VillageIndex.select used by the PostGIS store")

    monkeypatch.setattr(VillageIndex, "select", boom)
    monkeypatch.setattr(PgVillageSelector, "select_window", counted)
    for url, a in zip(urls, expected, strict=True):
        _same(a, pgc.get(url))
    assert len(calls) == len(urls)
    with pytest.raises(AssertionError, match="VillageIndex.select"):
        folder_client.get(urls[0])


def test_village_filter_sql_binds_values(pg, dsn) -> None:
    """User values never reach the statement text: they are parameters."""
    from buque.api.pgstore import PgRunStore
    from buque.geo.query import VillageFilter

    store = PgRunStore(dsn)
    try:
        sel = store.get().selector
        hostile = "x'); DROP TABLE buque.villages; --"
        f = VillageFilter.parse(indicators=store.get().data.indicators, county=hostile,
                                q=hostile, code=hostile)
        where, args = sel.where(f)
        with pg.connect() as c:
            text = where.as_string(c)
        assert hostile not in text and "DROP" not in text
        n, pos = sel.select_window(f, lambda n: slice(0, n))
        assert n == 0 and len(pos) == 0
    finally:
        store.close()


def test_old_or_oddly_typed_runs_are_filtered_in_memory(dsn) -> None:
    """No SQL selector where SQL could answer differently: a run published without ``_search``
    or with a status column that is not text."""
    from buque.api.pgstore import PgVillageSelector

    store = PgRunStore(dsn)
    try:
        meta = next(m for m in store._meta[store.newest][0] if m["name"] == "villages")
        assert PgVillageSelector.for_run(store.pool, "buque", store.newest, meta) is not None
        old = {**meta, "extra": [c for c in meta["extra"] if c != "_search"]}
        odd = {**meta, "columns": [[c, "float64" if c == "road" else d]
                                   for c, d in meta["columns"]]}
        for m in (old, odd):
            assert PgVillageSelector.for_run(store.pool, "buque", store.newest, m) is None
    finally:
        store.close()


def _polygon_copy(src: Path, dst: Path) -> Path:
    """The run ``src`` with its villages as polygons (squares of ~1 km around the points), some
    names in Chinese or with LIKE metacharacters and a poverty register (same run id)."""
    import shapely

    t = read_run(src)
    v = t.villages.copy()
    v["geometry"] = shapely.buffer(v.geometry.to_numpy(), 0.01, cap_style="square")
    names = ["石门村", "石门_村", "上%村", "下村\\", "ABC村", "Ça_Va"]
    for i, name in enumerate(names):
        v.loc[i * 7, "name"] = name
    n = len(v)  # a poverty register: poor, not poor, unknown; exit years 2020, 2021, none
    v["poor"] = pd.array([[True, False, None][i % 3] for i in range(n)], dtype="boolean")
    v["exit_year"] = pd.array([[2020, 2021, None, 2020][i % 4] for i in range(n)], dtype="Int64")
    t.villages = v
    write_run(dst, t, read_manifest(src))
    return dst


@pytest.fixture(scope="module")
def polygons(pg, runs, tmp_path_factory):
    """A file client and a PostGIS client on the polygon copy of run a."""
    run = _polygon_copy(runs.a, tmp_path_factory.mktemp("poly") / "runs" / "p")
    publish(run, pg.dsn(), schema="poly")
    with TestClient(create_app(Settings(data=run))) as files, \
            TestClient(create_app(Settings(postgres=pg.dsn(), pg_schema="poly"))) as pgp:
        yield files, pgp


@pytest.mark.parametrize("query", [
    "bbox=1.5,42.5,1.52,42.52", "bbox=1.497,42.458,1.498,42.459", "bbox=1.4,42.4,1.8,42.7&limit=5",
    "q=石门", "q=石门_", "q=门_村", "q=%25", "q=上%25", "q=_", "q=村&limit=2&offset=1",
    "q=\\", "q=abc", "q=ça_va", "q=ÇA", "q=村&bbox=1.4,42.4,1.8,42.7&missing=any",
    "q=村&f=csv", "q=nothing-like-this", "bbox=1.497,42.458,1.497,42.458",
    "bbox=1.501,42.44,1.6,42.447", "poor=true",
    "poor=false&exit_year=2021", "exit_year=2020,2021&level=admin&limit=3&offset=2",
    "poor=true&missing=any&bbox=1.4,42.4,1.6,42.6&q=a",
])
def test_polygon_villages_and_text_search_same_as_files(polygons, query: str) -> None:
    files, pgp = polygons
    url = f"/collections/villages/items?{query}"
    a, b = files.get(url), pgp.get(url)
    _same(a, b)
    assert a.headers.get("OGC-NumberMatched") == b.headers.get("OGC-NumberMatched")


def test_polygon_search_finds_them(polygons) -> None:
    _, pgp = polygons
    n = {q: pgp.get(f"/collections/villages/items?{q}").json()["numberMatched"]
         for q in ("q=石门", "q=石门_", "q=上%25", "q=_", "q=\\", "q=%25")}
    assert n == {"q=石门": 2, "q=石门_": 1, "q=上%25": 1, "q=_": 2, "q=\\": 1, "q=%25": 1}
    # boxes inside a village's square (off its point), a point in it, one crossing edges
    for box in ("1.497,42.458,1.498,42.459", "1.497,42.458,1.497,42.458"):
        assert pgp.get(f"/collections/villages/items?bbox={box}").json()["numberMatched"] >= 1


def test_paging_walks_the_same_villages(pgc, folder_client) -> None:
    seen = []
    url = "/collections/villages/items?missing=any&limit=9"
    while url:
        a, b = folder_client.get(url), pgc.get(url)
        _same(a, b)
        j = b.json()
        seen += [f["id"] for f in j["features"]]
        nxt = [lk["href"] for lk in j["links"] if lk["rel"] == "next"]
        url = nxt[0].replace("http://testserver", "") if nxt else ""
    assert len(seen) == len(set(seen)) == int(
        folder_client.get("/collections/villages/items?missing=any&limit=1").json()["numberMatched"])


@pytest.mark.parametrize("path", [
    "/summary", "/summary?by=township", "/summary?by=county&indicator=road,water",
    "/projects", "/projects?indicator=road&priority=3", "/projects?f=csv",
    "/runs", "/collections", "/collections/villages",
    "/collections/roads/items?limit=20&bbox=1.5,42.5,1.55,42.55",
    "/collections/clinics/items", "/tiles/villages.json", "/styles/gaps.json",
])
def test_other_routes_same_as_files(pgc, folder_client, runs, path: str) -> None:
    a, b = folder_client.get(path), pgc.get(path)
    if path == "/runs":  # manifests are the same; only where they were read from differs
        assert [r["run_id"] for r in a.json()["runs"]] == [r["run_id"] for r in b.json()["runs"]]
        return
    _same(a, b)


def test_village_by_code_and_diff(pgc, folder_client, runs) -> None:
    code = folder_client.get("/collections/villages/items?limit=1").json()["features"][0]["id"]
    _same(folder_client.get(f"/collections/villages/items/{code}"),
          pgc.get(f"/collections/villages/items/{code}"))
    _same(folder_client.get(f"/runs/{runs.a_id}"), pgc.get(f"/runs/{runs.a_id}"))
    diff = f"/runs/{runs.a_id}/diff/{runs.b_id}"
    _same(folder_client.get(diff), pgc.get(diff))
    assert pgc.get("/collections/villages/items/nope").status_code == 404


def _tiles_with_villages(tables, z: int) -> set[tuple[int, int]]:
    lon = tables.villages["ref_lon"].to_numpy(float)
    lat = np.radians(tables.villages["ref_lat"].to_numpy(float))
    n = 1 << z
    x = np.floor((lon + 180) / 360 * n).astype(int)
    y = np.floor((1 - np.log(np.tan(lat) + 1 / np.cos(lat)) / np.pi) / 2 * n).astype(int)
    return set(zip(x.tolist(), y.tolist(), strict=True))


def _decode(resp) -> dict:
    if resp.status_code == 204:
        return {}
    assert resp.status_code == 200, resp.text[:200]
    raw = resp.content
    if raw[:2] == b"\x1f\x8b":  # a client that did not undo Content-Encoding
        raw = gzip.decompress(raw)
    return mapbox_vector_tile.decode(raw)


@pytest.mark.parametrize("z", [10, 12, 14])
def test_village_tiles_from_postgis_match(pgc, folder_client, tables, z: int) -> None:
    """Each tile holding villages decodes to the same villages with the same properties, at
    (within one tile unit) the same place; headers behave the same."""
    compared = 0
    for x, y in sorted(_tiles_with_villages(tables, z)):
        url = f"/tiles/villages/{z}/{x}/{y}.mvt"
        a, b = folder_client.get(url), pgc.get(url)
        assert a.status_code == b.status_code == 200
        assert a.headers["etag"] == b.headers["etag"]
        assert a.headers["cache-control"] == b.headers["cache-control"]
        ta, tb = _decode(a)["villages"], _decode(b)["villages"]
        assert ta["extent"] == tb["extent"] == 4096
        fa = {f["properties"]["code"]: f for f in ta["features"]}
        fb = {f["properties"]["code"]: f for f in tb["features"]}
        assert set(fa) == set(fb), (z, x, y)
        for code, f in fa.items():
            assert f["properties"] == fb[code]["properties"], code
            assert f["id"] == fb[code]["id"]
            pa, pb = f["geometry"]["coordinates"], fb[code]["geometry"]["coordinates"]
            assert abs(pa[0] - pb[0]) <= 1 and abs(pa[1] - pb[1]) <= 1, (code, pa, pb)
        compared += len(fa)
        r304 = pgc.get(url, headers={"If-None-Match": b.headers["etag"]})
        assert r304.status_code == 304
    assert compared >= len(tables.villages)  # every village drawn at these zooms


def test_empty_tiles_and_other_layers(pgc, folder_client, tables) -> None:
    for url in ("/tiles/villages/14/0/0.mvt", "/tiles/villages/17/66000/48000.mvt",
                "/tiles/nolayer/1/0/0.mvt", "/tiles/villages/3/9/0.mvt"):
        a, b = folder_client.get(url), pgc.get(url)
        assert a.status_code == b.status_code, url
    assert pgc.get("/tiles/villages/14/0/0.mvt").status_code == 204
    # the input layers: same features from z10 on (at lower zooms each server thins lines
    # with its own rule, see docs/postgres.md)
    for z in (10, 12):
        for x, y in sorted(_tiles_with_villages(tables, z))[:6]:
            for layer in ("roads", "clinics", "water"):
                url = f"/tiles/{layer}/{z}/{x}/{y}.mvt"
                a, b = folder_client.get(url), pgc.get(url)
                assert a.status_code == b.status_code, url
                ida = {f["properties"]["id"] for f in _decode(a).get(layer, {}).get("features", [])}
                idb = {f["properties"]["id"] for f in _decode(b).get(layer, {}).get("features", [])}
                assert ida == idb, (url, sorted(ida ^ idb)[:5])


def _renamed_copy(src: Path, dst: Path, name: str) -> Path:
    """The run ``src`` written again at ``dst`` with the first village renamed (same run id)."""
    t = read_run(src)
    t.villages = t.villages.copy()
    t.villages.loc[0, "name"] = name
    write_run(dst, t, read_manifest(src))
    return dst


def _first_name(dsn: str, schema: str = "buque") -> tuple[str, int]:
    store = PgRunStore(dsn, schema)
    try:
        v = store.get().data.tables.villages
        return str(v["name"].iloc[0]), len(v)
    finally:
        store.close()


def test_republish_replaces_and_failed_publish_changes_nothing(pg, runs, tmp_path) -> None:
    dsn = pg.dsn()
    schema = "replace_test"
    publish(runs.a, dsn, schema=schema)
    name0, n0 = _first_name(dsn, schema)
    publish(_renamed_copy(runs.a, tmp_path / "a1", "Renamed 1"), dsn, schema=schema)
    assert _first_name(dsn, schema) == ("Renamed 1", n0)       # replaced, not appended

    class Boom(RuntimeError):
        pass

    def fault(step: str) -> None:
        if step == "layer_roads":  # villages, gaps, projects ... are already reloaded by then
            raise Boom(step)

    with pytest.raises(Boom):
        publish(_renamed_copy(runs.a, tmp_path / "a2", "Renamed 2"), dsn, schema=schema,
                fault=fault)
    assert _first_name(dsn, schema) == ("Renamed 1", n0)       # the earlier copy, intact
    with pg.connect() as c:
        rows = c.execute(f"SELECT count(*) FROM {schema}.villages").fetchone()[0]
        roads = c.execute(f"SELECT count(*) FROM {schema}.layer_roads").fetchone()[0]
    assert rows == n0 and roads == len(read_run(runs.a).layers["roads"])
    publish(runs.a, dsn, schema=schema)
    assert _first_name(dsn, schema) == (name0, n0)


def test_indexes_and_minzoom(pg, dsn) -> None:
    with pg.connect() as c:
        idx = {r[0]: r[1] for r in c.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'buque'").fetchall()}
        zooms = c.execute("SELECT count(DISTINCT minzoom), min(minzoom), max(minzoom) "
                          "FROM buque.layer_roads").fetchone()
    for name in ("villages_geom_gist", "villages_tile_geom_gist", "layer_roads_geom_gist"):
        assert "USING gist" in idx[name], name
    assert "(run_id, code)" in idx["villages_run_id_code_idx"]
    assert "(run_id, county, township)" in idx["villages_run_id_county_township_idx"]
    for name in ("villages_run_id_road_idx", "villages_run_id_level_idx",
                 "villages_run_id_poor_idx", "villages_run_id_exit_year_idx"):
        assert name in idx, name
    assert "gin_trgm_ops" in idx["villages_search_trgm"]
    assert zooms[0] > 5 and zooms[1] > 0 and zooms[2] > 12  # roads appear zoom by zoom


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "buque.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_bad_dsn_is_a_one_line_error(runs) -> None:
    bad = "postgresql://nobody@127.0.0.1:1/nothing"
    for args in (["publish", str(runs.a), "--postgres", bad], ["serve", "--postgres", bad]):
        r = _cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "cannot connect to PostgreSQL" in lines[0], r.stderr
        assert "Traceback" not in r.stderr


def test_missing_postgis_says_what_to_run(pg, runs) -> None:
    """A role that may not create the extension is told the command to run."""
    with pg.connect() as c:
        c.execute("CREATE ROLE plain LOGIN")
        c.execute("CREATE DATABASE nopostgis OWNER plain")
    url = f"postgresql://plain@127.0.0.1:{pg.port}/nopostgis"
    # PostGIS is a trusted extension from PostgreSQL 13 on only for superusers; with it not
    # trusted, a database owner cannot create it
    with pytest.raises(PgStoreError, match="CREATE EXTENSION postgis"):
        publish(runs.a, url)
    r = _cli("publish", str(runs.a), "--postgres", url)
    assert r.returncode == 2 and "CREATE EXTENSION postgis" in r.stderr, r.stderr
    with pytest.raises(PgStoreError, match="no Buque runs"):
        PgRunStore(url)


def test_initdb_on_this_machine() -> None:
    """The cluster fixture needs initdb (installed by setup.sh): say so plainly if it is gone."""
    from bench.pgcluster import pg_bindir

    assert (pg_bindir() / "initdb").exists() or shutil.which("initdb")


def test_runs_published_while_serving_are_served(pg, runs, monkeypatch) -> None:
    from buque.api import store as api_store

    monkeypatch.setattr(api_store, "REFRESH_S", 0.0)
    publish(runs.a, pg.dsn(), schema="live")
    with TestClient(create_app(Settings(postgres=pg.dsn(), pg_schema="live"))) as c:
        assert [r["run_id"] for r in c.get("/runs").json()["runs"]] == [runs.a_id]
        publish(runs.b, pg.dsn(), schema="live")
        got = c.get("/runs").json()
        assert [r["run_id"] for r in got["runs"]] == [runs.b_id, runs.a_id]
        assert got["newest"] == runs.b_id
        r = c.get("/collections/villages/items", params={"missing": "any", "limit": 3})
        assert r.status_code == 200 and r.json()["numberMatched"] > 0
