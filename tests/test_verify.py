"""Field results make a new run (source = field); the original run is never changed."""

from __future__ import annotations

import hashlib
import io
import shutil
import warnings

import pandas as pd
import pytest
from synth_world import run_cli

with warnings.catch_warnings():  # starlette prefers httpx2 (as tests/api/conftest.py)
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

from buque.api.app import create_app
from buque.api.settings import Settings
from buque.geo.run import run_project


def tree_hashes(d):
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def read_csv(path):
    return pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False,
                       na_values=[""])


#: (village, indicator, observed as written, what it means, line in the file)
RESULTS = [
    ("610902102204", "road", "已通", "met"),          # missing -> met: fixed
    ("610902102201", "通硬化路", "未达标", "missing"),  # met -> missing, by its Chinese label
    ("610902102203", "clinic", "达标", "met"),         # unknown -> met
    ("N5", "power", "否", "missing"),                  # missing, confirmed
    ("610902102202", "broadband", "unknown", "unknown"),  # met -> unknown
]
BAD = [
    ("610902999999", "road", "是", "no such (village, indicator)"),
    ("610902102205", "road", "也许", "not a status"),
    ("610902102205", "clinic", "是", "no inspector"),
    ("610902102205", "broadband", "是", "is not a date"),
    ("610902102204", "road", "是", "repeats the (village, indicator) of row 2"),
]


@pytest.fixture(scope="module")
def runs(synth, tmp_path_factory):
    d = tmp_path_factory.mktemp("verify")
    run = d / "runs" / "a"
    run_project(synth.project, run)
    rows = []
    for code, ind, obs, _ in RESULTS:
        rows.append({"村代码": code, "指标": ind, "核查结果": obs, "核查人": "张三",
                     "核查日期": "2025年6月3日", "备注": "现场查看", "照片编号": "IMG_01"})
    for code, ind, obs, why in BAD:
        rows.append({"村代码": code, "指标": ind, "核查结果": obs,
                     "核查人": "" if why == "no inspector" else "李四",
                     "核查日期": "六月" if "date" in why else "2025-06-04", "备注": "",
                     "照片编号": ""})
    rows.append({"村代码": "N1", "指标": "water", "核查结果": "", "核查人": "", "核查日期": "",
                 "备注": "", "照片编号": ""})  # not visited
    res = d / "results.csv"
    pd.DataFrame(rows).to_csv(res, index=False, encoding="gbk")
    before = tree_hashes(run)
    out = d / "runs" / "b"
    proc = run_cli("verify", run, res, "--out", out, "--encoding", "GBK")
    assert proc.returncode == 0, proc.stderr
    return run, out, before, res


def test_original_run_byte_identical(runs):
    run, _, before, _ = runs
    assert tree_hashes(run) == before and len(before) >= 8


def test_field_statuses_with_provenance(runs):
    run, out, _, _ = runs
    a = pd.read_parquet(run / "gaps.parquet").set_index(["village_code", "indicator"])
    b = pd.read_parquet(out / "gaps.parquet").set_index(["village_code", "indicator"])
    assert a.index.equals(b.index)
    want = {(c, "road" if i == "通硬化路" else i): s for c, i, _, s in RESULTS}
    field = b[b["source"] == "field"]
    assert {k: r["status"] for k, r in field.iterrows()} == want
    assert (field["inspector"] == "张三").all() and (field["inspected_on"] == "2025-06-03").all()
    assert (field["field_photo"] == "IMG_01").all()
    assert (field["model_status"] == a.loc[field.index, "status"]).all()
    rest = b[b["source"] != "field"]
    assert (rest["source"] == "evidence").all()
    assert (rest["status"] == a.loc[rest.index, "status"]).all()
    # the village table and the summary follow the new statuses (counted here from the gaps)
    v = pd.read_parquet(out / "villages.parquet")
    assert v.set_index("code").loc["610902102204", "road"] == "met"
    assert "road" in v.set_index("code").loc["610902102201", "missing"].split(",")
    s = read_csv(out / "summary.csv")
    county = s[s["scope"] == "county"].set_index("indicator")
    counts = b.reset_index().groupby(["indicator", "status"]).size()
    for k in county.index:
        for st in ("met", "missing", "unknown"):
            assert int(county.loc[k, st]) == int(counts.get((k, st), 0)), (k, st)
    # the remedy list: exactly the missing pairs of the new run
    p = read_csv(out / "projects.csv")
    missing = set(b[b["status"] == "missing"].index)
    assert set(zip(p["village_code"], p["indicator"], strict=True)) == missing


def test_rejected_rows_and_blank(runs):
    _, out, _, res = runs
    rej = read_csv(out / "rejected.csv")
    mine = rej[rej["layer"] == "field"].astype({"row": int}).sort_values("row")
    first_bad = len(RESULTS) + 2  # header line 1
    assert mine["row"].astype(int).tolist() == list(range(first_bad, first_bad + len(BAD)))
    for (_, _, _, why), reason in zip(BAD, mine["reason"], strict=True):
        assert why in reason
    m = pd.read_json(out / "manifest.json", typ="series")
    assert m["field"]["applied"] == len(RESULTS) and m["field"]["blank"] == 1
    assert m["field"]["rejected"] == len(BAD)
    assert m["derived_from"]["how"] == "field" and m["run_id"] != m["derived_from"]["run_id"]


def test_diff_of_the_two_runs_lists_the_visit(runs, tmp_path):
    """The API's run diff (geo.diff) of RUN and RUN2 lists exactly the pairs whose observed
    status differs from the evidence; field_changes.csv says the same."""
    run, out, _, _ = runs
    a = pd.read_parquet(run / "gaps.parquet").set_index(["village_code", "indicator"])["status"]
    want = {(c, "road" if i == "通硬化路" else i) for c, i, _, s in RESULTS
            if a[(c, "road" if i == "通硬化路" else i)] != s}
    assert len(want) == 4
    folder = tmp_path / "served"
    shutil.copytree(run.parent, folder)
    ma = pd.read_json(run / "manifest.json", typ="series")["run_id"]
    mb = pd.read_json(out / "manifest.json", typ="series")["run_id"]
    with TestClient(create_app(Settings(data=folder))) as c:
        r = c.get(f"/runs/{ma}/diff/{mb}", params={"f": "csv"})
        assert r.status_code == 200, r.text
        d = pd.read_csv(io.StringIO(r.content.decode("utf-8-sig")), dtype=str)
        assert set(zip(d["village_code"], d["indicator"], strict=True)) == want
        fixed = d[d["change"] == "fixed"]
        assert set(fixed["village_code"]) == {"610902102204", "610902102203"}
        assert set(d[d["change"] == "regressed"]["village_code"]) == {"610902102201"}
        # the new run is served like any other
        assert c.get("/collections/villages/items/610902102204", params={"run": mb}
                     ).status_code == 200
    fc = read_csv(out / "field_changes.csv")
    assert set(zip(fc["village_code"], fc["indicator"], strict=True)) == want


def test_verify_refuses_to_overwrite_the_run(runs):
    run, _, before, res = runs
    proc = run_cli("verify", run, res, "--out", run, "--encoding", "GBK")
    assert proc.returncode != 0 and "never changed" in proc.stderr
    assert tree_hashes(run) == before
