"""Progress over three runs of one project: the series is each run's summary.csv; a removed
road and a changed road come back as regressions naming them; the chart is drawn in Chinese."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fontTools.ttLib import TTFont
from matplotlib import font_manager
from PIL import Image
from synth_world import run_cli
from three_runs import make_three

from buque.geo.progress import AXIS_X, AXIS_Y, chart, pace, project_runs, regressions, series, totals


def read_csv(path):
    return pd.read_csv(path, encoding="utf-8-sig", dtype={"county": str, "township": str},
                       keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def three(synth, tmp_path_factory):
    """The three runs of tests/three_runs.py (run dates three months apart)."""
    return make_three(synth.dir, tmp_path_factory.mktemp("progress"))


def test_series_equals_each_runs_summary(three):
    runs = project_runs(three)
    assert [r.name for r in runs] == ["r1", "r2", "r3"]
    s = series(runs)
    for r in runs:
        rid = json.loads((r / "manifest.json").read_text("utf-8"))["run_id"]
        mine = s[s["run_id"] == rid].drop(columns=["run_id", "date", "created"])
        own = read_csv(r / "summary.csv").fillna({"county": "", "township": ""})
        own = own[mine.columns]
        pd.testing.assert_frame_equal(mine.reset_index(drop=True), own.reset_index(drop=True),
                                      check_dtype=False)
    tot = totals(s)
    road = tot[tot["indicator"] == "road"]
    assert road["met"].tolist() == [4, 6, 3]  # R2 paved (+V3, +N4); R1 gone (-V1, -V2), R5 (-N5)


def test_pace_and_reach_date(three):
    s = series(project_runs(three))
    p = pace(s).set_index(["scope", "county", "indicator"]).loc[("county", "汉滨区")]
    # least squares by hand over the three county road rates
    x = np.array([0.0, 92.0, 184.0])  # days between the run dates
    y = s[(s["scope"] == "county") & (s["indicator"] == "road")]["rate"].to_numpy(float)
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    assert p.loc["road", "per_day"] == pytest.approx(slope)
    assert p.loc["road", "reached_on"] is pd.NA or pd.isna(p.loc["road", "reached_on"])  # falling
    assert not p.loc["road", "on_track"]


def test_regressions_name_the_road(three):
    reg = regressions(project_runs(three))
    got = {(r.village_code, r.cause) for r in reg.itertuples()}
    assert got == {("610902102201", "feature_removed"), ("610902102202", "feature_removed"),
                   ("N5", "feature_changed")}
    by = reg.set_index("village_code")
    assert "R1" in by.loc["610902102201", "detail"] and by.loc["610902102201", "evidence_id_a"] == "R1"
    assert "R5" in by.loc["N5", "detail"] and "surface" in by.loc["N5", "detail"]
    assert (reg["date_a"] == "2025-06-01").all() and (reg["date_b"] == "2025-09-01").all()


def test_progress_cli_and_chart(three, tmp_path):
    out = tmp_path / "progress"
    proc = run_cli("progress", three, "--out", out, columns=200)
    assert proc.returncode == 0, proc.stderr
    assert "R1" in proc.stdout and "3 regressions" in proc.stdout
    reg = read_csv(out / "regressions.csv")
    assert set(reg["village_code"]) == {"610902102201", "610902102202", "N5"}
    img = np.asarray(Image.open(out / "progress.png").convert("L"), dtype=float)
    assert img.std() > 10 and (img < 128).mean() > 0.01  # not blank


def test_chart_labels_drawn_with_the_cjk_font(three, tmp_path):
    s = series(project_runs(three))
    labels = {"road": "通硬化路", "water": "饮水安全"}
    family = chart(totals(s), labels, "达标率进展", tmp_path / "c.png")
    path = font_manager.findfont(font_manager.FontProperties(family=family[0]),
                                 fallback_to_default=False)
    cmap = TTFont(path).getBestCmap()
    for ch in AXIS_X + AXIS_Y.replace("（%）", "") + "".join(labels.values()):
        assert ord(ch) in cmap, ch
    img = np.asarray(Image.open(tmp_path / "c.png").convert("L"), dtype=float)
    # the y axis label's strip (left 5% of the image) has ink: the label was drawn
    assert (img[:, : img.shape[1] // 20] < 128).mean() > 0.002
