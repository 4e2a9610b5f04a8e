"""The office's ledger against the evidence: injected disagreements come back exactly, in their
classes; rows that cannot be used are rejected with the line a spreadsheet shows."""

from __future__ import annotations

import hashlib
import shutil

import pandas as pd
import pytest
from openpyxl import Workbook
from synth_world import PROJECT_TOML, run_cli

from buque.geo.ledger import CLASSES, read_discrepancies
from buque.geo.run import run_project

YES, NO = "是", "否"
#: the way offices write yes/no, cycled through the ledger so every spelling is read
SPELLINGS = [("是", "否"), ("达标", "未达标"), ("已通", "未通"), ("有", "无"), ("Y", "N"),
             ("1", "0"), ("true", "false")]
LABEL = {"road": "通硬化路", "water": "饮水安全", "power": "通生产生活用电",
         "clinic": "标准化村卫生室", "broadband": "通光纤和4G"}


def read_csv(path):
    return pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False,
                       na_values=[""])


@pytest.fixture(scope="module")
def base_run(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("ledger") / "run"
    run_project(synth.project, out)
    return out


def truthful_ledger(run) -> pd.DataFrame:
    """A ledger that agrees with the evidence everywhere: met -> yes, missing -> no, unknown ->
    blank (claims nothing), one row per village, a column per indicator (Chinese labels)."""
    g = pd.read_parquet(run / "gaps.parquet")
    v = pd.read_parquet(run / "villages.parquet", columns=["code", "name"])
    wide = g.pivot(index="village_code", columns="indicator", values="status")
    out = pd.DataFrame({"村代码": v["code"].astype(str), "村名": v["name"].astype(str)})
    for i, (k, label) in enumerate(LABEL.items()):
        yes, no = SPELLINGS[i % len(SPELLINGS)]
        st = out["村代码"].map(wide[k]) if k in wide else pd.Series(None, index=out.index)
        out[label] = st.map({"met": yes, "missing": no}).fillna("")
    return out


#: injected: (village, indicator, claim, class it must come back in)
INJECT = [
    ("610902102201", "road", YES, None),                           # met, claimed met: agrees
    ("610902102202", "road", NO, "claimed_missing_evidence_met"),
    ("610902102204", "broadband", YES, "claimed_met_evidence_missing"),
    ("610902102203", "clinic", "达标", "claimed_met_evidence_unknown"),
    ("N3", "road", NO, None),                                      # unknown, claimed missing
    ("N4", "water", "有", "claimed_met_evidence_missing"),
    ("N5", "water", "Y", "claimed_met_evidence_unknown"),
    ("N1", "power", "0", "claimed_missing_evidence_met"),  # N1: transformer-fed (issue 12)
]


def inject(ledger: pd.DataFrame) -> pd.DataFrame:
    led = ledger.copy()
    for code, key, claim, _ in INJECT:
        led.loc[led["村代码"] == code, LABEL[key]] = claim
    # an unknown village, after the real ones: its line is len + 2 (header = line 1)
    bogus = {c: "" for c in led.columns} | {"村代码": "610902999999", "村名": "无此村",
                                            LABEL["road"]: YES}
    return pd.concat([led, pd.DataFrame([bogus])], ignore_index=True)


def expected(run) -> set[tuple[str, str, str]]:
    """Brute force: every (village, indicator) of the injected ledger whose claim and status
    disagree, classified from the definitions (one loop over the gaps rows)."""
    g = pd.read_parquet(run / "gaps.parquet")
    status = {(r.village_code, r.indicator): r.status for r in g.itertuples()}
    out = set()
    for code, key, claim, cls in INJECT:
        said = "met" if claim in {s[0] for s in SPELLINGS} else "missing"
        st = status[(code, key)]
        want = {("met", "missing"): "claimed_met_evidence_missing",
                ("met", "unknown"): "claimed_met_evidence_unknown",
                ("missing", "met"): "claimed_missing_evidence_met"}.get((said, st))
        assert want == cls, (code, key, said, st)  # the fixture says what it injects
        if want:
            out.add((code, key, want))
    return out


def pairs(d: pd.DataFrame) -> set[tuple[str, str, str]]:
    return set(zip(d["village_code"], d["indicator"], d["class"], strict=True))


def test_truthful_ledger_has_no_discrepancy(base_run, tmp_path):
    led = tmp_path / "ledger.csv"
    truthful_ledger(base_run).to_csv(led, index=False, encoding="utf-8")
    proc = run_cli("check-ledger", base_run, led, "--out", tmp_path / "checked")
    assert proc.returncode == 0, proc.stderr
    d = read_discrepancies(tmp_path / "checked")
    assert d is not None and len(d) == 0


def test_injected_disagreements_come_back_exactly(base_run, tmp_path):
    led = inject(truthful_ledger(base_run))
    path = tmp_path / "台账.csv"
    led.to_csv(path, index=False, encoding="gbk")  # an office's CSV from Excel: GBK
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in base_run.iterdir() if p.is_file()}
    out = tmp_path / "checked"
    proc = run_cli("check-ledger", base_run, path, "--out", out, "--encoding", "GBK")
    assert proc.returncode == 0, proc.stderr
    d = read_discrepancies(out)
    assert pairs(d) == expected(base_run)
    assert len(d) == len(pairs(d))  # one row per pair
    # the evidence rides along: the gaps row's distance and nearest feature
    g = pd.read_parquet(base_run / "gaps.parquet").set_index(["village_code", "indicator"])
    for r in d.itertuples():
        ev = g.loc[(r.village_code, r.indicator)]
        assert r.status == ev["status"]
        assert r.distance_m == pytest.approx(ev["distance_m"])
        assert r.evidence_id == ev["evidence_id"]
    # the unknown village: rejected once, with its spreadsheet line and the code column
    rej = read_csv(out / "rejected.csv")
    mine = rej[rej["layer"] == "ledger"]
    assert list(mine["row"].astype(int)) == [len(led) + 1]
    assert mine.iloc[0]["code"] == "610902999999" and mine.iloc[0]["field"] == "村代码"
    assert "names no village" in mine.iloc[0]["reason"]
    # per-county counts in the summary equal a count of the expected pairs
    s = read_csv(out / "summary.csv")
    county = s[s["scope"] == "county"]
    for k in CLASSES:
        assert county[k].astype(int).sum() == sum(1 for p in expected(base_run) if p[2] == k)
    # the source run was only read
    assert before == {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in base_run.iterdir() if p.is_file()}


