"""Runs written (or removed) while the server runs are served without a restart."""

from __future__ import annotations

import shutil
import time
import warnings

import pytest

from buque.api import store as api_store
from buque.api.app import create_app
from buque.api.settings import Settings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient


@pytest.fixture
def served(runs, tmp_path):
    """A folder being served that holds run a (as ``a``)."""
    folder = tmp_path / "served"
    folder.mkdir()
    shutil.copytree(runs.a, folder / "a")
    return folder


def test_new_and_removed_runs_are_picked_up(runs, served, monkeypatch) -> None:
    folder = served
    with TestClient(create_app(Settings(data=folder))) as c:
        first = c.get("/runs").json()
        assert [r["run_id"] for r in first["runs"]] == [runs.a_id]
        shutil.copytree(runs.b, folder / "b")  # a later run arrives
        # within the refresh interval nothing is looked at again...
        monkeypatch.setattr(api_store, "REFRESH_S", 3600.0)
        assert c.get("/runs").json()["newest"] == runs.a_id
        # ...after it, the new run is served, and is the newest (the default)
        monkeypatch.setattr(api_store, "REFRESH_S", 0.0)
        got = c.get("/runs").json()
        assert [r["run_id"] for r in got["runs"]] == [runs.b_id, runs.a_id]
        assert got["newest"] == runs.b_id
        r = c.get("/collections/villages/items", params={"limit": 1})
        assert r.status_code == 200
        assert c.get("/collections/villages/items",
                     params={"run": runs.b_id, "limit": 1}).status_code == 200
        # a removed run is no longer served
        shutil.rmtree(folder / "a")
        assert [x["run_id"] for x in c.get("/runs").json()["runs"]] == [runs.b_id]
        gone = c.get("/collections/villages/items", params={"run": runs.a_id, "limit": 1})
        assert gone.status_code == 404
        assert gone.headers["content-type"].startswith("application/problem+json")


def test_an_unknown_run_id_looks_again(runs, served, monkeypatch) -> None:
    folder = served
    monkeypatch.setattr(api_store, "REFRESH_S", 3600.0)
    with TestClient(create_app(Settings(data=folder))) as c:
        assert c.get("/summary", params={"run": runs.b_id}).status_code == 404
        shutil.copytree(runs.b, folder / "b")
        time.sleep(1.1)  # an unknown id triggers a look at most once a second
        assert c.get("/summary", params={"run": runs.b_id}).status_code == 200


def test_a_run_replaced_in_place_is_reloaded(runs, tmp_path, monkeypatch) -> None:
    """``buque run`` into the same folder again: the old id goes, the new one is served."""
    folder = tmp_path / "served"
    folder.mkdir()
    shutil.copytree(runs.a, folder / "r")
    monkeypatch.setattr(api_store, "REFRESH_S", 0.0)
    with TestClient(create_app(Settings(data=folder))) as c:
        assert c.get("/runs").json()["newest"] == runs.a_id
        shutil.rmtree(folder / "r")
        shutil.copytree(runs.b, folder / "r")
        got = c.get("/runs").json()
        assert [x["run_id"] for x in got["runs"]] == [runs.b_id]
        items = c.get("/collections/villages/items", params={"limit": 1}).json()
        assert items["numberMatched"] > 0


def test_refresh_keeps_serving_when_the_folder_cannot_be_read(runs, served, monkeypatch) -> None:
    monkeypatch.setattr(api_store, "REFRESH_S", 0.0)
    with TestClient(create_app(Settings(data=served))) as c:
        store = c.app.state.store

        def broken():  # noqa: ANN202
            raise OSError("disk went away")
        monkeypatch.setattr(store, "_scan", broken)
        assert [x["run_id"] for x in c.get("/runs").json()["runs"]] == [runs.a_id]
