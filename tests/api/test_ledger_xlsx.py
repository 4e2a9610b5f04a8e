"""The API's XLSX answers are the ledger (台账) that ``buque export --format xlsx`` writes, of the
request's selection: sheet names and headers in Chinese (English with ``lang=en``), and only the
filtered villages in it. CSV stays the data dump."""

from __future__ import annotations

import io

import openpyxl

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LABELS = {"road": "通硬化路", "water": "饮水安全", "power": "通生产生活用电",
          "clinic": "标准化村卫生室", "broadband": "通光纤和4G"}


def workbook(resp) -> openpyxl.Workbook:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == XLSX
    assert "attachment" in resp.headers["content-disposition"]
    return openpyxl.load_workbook(io.BytesIO(resp.content), read_only=True)


def sheet(wb, name: str) -> tuple[list, list[dict]]:
    """The header row (row 2, under the title) and the data rows of a ledger sheet (numbered
    rows: an indicator sheet ends in a 合计 row)."""
    rows = list(wb[name].iter_rows(values_only=True))
    head = list(rows[1])
    data = [dict(zip(head, r, strict=True)) for r in rows[2:] if any(c is not None for c in r)]
    if head[0] in ("序号", "No."):
        data = [r for r in data if isinstance(r[head[0]], int | float)]
    return head, data


def missing_codes(tables, key: str, township: str | None = None) -> set[str]:
    g = tables.gaps
    codes = set(g.loc[(g["indicator"] == key) & (g["status"] == "missing"), "village_code"])
    if township:
        v = tables.villages
        codes &= set(v.loc[v["township"] == township, "code"])
    return codes


def test_village_items_xlsx_is_the_chinese_ledger_of_the_selection(client, tables) -> None:
    town = "La Massana"
    wb = workbook(client.get(f"/collections/villages/items?f=xlsx&missing=water&township={town}"))
    assert wb.sheetnames[:3] == ["说明", "汇总", LABELS["water"]]
    assert not set(wb.sheetnames) & {LABELS[k] for k in LABELS if k != "water"}
    head, rows = sheet(wb, LABELS["water"])
    for h in ("序号", "县（市、区）", "乡（镇）", "村代码", "村名", "原因", "未达标条件", "补短板措施"):
        assert h in head, h
    want = missing_codes(tables, "water", town)
    assert want and {r["村代码"] for r in rows} == want
    assert {r["乡（镇）"] for r in rows} == {town}
    _, summary = sheet(wb, "汇总")
    assert {r["指标"] for r in summary} == {LABELS["water"]}


def test_village_items_xlsx_in_english(client, tables) -> None:
    wb = workbook(client.get("/collections/villages/items?f=xlsx&missing=road,power&lang=en"))
    assert wb.sheetnames[:4] == ["About", "Summary", "Hardened road", "Grid power"]
    head, rows = sheet(wb, "Grid power")
    assert {"Village code", "Village", "Reason", "Failed condition"} <= set(head)
    assert {r["Village code"] for r in rows} == missing_codes(tables, "power")


def test_village_items_xlsx_shows_the_failed_condition(client, tables) -> None:
    """The to-verify sheet names the condition the nearby feature could not be checked on."""
    wb = workbook(client.get("/collections/villages/items?f=xlsx&indicator=clinic"))
    head, rows = sheet(wb, "待核实")
    g = tables.gaps
    want = g[(g["indicator"] == "clinic") & (g["status"] == "unknown")]
    assert {(r["村代码"], r["未达标条件"]) for r in rows} == set(
        zip(want["village_code"], want["failed"], strict=True))


def test_projects_xlsx_is_the_ledger_of_the_matching_rows(client, tables) -> None:
    wb = workbook(client.get("/projects?f=xlsx&indicator=power&township=Canillo"))
    assert wb.sheetnames[:3] == ["说明", "汇总", LABELS["power"]]
    _, rows = sheet(wb, LABELS["power"])
    p = tables.projects
    want = set(p.loc[(p["indicator"] == "power") & (p["township"] == "Canillo"), "village_code"])
    assert want and {r["村代码"] for r in rows} == want


def test_csv_stays_the_data_dump(client) -> None:
    r = client.get("/collections/villages/items?f=csv&missing=water")
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.decode("utf-8-sig").splitlines()[0].startswith('"code","name","level"')
