"""The household register and the housing indicator (issue 12, part 2).

A register of 52,000+ households, GBK-encoded CSV with Chinese headers, on the synthetic county
of bench.synth: every data row is in (assessed) or rejected with its row and reason; the
housing status and household count of every administrative village equal an independent count
made here with pandas from the generated rows (not from Buque's reader).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyogrio
import pytest

from bench.synth import generate
from buque.geo.run import run_project

N = 52_000
HEADERS = {"id": "户编号", "village_code": "所在村代码", "members": "家庭人口数",
           "poor": "是否建档立卡", "exit_year": "脱贫年度", "housing_grade": "住房安全鉴定等级",
           "housing_renovated": "是否完成危改", "water_safe": "饮水安全",
           "school_dropouts": "辍学人数", "insured": "是否参保"}


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    d = tmp_path_factory.mktemp("hh")
    generate(d, admin=300, natural=2000, roads=3000, seed=5, verbose=False)
    admin = pyogrio.read_dataframe(d / "villages.gpkg", read_geometry=False)
    nat = pyogrio.read_dataframe(d / "natural_villages.gpkg", read_geometry=False)
    rng = np.random.default_rng(12)
    # 20 admin villages get no household; natural villages of the others may be used
    used_admin = admin["code"].to_numpy()[20:]
    nat_ok = nat[nat["village_code"].isin(used_admin)]["code"].to_numpy()
    codes = np.where(rng.random(N) < 0.7, rng.choice(used_admin, N), rng.choice(nat_ok, N))
    codes = codes.astype(object)
    codes[rng.random(N) < 0.01] = "610999999999"           # not a village of the run
    ids = np.array([f"H{i:06d}" for i in range(N)], dtype=object)
    dup = rng.random(N) < 0.005
    ids[dup] = ids[np.maximum(np.flatnonzero(dup) - 7, 0)]   # an id seen earlier
    grade = rng.choice(np.array(["A", "B", "C", "D", "无房", "", "C级"], dtype=object), N,
                       p=[0.5, 0.22, 0.1, 0.05, 0.01, 0.09, 0.03])
    reno = rng.choice(np.array(["是", "否", ""], dtype=object), N, p=[0.5, 0.45, 0.05])
    # admin villages 20-59: every household in a grade A or B house (met)
    parent = dict(zip(nat["code"], nat["village_code"], strict=True))
    clean = pd.Series(codes).map(lambda x: parent.get(x, x)).isin(used_admin[:40]).to_numpy()
    grade[clean] = rng.choice(np.array(["A", "B"], dtype=object), int(clean.sum()))
    members = rng.integers(1, 8, N).astype(str).astype(object)
    bad_members = rng.random(N) < 0.002
    members[bad_members] = "三口"
    bad_grade = rng.random(N) < 0.001
    grade[bad_grade] = "E"
    raw = pd.DataFrame({
        HEADERS["id"]: ids, HEADERS["village_code"]: codes, HEADERS["members"]: members,
        HEADERS["poor"]: rng.choice(["是", "否"], N), HEADERS["exit_year"]:
            rng.choice(["2024", "2025", "2026", ""], N),
        HEADERS["housing_grade"]: grade, HEADERS["housing_renovated"]: reno,
        HEADERS["water_safe"]: rng.choice(["有", "无", "Y", "N", "1", "0", "true"], N),
        HEADERS["school_dropouts"]: rng.choice(["0", "0", "1"], N),
        HEADERS["insured"]: rng.choice(["是", "否"], N)})
    path = d / "户籍台账.csv"
    text = raw.to_csv(index=False, lineterminator="\n")
    lines = text.split("\n")
    malformed_line = 1000  # the file's line 1000 (header = line 1) gets an extra field
    lines[malformed_line - 1] += ",多余"
    path.write_bytes("\n".join(lines).encode("gbk"))
    toml = (d / "project.toml").read_text("utf-8")
    mapping = ", ".join(f'{k} = "{v}"' for k, v in HEADERS.items())
    (d / "project.toml").write_text(
        toml + f'\n[registers.households]\npath = "户籍台账.csv"\nencoding = "GBK"\n'
        f"fields = {{ {mapping} }}\n", "utf-8")
    out = d / "run"
    run_project(d / "project.toml", out)
    return {"dir": d, "raw": raw, "admin": admin, "nat": nat, "out": out,
            "malformed_line": malformed_line}


def _expected(c) -> tuple[pd.DataFrame, pd.Series]:
    """Independently: which rows are valid, and per admin village status and count."""
    raw, admin, nat = c["raw"], c["admin"], c["nat"]
    h = {k: raw[v] for k, v in HEADERS.items()}
    line = np.arange(len(raw)) + 2
    malformed = line == c["malformed_line"]
    g = h["housing_grade"].str.replace("级", "")
    bad_value = (~h["members"].str.fullmatch(r"\d+")) | (g == "E")
    known = h["village_code"].isin(set(admin["code"]) | set(nat["code"]))
    ok = ~malformed & ~bad_value
    dup = pd.Series(np.where(ok, h["id"], None)).duplicated() & ok
    ok &= ~dup
    reasons = pd.Series(np.select([malformed, bad_value, dup, ~known],
                                  ["fields", "is not", "duplicate", "not a village"], ""))
    ok &= known
    parent = dict(zip(nat["code"], nat["village_code"], strict=True))
    adm = h["village_code"].map(lambda x: parent.get(x, x))
    safe = g.isin(["A", "B"]) | (h["housing_renovated"] == "是")
    unsafe = g.isin(["C", "D", "无房"]) & (h["housing_renovated"] == "否")
    df = pd.DataFrame({"adm": adm, "unsafe": unsafe & ~safe, "unknown": ~safe & ~unsafe})[ok]
    per = df.groupby("adm").agg(n=("unsafe", "size"), bad=("unsafe", "sum"), unk=("unknown", "sum"))
    per = per.reindex(admin["code"]).fillna(0)
    status = np.where(per["bad"] > 0, "missing",
                      np.where((per["unk"] > 0) | (per["n"] == 0), "unknown", "met"))
    count = np.where(per["bad"] > 0, per["bad"], np.where(status == "unknown", per["unk"], 0))
    exp = pd.DataFrame({"status": status, "count": count.astype(int)}, index=per.index)
    return exp, reasons


def test_housing_status_equals_an_independent_count(county):
    exp, _ = _expected(county)
    g = pd.read_parquet(county["out"] / "gaps.parquet")
    h = g[g["indicator"] == "housing"].set_index("village_code")
    assert len(h) == len(county["admin"]) and set(h["level"]) == {"admin"}
    got = h.loc[exp.index]
    assert (got["status"].to_numpy() == exp["status"].to_numpy()).all()
    assert (got["count"].astype(int).to_numpy() == exp["count"].to_numpy()).all()
    assert set(exp["status"]) == {"met", "missing", "unknown"}  # the test sees all three
    assert (got.loc[exp["status"] == "missing", "reason"] == "register_failing").all()
    assert (got.loc[exp.index[:20], "reason"] == "not_in_register").all()


def test_every_household_is_in_or_rejected_with_row_and_reason(county):
    _, reasons = _expected(county)
    m = json.loads((county["out"] / "manifest.json").read_text())
    hh = m["counts"]["households"]
    assert hh["in"] == N and hh["in"] == hh["assessed"] + hh["rejected"]
    rej = pd.read_csv(county["out"] / "rejected.csv", dtype=str)
    rej = rej[rej["layer"] == "households"]
    assert len(rej) == hh["rejected"] == int((reasons != "").sum())
    want = reasons[reasons != ""]
    got = rej.set_index(rej["row"].astype(int))["reason"]
    assert sorted(got.index) == sorted(want.index + 2)  # spreadsheet lines (header = 1)
    for line, word in zip(want.index + 2, want, strict=True):
        assert word in got[line], (line, word, got[line])
    assert (rej["file"].str.endswith("户籍台账.csv")).all()


def test_housing_remedies_per_household_and_grade(county):
    p = pd.read_csv(county["out"] / "projects.csv", dtype={"village_code": str})
    h = p[p["indicator"] == "housing"]
    exp, _ = _expected(county)
    assert len(h) == int((exp["status"] == "missing").sum())
    assert (h["quantity_basis"] == "register").all()
    q = h.set_index("village_code")["quantity"]
    assert (q == exp.loc[q.index, "count"]).all()
    assert h["unit_cost"].between(15000, 40000).all() and (h["cost"] > 0).all()
