"""Access: open without keys; with keys, viewer and office roles (X-API-Key or Bearer)."""

from __future__ import annotations

import json

import pytest

from api.settings import Settings

KEYS = {"v-key-123": "viewer", "o-key-456": "office"}


@pytest.fixture(scope="module")
def keyed(runs, make_client):
    with make_client(runs.folder, api_keys=KEYS) as c:
        yield c


def test_open_by_default(client):
    for url in ("/collections/villages/items", "/projects", "/summary", "/runs"):
        assert client.get(url).status_code == 200


def test_discovery_stays_open(keyed):
    for url in ("/", "/conformance", "/openapi.json"):
        assert keyed.get(url).status_code == 200


@pytest.mark.parametrize("url", ["/collections", "/collections/villages/items", "/summary",
                                 "/projects", "/runs"])
def test_key_required(keyed, url):
    r = keyed.get(url)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "X-API-Key" in r.json()["detail"]
    assert keyed.get(url, headers={"X-API-Key": "wrong"}).status_code == 401


def test_roles(keyed, runs):
    viewer = {"X-API-Key": "v-key-123"}
    office = {"Authorization": "Bearer o-key-456"}
    assert keyed.get("/collections/villages/items", headers=viewer).status_code == 200
    assert keyed.get("/summary", headers=viewer).status_code == 200
    assert keyed.get(f"/runs/{runs.a_id}/diff/{runs.b_id}", headers=viewer).status_code == 200
    r = keyed.get("/projects", headers=viewer)
    assert r.status_code == 403 and r.json()["status"] == 403
    assert keyed.get("/projects", headers=office).status_code == 200


def test_viewer_sees_no_server_paths(keyed, runs):
    v = keyed.get(f"/runs/{runs.a_id}", headers={"X-API-Key": "v-key-123"}).json()
    o = keyed.get(f"/runs/{runs.a_id}", headers={"X-API-Key": "o-key-456"}).json()
    assert "/" not in v["project"]["path"] and all("/" not in i["path"] for i in v["inputs"])
    assert o["project"]["path"].startswith("/")


def test_open_loopback_as_viewer(runs, make_client):
    with make_client(runs.folder, api_keys=KEYS, open_loopback=True) as c:
        assert c.get("/collections/villages/items").status_code == 200   # testclient = loopback
        assert c.get("/projects").status_code == 403


def test_openapi_declares_the_key(keyed):
    spec = keyed.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BUQUE_DATA", str(tmp_path))
    monkeypatch.setenv("BUQUE_API_KEYS", json.dumps(KEYS))
    monkeypatch.setenv("BUQUE_MAX_LIMIT", "50")
    s = Settings()
    assert s.data == tmp_path and s.api_keys == KEYS and s.max_limit == 50
    assert s.default_limit == 50          # never above the cap
    monkeypatch.setenv("BUQUE_API_KEYS", json.dumps({"k": "admin"}))
    with pytest.raises(ValueError):
        Settings()
