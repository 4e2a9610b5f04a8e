"""Field-visit sampling: reproducible, stratified as specified, weighted as asked; the visit
list and printable pages."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from synth_world import run_cli

from buque.geo.sample import SampleError, allocate, draw_sample


def frame(n: int = 230) -> pd.DataFrame:
    """Villages in 3 counties and 9 townships of unequal sizes (one with a single village)."""
    i = np.arange(n)
    town = np.where(i < 100, i % 4, np.where(i < 180, 4 + i % 3, np.where(i < n - 1, 7, 8)))
    return pd.DataFrame({"code": [f"6109{k:08d}" for k in (i * 7919) % 100_000],
                         "name": [f"村{k}" for k in i], "level": "admin",
                         "county": np.where(i < 100, "甲县", np.where(i < 180, "乙县", "丙县")),
                         "township": [f"镇{t}" for t in town]})


def test_same_seed_same_sample_any_row_order():
    v = frame()
    a = draw_sample(v, 40, 2024, by="township").villages["village_code"].tolist()
    shuffled = v.sample(frac=1, random_state=9).reset_index(drop=True)
    b = draw_sample(shuffled, 40, 2024, by="township").villages["village_code"].tolist()
    assert a == b and len(a) == 40 and len(set(a)) == 40


def test_different_seed_different_sample():
    v = frame()
    samples = {tuple(sorted(draw_sample(v, 40, s, by="county").villages["village_code"]))
               for s in range(20)}
    assert len(samples) == 20


@pytest.mark.parametrize("by,n", [("township", 40), ("county", 40), ("township", 9),
                                  ("township", 230), (None, 17)])
def test_stratum_counts_as_specified(by, n):
    """Every stratum at least one when n allows, none more than it has, the rest shared in
    proportion to the villages each has left within one village (largest remainders)."""
    v = frame()
    s = draw_sample(v, n, 3, by=by)
    drawn = s.villages.groupby("stratum").size()
    sizes = v[by].value_counts() if by else pd.Series({"": len(v)})
    assert drawn.sum() == n
    S, N = len(sizes), len(v)
    for name, size in sizes.items():
        got = int(drawn.get(name, 0))
        assert 1 <= got <= size
        share = (n - S) * (size - 1) / (N - S)
        assert math.floor(share) <= got - 1 <= math.ceil(share)
    assert (s.strata.set_index("stratum")["drawn"] == drawn.reindex(s.strata["stratum"])).all()


def test_allocation_by_hand():
    rng = np.random.default_rng(0)
    # 6 of sizes 5, 3, 2: one each, the other 3 shared in proportion to 4, 2, 1 (1.71, .86,
    # .43): floors 1, 0, 0 and the two largest remainders (.86, .71) get one more
    assert allocate(np.array([5, 3, 2]), 6, rng).tolist() == [3, 2, 1]
    assert allocate(np.array([5, 3, 2]), 10, rng).tolist() == [5, 3, 2]
    assert allocate(np.array([5, 3, 2]), 99, rng).tolist() == [5, 3, 2]
    q = allocate(np.array([5, 3, 2, 4]), 2, rng)  # fewer than the strata: 2 strata, 1 each
    assert sorted(q.tolist()) == [0, 0, 1, 1]


def test_discrepancy_weighting():
    """One village of ten has a claimed-met-evidence-missing pair (weight 1 + 4 = 5): drawn
    alone it comes up with probability 5/14, not 1/10."""
    v = frame(10).assign(township="镇")
    disc = pd.DataFrame({"village_code": [v["code"][3]], "indicator": ["road"],
                         "class": ["claimed_met_evidence_missing"]})
    hits = sum(draw_sample(v, 1, s, weight="discrepancies", discrepancies=disc)
               .villages["village_code"].iloc[0] == v["code"][3] for s in range(700))
    assert abs(hits / 700 - 5 / 14) < 0.06  # binomial sd 0.018
    plain = sum(draw_sample(v, 1, s).villages["village_code"].iloc[0] == v["code"][3]
                for s in range(700))
    assert abs(plain / 700 - 0.1) < 0.04
    with pytest.raises(SampleError, match="--weight"):
        draw_sample(v, 1, 0, weight="discrepancies", discrepancies=None)


def test_sample_cli_writes_list_results_sheet_and_pages(synth_cli_run, tmp_path):
    out = tmp_path / "visit"
    proc = run_cli("sample", synth_cli_run.out, "--n", "4", "--seed", "11", "--by", "township",
                   "--out", out)
    assert proc.returncode == 0, proc.stderr
    s = pd.read_csv(out / "sample.csv", encoding="utf-8-sig", dtype=str)
    assert s.columns[0] == "village_code" and len(s) == 4
    assert set(s["township"]) == {"甲镇", "乙镇", "丙镇"}  # every township represented
    meta = json.loads((out / "sample.json").read_text("utf-8"))
    assert meta["seed"] == 11 and meta["drawn"] == 4
    again = tmp_path / "again"
    assert run_cli("sample", synth_cli_run.out, "--n", "4", "--seed", "11", "--by", "township",
                   "--out", again, "--no-pages").returncode == 0
    assert (again / "sample.csv").read_bytes() == (out / "sample.csv").read_bytes()
    wb = load_workbook(out / "visit_list.xlsx", read_only=True)
    assert wb.sheetnames == ["核查名单", "核查结果"]
    res = list(wb["核查结果"].iter_rows(values_only=True))
    assert res[0][:5] == ("village_code", "indicator", "observed", "inspector", "date")
    g = pd.read_parquet(synth_cli_run.out / "gaps.parquet")
    v = pd.read_parquet(synth_cli_run.out / "villages.parquet", columns=["code", "village_code"])
    kids = v[v["village_code"].isin(s["village_code"])]["code"]
    want = g[g["village_code"].isin(set(s["village_code"]) | set(kids))]
    assert len(res) - 1 == len(want)  # every pair of the villages and their hamlets
    # one A4 page per village, its name on it, Chinese fonts embedded
    info = subprocess.run(["pdfinfo", out / "pages.pdf"], capture_output=True, text=True).stdout
    assert "Pages:           4" in info and "595.276 x 841.89" in info
    for i, name in enumerate(s["name"], start=1):
        text = subprocess.run(["pdftotext", "-f", str(i), "-l", str(i), out / "pages.pdf", "-"],
                              capture_output=True, text=True).stdout
        assert name in text and "核查人" in text and "通硬化路" in text
    fonts = subprocess.run(["pdffonts", out / "pages.pdf"], capture_output=True, text=True).stdout
    assert "NotoSansCJK" in fonts and "LastResort" not in fonts
