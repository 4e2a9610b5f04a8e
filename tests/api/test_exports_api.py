"""The API serves the same exports as ``buque export``."""

from __future__ import annotations

import io
import zipfile

import openpyxl
import pytest


def test_xlsx_ledger(client, tables) -> None:
    r = client.get("/exports/xlsx")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    assert len(wb.sheetnames) >= 3


def test_pdf_map_of_a_township(client, tables) -> None:
    town = tables.villages["township"].dropna().iloc[0]
    r = client.get("/exports/pdf", params={"township": town, "dpi": 72})
    assert r.status_code == 200 and r.content[:5] == b"%PDF-"
    assert r.headers["content-type"] == "application/pdf"


def test_shapefile_comes_zipped_with_its_sidecars(client) -> None:
    r = client.get("/exports/shp", params={"encoding": "GBK"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
        assert any(n.endswith(ext) for n in names), (ext, names)


def test_bundle_is_a_zip(client) -> None:
    r = client.get("/exports/bundle", params={"dpi": 72})
    assert r.status_code == 200
    outer = zipfile.ZipFile(io.BytesIO(r.content))
    assert outer.namelist()


@pytest.mark.parametrize("params,status", [({"county": "No such county"}, 404),
                                           ({"indicator": "nosuch"}, 404),
                                           ({"dpi": "5000"}, 400), ({"paper": "B5"}, 400),
                                           ({"county": ""}, 400), ({"township": " , "}, 400),
                                           ({"indicator": ",".join(["road"] * 101)}, 400)])
def test_bad_export_parameters_are_client_errors(client, params, status) -> None:
    r = client.get("/exports/pdf", params=params)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")


def test_unknown_format_is_a_client_error(client) -> None:
    assert client.get("/exports/docx").status_code in (400, 404, 422)


@pytest.mark.parametrize("path", ["/exports/png", "/exports/bundle"])
def test_no_chinese_font_is_a_503_naming_the_package(client, monkeypatch, path: str) -> None:
    """A server without any CJK font answers what to install, not a 500 "internal error"."""
    from buque.geo.report import fonts

    monkeypatch.setattr(fonts, "find_cjk_font", lambda bold=False: None)
    monkeypatch.setattr(fonts, "_registered", {})
    r = client.get(path, params={"lang": "zh", "dpi": 72})
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert "fonts-noto-cjk" in body["detail"] and body["package"] == "fonts-noto-cjk"
    assert body["type"].endswith("/no-cjk-font")
