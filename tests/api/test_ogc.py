"""OGC API - Features core: landing, conformance, collections, items, paging, item by code."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

OAPIF = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"


def rels(doc):
    return {link["rel"]: link for link in doc["links"]}


def test_landing_links(client):
    r = client.get("/")
    assert r.status_code == 200
    links = rels(r.json())
    for rel in ("self", "service-desc", "service-doc", "conformance", "data"):
        assert rel in links, rel
    assert links["service-desc"]["href"].endswith("/openapi.json")
    assert links["service-doc"]["href"].endswith("/docs")
    assert links["data"]["href"].endswith("/collections")
    assert client.get(links["service-desc"]["href"]).json()["openapi"].startswith("3.0")
    assert client.get(links["service-doc"]["href"]).status_code == 200


def test_conformance(client):
    classes = client.get("/conformance").json()["conformsTo"]
    assert {OAPIF + "core", OAPIF + "geojson", OAPIF + "oas30"} <= set(classes)


def test_collections(client, tables):
    doc = client.get("/collections").json()
    ids = [c["id"] for c in doc["collections"]]
    assert ids[0] == "villages"
    # the feature layers archived with the run are collections too
    assert set(ids[1:]) == set(tables.layers)
    v = client.get("/collections/villages").json()
    assert v["itemType"] == "feature"
    minx, miny, maxx, maxy = v["extent"]["spatial"]["bbox"][0]
    b = tables.villages.total_bounds
    assert (minx, miny, maxx, maxy) == tuple(float(x) for x in b)
    items = [link for link in v["links"] if link["rel"] == "items"]
    assert {link["type"] for link in items} >= {"application/geo+json", "text/csv"}


def test_items_default_page(client, tables):
    r = client.get("/collections/villages/items")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    n = len(tables.villages)
    assert fc["type"] == "FeatureCollection"
    assert fc["numberMatched"] == n
    assert fc["numberReturned"] == len(fc["features"]) == min(n, 100)
    assert fc["timeStamp"].endswith("Z")
    f = fc["features"][0]
    assert f["id"] == f["properties"]["code"]
    for key in ("code", "name", "level", "county", "township", "population", "households",
                "poor", "exit_year", "road", "road_distance_m", "water", "water_distance_m",
                "missing", "n_missing"):
        assert key in f["properties"], key
    assert {x["properties"]["level"] for x in fc["features"]} == {"admin", "natural"}


def test_paging_next_prev_cover_everything(demo_run, tables, make_client):
    with make_client(demo_run, max_limit=9, default_limit=4) as c:
        url, seen, pages = "/collections/villages/items?limit=50", [], 0
        while url:
            fc = c.get(url).json()
            assert fc["numberReturned"] <= 9          # the cap
            seen += [f["id"] for f in fc["features"]]
            links = rels(fc)
            if pages:
                assert "prev" in links
            url = links.get("next", {}).get("href")
            pages += 1
        assert len(seen) == len(set(seen)) == len(tables.villages)
        assert set(seen) == set(tables.villages["code"])
        assert pages == -(-len(tables.villages) // 9)
        # prev from the second page goes back to offset 0
        fc = c.get("/collections/villages/items?limit=9&offset=9").json()
        prev = rels(fc)["prev"]["href"]
        assert "offset" not in parse_qs(urlparse(prev).query)


def test_offset_beyond_end(client, tables):
    fc = client.get(f"/collections/villages/items?offset={len(tables.villages) + 5}").json()
    assert fc["numberReturned"] == 0 and fc["features"] == []
    assert "next" not in rels(fc)


def test_item_by_code(client, tables):
    code = str(tables.villages["code"].iloc[3])
    r = client.get(f"/collections/villages/items/{code}")
    assert r.status_code == 200
    f = r.json()
    assert f["type"] == "Feature" and f["id"] == code
    assert f["geometry"]["type"] in ("Point", "Polygon", "MultiPolygon")
    r = client.get("/collections/villages/items/no-such-code")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


def test_input_layer_collection(client, tables):
    kind = sorted(tables.layers)[0]
    fc = client.get(f"/collections/{kind}/items?limit=3").json()
    assert fc["numberMatched"] == len(tables.layers[kind])
    assert fc["numberReturned"] == 3
    fid = fc["features"][0]["id"]
    f = client.get(f"/collections/{kind}/items/{fid}").json()
    assert f["id"] == fid
    assert client.get("/collections/nope").status_code == 404
    assert client.get("/collections/nope/items").status_code == 404


def test_queryables_and_schemas(client):
    q = client.get("/collections/villages/queryables")
    assert q.headers["content-type"].startswith("application/schema+json")
    assert {"county", "township", "level", "poor"} <= set(q.json()["properties"])
    s = client.get("/collections/villages/schema").json()["properties"]
    assert s["population"]["type"] == "integer" and s["poor"]["type"] == "boolean"
    assert s["road_distance_m"]["type"] == "number"
    fs = client.get("/collections/villages/feature-schema").json()
    assert fs["properties"]["properties"]["properties"]["code"]["type"] == "string"


def test_docs_work_offline(client):
    """/docs loads Swagger UI from this server only (swagger-ui-bundle is a dependency)."""
    html = client.get("/docs").text
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(u.startswith("/") for u in refs), refs
    assert "jsdelivr" not in html
    for u in refs:
        assert client.get(u).status_code == 200, u


def test_runs_without_archived_layers_reread_their_inputs(demo_run, tables, tmp_path, make_client):
    """Older runs kept no layers/: an input layer is re-read from the source the manifest
    names, only while its SHA-256 still matches; otherwise 410 Gone."""
    import json
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(demo_run, old)
    shutil.rmtree(old / "layers")
    man = json.loads((old / "manifest.json").read_text("utf-8"))
    for i in man["inputs"]:
        if i["layer"] == "roads":
            i["sha256"] = "0" * 64          # as if the extract had changed since the run
    (old / "manifest.json").write_text(json.dumps(man), "utf-8")
    with make_client(old) as c:
        ids = [x["id"] for x in c.get("/collections").json()["collections"]]
        assert {"roads", "power"} <= set(ids)
        fc = c.get("/collections/power/items?limit=1000").json()
        assert fc["numberMatched"] == len(tables.layers["power"])
        r = c.get("/collections/roads/items")
        assert r.status_code == 410
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "changed since the run" in r.json()["detail"]
