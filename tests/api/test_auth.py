"""Access: open without keys; with keys, viewer and office roles (X-API-Key or Bearer)."""

from __future__ import annotations

import json

import pytest

from buque.api.settings import Settings

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


# ----------------------------------------------------------------------- browser sign-in

def _login(c, key, next_=None):
    form = {"key": key} if next_ is None else {"key": key, "next": next_}
    return c.post("/login", data=form, follow_redirects=False)


@pytest.fixture()
def signin(runs, make_client):
    with make_client(runs.folder, api_keys=KEYS, login_attempts=3) as c:
        yield c


def test_pages_lead_to_sign_in(signin):
    for page in ("/map", "/docs"):
        r = signin.get(page, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={page}"
    r = signin.get("/login")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "登录" in r.text and "Sign in" in r.text and 'name="key"' in r.text
    assert "<script" not in r.text and "http" not in r.text.replace("http-equiv", "")
    # an API request is not redirected: scripts get the problem document
    r = signin.get("/summary", follow_redirects=False)
    assert r.status_code == 401 and r.json()["status"] == 401


def test_sign_in_sets_a_session_cookie(signin):
    r = _login(signin, "v-key-123")
    assert r.status_code == 303 and r.headers["location"] == "/map"
    cookie = r.headers["set-cookie"]
    flags = {p.strip().split("=")[0].lower() for p in cookie.split(";")}
    assert {"httponly", "max-age", "path"} <= flags and "secure" not in flags
    assert "samesite=strict" in cookie.lower()
    assert "v-key-123" not in cookie
    assert signin.get("/summary").status_code == 200                # the cookie is the key
    assert signin.get("/projects").status_code == 403               # ... as a viewer
    assert signin.get("/map").status_code == 200
    assert signin.get("/docs").status_code == 200
    r = signin.get("/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert 'buque_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert signin.get("/summary").status_code == 401
    assert _login(signin, "o-key-456").status_code == 303
    assert signin.get("/projects").status_code == 200               # office role
    signin.cookies.clear()


def test_secure_cookie_behind_https_proxy(signin):
    r = signin.post("/login", data={"key": "v-key-123"}, follow_redirects=False,
                    headers={"X-Forwarded-Proto": "https"})
    assert "secure" in {p.strip().lower() for p in r.headers["set-cookie"].split(";")}
    signin.cookies.clear()


def test_next_stays_on_this_server(signin):
    assert _login(signin, "v-key-123", "/docs").headers["location"] == "/docs"
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        assert _login(signin, "v-key-123", evil).headers["location"] == "/map"
    signin.cookies.clear()


def test_forged_expired_or_revoked_sessions_are_refused(runs, make_client):
    from buque.api import session

    secret = b"s" * 32
    with make_client(runs.folder, api_keys=KEYS, session_secret="s" * 32) as c:
        good = session.sign(secret, "o-key-456", 4e9)
        c.cookies.set(session.COOKIE, good)
        assert c.get("/projects").status_code == 200
        payload, mac = good.split(".")
        forged = session._b64(json.dumps({"k": "x", "e": 4e9}).encode()) + "." + mac
        for bad in (forged, payload + ".AAAA", session.sign(secret, "o-key-456", 1.0),
                    session.sign(b"t" * 32, "o-key-456", 4e9), session.sign(secret, "gone", 4e9)):
            c.cookies.set(session.COOKIE, bad)
            assert c.get("/projects").status_code == 401, bad
    # the key was removed from the configuration: its session is no more
    with make_client(runs.folder, api_keys={"v-key-123": "viewer"}, session_secret="s" * 32) as c:
        c.cookies.set(session.COOKIE, good)
        assert c.get("/summary").status_code == 401


def test_failed_sign_ins_are_rate_limited(signin):
    for _ in range(3):
        r = _login(signin, "guess")
        assert r.status_code == 401 and "密钥无效" in r.text
    r = _login(signin, "v-key-123")          # blocked, even with the right key
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    assert 0 < int(r.headers["retry-after"]) <= 300
    assert r.json()["limit"] == 3 and "login_attempts" in r.json()["detail"]
    # header keys from the same client are refused too
    assert signin.get("/summary", headers={"X-API-Key": "v-key-123"}).status_code == 429


def test_rate_limit_window():
    from buque.api.session import Attempts

    a = Attempts(limit=2, window_s=60)
    a.fail("x", now=0)
    a.fail("x", now=10)
    assert a.retry_after("x", now=11) == 49 and a.retry_after("y", now=11) == 0
    assert a.retry_after("x", now=60.5) == 0  # the first failure left the window


def test_cross_site_sign_in_form_refused(signin):
    r = signin.post("/login", data={"key": "v-key-123"}, headers={"Origin": "https://evil.example"},
                    follow_redirects=False)
    assert r.status_code == 403


def test_no_keys_no_sign_in(client):
    assert client.get("/login", follow_redirects=False).headers["location"] == "/map"
    assert client.get("/map").status_code == 200


def test_sign_in_behind_a_path_prefix(runs):
    """Behind a proxy serving the app under /buque (root_path), redirects and the cookie's
    path stay under it."""
    from fastapi.testclient import TestClient

    from buque.api.app import create_app

    with TestClient(create_app(Settings(data=runs.folder, api_keys=KEYS)),
                    root_path="/buque") as c:
        assert c.get("/map", follow_redirects=False).headers["location"] == \
            "/buque/login?next=/map"
        r = _login(c, "v-key-123")
        assert r.headers["location"] == "/buque/map"
        assert "Path=/buque;" in r.headers["set-cookie"]