def test_xlsx_ledger_with_title_row_and_admin_claim_of_hamlet_indicator(base_run, tmp_path):
    """An XLSX ledger whose header is on line 2 (a title above it); an administrative village
    claiming water, which the run assesses at its hamlets, is checked against the worst one;
    an unreadable value and a repeated code are rejected on their own lines."""
    led = truthful_ledger(base_run)
    led = led[~led["村代码"].str.startswith("N")].reset_index(drop=True)  # admin villages only
    led[LABEL["water"]] = ""
    led.loc[led["村代码"] == "610902102201", LABEL["water"]] = "是"   # its hamlets N1 met, N3 missing
    led.loc[led["村代码"] == "610902102202", LABEL["water"]] = "否"   # N2 met, N5 unknown: agrees
    led.loc[led["村代码"] == "610902102203", LABEL["road"]] = "也许"  # unreadable
    led = pd.concat([led, led.iloc[[0]]], ignore_index=True)          # a repeated code
    wb = Workbook()
    ws = wb.active
    ws.append(["汉滨区贫困村退出台账（2020年）"])
    ws.append(list(led.columns))
    for r in led.itertuples(index=False):
        ws.append([int(v) if c == "村代码" else v for c, v in zip(led.columns, r, strict=True)])
    path = tmp_path / "ledger.xlsx"
    wb.save(path)
    out = tmp_path / "checked"
    proc = run_cli("check-ledger", base_run, path, "--out", out)
    assert proc.returncode == 0, proc.stderr
    d = read_discrepancies(out)
    water = d[d["indicator"] == "water"]
    assert list(zip(water["village_code"], water["class"], water["assessed_at"],
                    strict=True)) == [("610902102201", "claimed_met_evidence_missing",
                                       "natural:N3")]
    rej = read_csv(out / "rejected.csv")
    mine = rej[rej["layer"] == "ledger"].astype({"row": int}).sort_values("row")
    line = {c: i + 3 for i, c in enumerate(led["村代码"])}  # title line 1, header line 2
    assert list(zip(mine["row"].astype(int), mine["field"], strict=True)) == [
        (line["610902102203"], LABEL["road"]), (len(led) + 2, "村代码")]
    assert "也许" in mine.iloc[0]["reason"] and "row 3" in mine.iloc[1]["reason"]


def test_project_ledger_section(synth, base_run, tmp_path):
    """``[ledger]`` in the project: the run writes discrepancies.csv itself, the same as
    check-ledger on a run without one."""
    d = tmp_path / "proj"
    shutil.copytree(synth.dir, d)
    inject(truthful_ledger(base_run)).rename(columns={"村代码": "CUN_DM"}).to_csv(
        d / "taizhang.csv", index=False, encoding="utf-8")
    p = d / "project.toml"
    p.write_text(PROJECT_TOML.format(extra='\n[ledger]\npath = "taizhang.csv"\n'
                                     'fields = { village_code = "CUN_DM" }\n'), encoding="utf-8")
    run_project(p, tmp_path / "run")
    disc = read_discrepancies(tmp_path / "run")
    assert pairs(disc) == expected(base_run)
    assert (tmp_path / "run" / "manifest.json").read_text("utf-8").count('"ledger"') == 1


def test_bad_ledger_mapping_names_the_column(synth, tmp_path):
    d = tmp_path / "proj"
    shutil.copytree(synth.dir, d)
    (d / "l.csv").write_text("CODE,road\n610902102201,是\n", encoding="utf-8")
    p = d / "project.toml"
    p.write_text(PROJECT_TOML.format(extra='\n[ledger]\npath = "l.csv"\nfields = { village_code '
                                     '= "村代码" }\n'), encoding="utf-8")
    proc = run_cli("run", p, "--out", tmp_path / "run")
    assert proc.returncode != 0
    assert "l.csv" in proc.stderr and "村代码" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_ledger_export_has_the_discrepancy_sheet(base_run, tmp_path):
    from openpyxl import load_workbook

    led = tmp_path / "ledger.csv"
    inject(truthful_ledger(base_run)).to_csv(led, index=False, encoding="utf-8")
    out = tmp_path / "checked"
    assert run_cli("check-ledger", base_run, led, "--out", out).returncode == 0
    x = tmp_path / "l.xlsx"
    proc = run_cli("export", out, "--format", "xlsx", "--out", x)
    assert proc.returncode == 0, proc.stderr
    ws = load_workbook(x, read_only=True)["台账核对"]
    body = list(ws.iter_rows(min_row=3, values_only=True))
    label = {v: k for k, v in LABEL.items()}
    got = {(r[3], label[r[5]], r[6].split("（")[1].rstrip("）")) for r in body}
    assert got == expected(base_run)
