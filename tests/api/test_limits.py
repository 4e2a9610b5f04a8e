"""Limits on what a request may cost: each stated in the API description and, when reached,
answered with a problem document naming it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def limited(demo_run, make_client):
    with make_client(demo_run, max_export_rows=5, export_workers=1, export_queue=3,
                     max_body_bytes=2048,
                     max_limit=40) as c:
        yield c


def _problem(r, status, kind):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"].endswith("/" + kind) and body["status"] == status
    return body


def test_limits_are_stated_in_the_docs(limited):
    spec = limited.get("/openapi.json").json()
    text = spec["info"]["description"]
    for words in ("`limit` up to 40", "at most 5 rows", "max_export_rows", "at most 1 built at once",
                  "export_queue", "2,048 bytes", "max_body_bytes", "login_attempts",
                  "at most 4000 features per tile"):
        assert words in text, words
    op = spec["paths"]["/exports/{fmt}"]["get"]
    assert "At most 1 exports are built at once and 3 wait" in op["description"]
    assert "429" in op["responses"]
    items = spec["paths"]["/collections/villages/items"]["get"]["parameters"]
    limit = next(p for p in items if p["name"] == "limit")
    assert "capped" in limit["description"] and "too-many-rows" in limit["description"]


def test_page_size_is_capped(limited, tables):
    r = limited.get("/collections/villages/items", params={"limit": 1000})
    assert r.status_code == 200 and len(r.json()["features"]) == min(40, len(tables.villages))


def test_a_download_is_never_cut_silently(limited, tables):
    n = len(tables.villages)
    assert n > 5
    body = _problem(limited.get("/collections/villages/items", params={"f": "csv"}), 400,
                    "too-many-rows")
    assert body["limit"] == 5 and body["matched"] == n and "max_export_rows" in body["detail"]
    r = limited.get("/collections/villages/items", params={"f": "csv", "limit": 5, "offset": 5})
    assert r.status_code == 200 and len(r.text.strip().splitlines()) == 6   # header + 5
    # the last few rows fit without a limit
    assert limited.get("/collections/villages/items",
                       params={"f": "csv", "offset": n - 5}).status_code == 200
    _problem(limited.get("/projects", params={"f": "csv"}), 400, "too-many-rows")


def test_request_body_size(limited):
    r = limited.post("/login", content=b"key=" + b"x" * 3000,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    body = _problem(r, 413, "body-too-large")
    assert body["limit"] == 2048 and "max_body_bytes" in body["detail"]

    def chunks():  # no Content-Length: counted as it is read
        for _ in range(10):
            yield b"y" * 500

    r = limited.post("/login", content=chunks(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    _problem(r, 413, "body-too-large")
    assert limited.post("/login", data={"key": "k"}).status_code in (200, 303)
