"""Sign-in on a keyed server in a real headless Chromium: the map leads to the sign-in page, a
key signs in (HttpOnly, SameSite=Strict cookie), the map draws its tiles, a download works,
signing out ends it and tiles are refused. Nothing outside 127.0.0.1 is asked for."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
from conftest import serve
from playwright.sync_api import sync_playwright
from test_map_browser import ARGS, CHROMIUM

KEYS = '{"v-key-browser": "viewer", "o-key-browser": "office"}'


@pytest.fixture(scope="module")
def keyed_url(demo_run: Path):
    yield from serve(demo_run, api_keys=KEYS)


def test_sign_in_map_download_sign_out(keyed_url, tables, tmp_path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (setup.sh installs it)")
    asked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        ctx = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        pg = ctx.new_page()

        def route(r):
            asked.append(r.request.url)
            if r.request.url.startswith(keyed_url):
                r.continue_()
            else:
                r.abort()

        pg.route("**/*", route)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        tiles: list[tuple[str, int]] = []
        pg.on("response", lambda r: tiles.append((r.url, r.status)) if "/tiles/" in r.url else None)

        # the map leads to the sign-in page; a wrong key is refused there
        pg.goto(f"{keyed_url}/map")
        assert pg.url == f"{keyed_url}/login?next=/map"
        assert "登录" in pg.inner_text("body") and "Sign in" in pg.inner_text("body")
        pg.fill("#key", "not-a-key")
        pg.click("button[type=submit]")
        assert pg.locator("#error").is_visible()
        assert ctx.cookies() == []

        # sign in
        pg.fill("#key", "v-key-browser")
        pg.click("button[type=submit]")
        pg.wait_for_url(f"{keyed_url}/map")
        pg.wait_for_function("() => window.buqueReady === true", timeout=60_000)
        pg.wait_for_function("() => window.buqueMap.loaded() && window.buqueMap.areTilesLoaded()",
                             timeout=60_000)
        n = pg.evaluate("window.buqueMap.queryRenderedFeatures({layers: ['villages']}).length")
        assert n > 20
        assert tiles and all(s in (200, 204, 304) for _, s in tiles), tiles
        assert not errors

        # the cookie: HttpOnly, SameSite=Strict, not Secure over plain http, expiring
        (c,) = ctx.cookies()
        assert c["name"] == "buque_session" and c["httpOnly"] and c["sameSite"] == "Strict"
        assert c["secure"] is False and c["path"] == "/"
        assert 11.5 * 3600 < c["expires"] - time.time() <= 12 * 3600 + 60
        assert "v-key-browser" not in c["value"]
        assert pg.evaluate("document.cookie") == ""  # scripts cannot read it

        # a download from the panel carries the session
        with pg.expect_download() as dl:
            pg.click("#list-csv")
        text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        inds = [k for k in ("road", "water", "power", "clinic", "broadband")
                if k in tables.villages]
        want = (tables.villages[inds] == "missing").any(axis=1).sum()
        assert len(rows) == want > 0

        # sign out: the page goes back to the sign-in form, tiles and the map are refused
        pg.goto(f"{keyed_url}/logout")
        assert pg.url == f"{keyed_url}/login"
        assert ctx.cookies() == []
        status = pg.evaluate("async () => (await fetch('/tiles/villages/0/0/0.mvt')).status")
        assert status == 401
        pg.goto(f"{keyed_url}/map")
        assert pg.url.startswith(f"{keyed_url}/login")
        browser.close()
    assert [u for u in asked if not u.startswith(keyed_url)] == []


def test_secure_cookie_behind_https_proxy(keyed_url) -> None:
    """uvicorn trusts X-Forwarded-Proto from a proxy on 127.0.0.1: the cookie is Secure."""
    import httpx

    r = httpx.post(f"{keyed_url}/login", data={"key": "v-key-browser"},
                   headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 303
    flags = [f.strip().lower() for f in r.headers["set-cookie"].split(";")]
    assert "secure" in flags and "httponly" in flags and "samesite=strict" in flags
