"""Several runs: /runs, /runs/{id}, run= on any endpoint, and /runs/{a}/diff/{b}."""

from __future__ import annotations

import io

import pandas as pd
import pytest


def test_runs_list_newest_first(folder_client, runs):
    body = folder_client.get("/runs").json()
    assert body["newest"] == runs.b_id
    assert [r["run_id"] for r in body["runs"]] == [runs.b_id, runs.a_id]
    assert body["runs"][0]["newest"] is True


def test_run_manifest(folder_client, runs):
    m = folder_client.get(f"/runs/{runs.a_id}").json()
    assert m["run_id"] == runs.a_id and "inputs" in m and "counts" in m
    r = folder_client.get("/runs/20990101T000000Z-nothere")
    assert r.status_code == 404
    assert runs.a_id in r.json()["detail"]       # names the runs that exist


def test_newest_by_default_and_run_param(folder_client, runs):
    """b differs from a (see conftest): the road regression is only in b's villages."""
    regressed = next(iter(runs.expected["road"]["regressed"]))
    newest = folder_client.get("/collections/villages/items?missing=road&limit=1000").json()
    assert newest["run"] == runs.b_id
    assert regressed in {f["id"] for f in newest["features"]}
    older = folder_client.get(f"/collections/villages/items?missing=road&limit=1000&run={runs.a_id}")
    assert older.json()["run"] == runs.a_id
    assert regressed not in {f["id"] for f in older.json()["features"]}
    # next links carry run=
    nxt = folder_client.get(f"/collections/villages/items?limit=2&run={runs.a_id}").json()
    assert f"run={runs.a_id}" in next(x["href"] for x in nxt["links"] if x["rel"] == "next")
    assert folder_client.get(f"/summary?run={runs.a_id}").json()["run"] == runs.a_id


@pytest.mark.parametrize("bad", ["../a", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "a/", "./b",
                                 "manifest.json", "%00", "runs/a", "runs"])
def test_run_param_never_reaches_the_file_system(folder_client, bad):
    """Only the run ids of the manifests and the names of the run folders found (looked up in
    what was scanned, not on disk) are accepted, never a path."""
    for url in (f"/collections/villages/items?run={bad}", f"/summary?run={bad}",
                f"/projects?run={bad}", f"/collections?run={bad}"):
        r = folder_client.get(url)
        assert r.status_code == 404, (url, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json")


def test_diff_categories_are_exact(folder_client, runs):
    d = folder_client.get(f"/runs/{runs.a_id}/diff/{runs.b_id}").json()
    assert d["a"] == runs.a_id and d["b"] == runs.b_id
    for ind, changes in runs.expected.items():
        for change, want in changes.items():
            got = d["changes"][ind][change]
            codes = {x["code"] if isinstance(x, dict) else x for x in got}
            assert codes == want, (ind, change)
            assert d["counts"][ind][change] == len(want)
    (clinic,) = d["changes"]["clinic"]["changed"]
    assert (clinic["from"], clinic["to"]) == ("unknown", "missing")


def test_diff_reverse_and_latest(folder_client, runs):
    d = folder_client.get(f"/runs/{runs.b_id}/diff/{runs.a_id}").json()
    assert set(d["changes"]["water"]["regressed"]) == runs.expected["water"]["fixed"]
    gone = next(iter(runs.expected["road"]["removed"]))
    assert gone in d["changes"]["road"]["newly_assessed"]
    d2 = folder_client.get(f"/runs/{runs.a_id}/diff/latest").json()
    assert d2["b"] == runs.b_id


def test_diff_filters_and_csv(folder_client, runs):
    d = folder_client.get(f"/runs/{runs.a_id}/diff/{runs.b_id}?change=regressed").json()
    assert d["numberReturned"] == 1
    r = folder_client.get(f"/runs/{runs.a_id}/diff/{runs.b_id}?f=csv&indicator=water")
    df = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig")
    assert set(df["village_code"]) == runs.expected["water"]["fixed"]
    assert set(df["change"]) == {"fixed"} and df["name"].notna().all()
    assert folder_client.get(f"/runs/{runs.a_id}/diff/{runs.b_id}?change=worse").status_code == 400
    assert folder_client.get(f"/runs/{runs.a_id}/diff/nope").status_code == 404


def test_diff_function_directly(runs):
    from buque.geo.archive import read_run
    from buque.geo.diff import diff_counts, diff_gaps

    a, b = read_run(runs.a).gaps, read_run(runs.b).gaps
    d = diff_gaps(a, b)
    counts = diff_counts(d, ["road", "water"])
    assert counts["road"]["regressed"] == 1 and counts["water"]["fixed"] == 2
    assert diff_gaps(a, a).empty


def test_empty_folder(tmp_path, make_client):
    with make_client(tmp_path) as c:
        assert c.get("/runs").json()["runs"] == []
        r = c.get("/collections/villages/items")
        assert r.status_code == 404 and r.json()["type"].endswith("/no-run")
        assert c.get("/openapi.json").status_code == 200
        assert c.get("/").status_code == 200


def test_older_runs_load_on_first_use(runs, make_client):
    with make_client(runs.folder) as c:
        store = c.app.state.store
        assert set(store._runs) == {runs.b_id}          # only the newest at start-up
        assert c.get(f"/summary?run={runs.a_id}").status_code == 200
        assert set(store._runs) == {runs.a_id, runs.b_id}
    with make_client(runs.folder, preload="all") as c:
        assert set(c.app.state.store._runs) == {runs.a_id, runs.b_id}


def test_app_without_lifespan_loads_on_first_request(demo_run):
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2.*")
        from fastapi.testclient import TestClient
    from buque.api.app import create_app
    from buque.api.settings import Settings

    c = TestClient(create_app(Settings(data=demo_run)))     # not entered: no lifespan
    assert c.get("/collections/villages/items?limit=1").json()["numberReturned"] == 1


def test_a_run_is_named_by_its_folder_as_well_as_its_id(folder_client, runs):
    """`/runs/a/diff/b` with the folders' names, as a county office sees them on disk."""
    listed = {r["run_id"]: r["folder"] for r in folder_client.get("/runs").json()["runs"]}
    assert listed == {runs.a_id: runs.a.name, runs.b_id: runs.b.name}
    by_name = folder_client.get(f"/runs/{runs.a.name}/diff/{runs.b.name}")
    assert by_name.status_code == 200, by_name.text
    by_id = folder_client.get(f"/runs/{runs.a_id}/diff/{runs.b_id}").json()
    assert by_name.json()["a"] == runs.a_id and by_name.json()["counts"] == by_id["counts"]
    m = folder_client.get(f"/runs/{runs.a.name}")
    assert m.status_code == 200 and m.json()["run_id"] == runs.a_id
    items = folder_client.get(f"/collections/villages/items?limit=1&run={runs.a.name}")
    assert items.status_code == 200 and items.json()["run"] == runs.a_id
    assert folder_client.get("/runs/nosuchfolder").status_code == 404
