"""Output formats: GeoJSON, CSV (UTF-8 with BOM) and XLSX, by f= or the Accept header."""

from __future__ import annotations

import io

import openpyxl
import pandas as pd
import pytest

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def read_csv(resp) -> pd.DataFrame:
    assert resp.content.startswith(b"\xef\xbb\xbf"), "CSV must start with a UTF-8 BOM"
    return pd.read_csv(io.BytesIO(resp.content), encoding="utf-8-sig", dtype={"code": str})


def test_csv_holds_every_match_and_the_same_values(client, tables):
    r = client.get("/collections/villages/items?f=csv&missing=water")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    df = read_csv(r)
    want = tables.gaps.loc[(tables.gaps["indicator"] == "water")
                           & (tables.gaps["status"] == "missing"), "village_code"]
    assert set(df["code"]) == set(want.astype(str))
    assert int(r.headers["OGC-NumberMatched"]) == len(df)
    # same rows and columns as the GeoJSON properties
    fc = client.get("/collections/villages/items?missing=water&limit=1000").json()
    props = pd.DataFrame([f["properties"] for f in fc["features"]])
    assert list(df.columns) == list(props.columns)
    assert list(df["code"]) == list(props["code"])
    pd.testing.assert_series_equal(df["water_distance_m"], props["water_distance_m"],
                                   check_names=False)


def test_csv_respects_an_explicit_limit(client):
    df = read_csv(client.get("/collections/villages/items?f=csv&limit=3&offset=2"))
    assert len(df) == 3


def test_csv_keeps_non_ascii_text(client, tables):
    df = read_csv(client.get("/collections/villages/items?f=csv"))
    names = set(tables.villages["name"].dropna())
    assert names == set(df["name"].dropna())
    assert any(any(ord(ch) > 127 for ch in n) for n in names)  # e.g. Sant Julià de Lòria


def test_xlsx(client, tables):
    """f=xlsx is the ledger of the matches (tests/api/test_ledger_xlsx.py has more)."""
    r = client.get("/collections/villages/items?f=xlsx&level=admin&missing=road")
    assert r.status_code == 200 and r.headers["content-type"] == XLSX
    wb = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    rows = list(wb["通硬化路"].iter_rows(values_only=True))
    df = pd.DataFrame(rows[2:], columns=rows[1])
    df = df[pd.to_numeric(df["序号"], errors="coerce").notna()]  # not the 合计 row
    v = tables.villages
    assert set(df["村代码"]) == set(v.loc[(v["level"] == "admin") & (v["road"] == "missing"), "code"])


@pytest.mark.parametrize("accept,media", [
    ("application/geo+json", "application/geo+json"),
    ("application/json", "application/geo+json"),
    ("text/csv", "text/csv"),
    (XLSX, XLSX),
    ("text/html,application/xhtml+xml,*/*;q=0.8", "application/geo+json"),
    ("text/csv;q=0.5, application/geo+json;q=0.9", "application/geo+json"),
])
def test_accept_header(client, accept, media):
    r = client.get("/collections/villages/items?limit=2", headers={"Accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media)


def test_f_wins_over_accept(client):
    r = client.get("/collections/villages/items?f=csv", headers={"Accept": "application/geo+json"})
    assert r.headers["content-type"].startswith("text/csv")


def test_alternate_links(client):
    fc = client.get("/collections/villages/items?missing=road").json()
    alt = {link["type"]: link["href"] for link in fc["links"] if link["rel"] == "alternate"}
    assert "f=csv" in alt["text/csv"] and "missing=road" in alt["text/csv"]
    assert client.get(alt[XLSX]).headers["content-type"] == XLSX


def test_summary_and_projects_tables(client, tables):
    s = read_csv(client.get("/summary?by=township&f=csv"))
    assert len(s) == int((tables.summary["township"].notna()).sum())
    x = client.get("/projects?f=xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(x.content), read_only=True)
    assert {"说明", "汇总", "通硬化路", "饮水安全"} <= set(wb.sheetnames)  # the ledger
    p = read_csv(client.get("/projects?f=csv&indicator=power"))
    assert len(p) == int((tables.projects["indicator"] == "power").sum())
