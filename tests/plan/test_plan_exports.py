"""``buque export RUN --plan PLAN`` (the real CLI): the XLSX ledger gains a 项目库 sheet (one row
per work of works.parquet, with its villages) and a 分期表 (phases.csv); the PNG/PDF map draws
the planned lines in their phase colours; a plan of another run is refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
from openpyxl import load_workbook
from PIL import Image
from synth_world import run_cli

from buque.geo.plan.archive import read_plan, write_plan
from buque.geo.plan.make import make_plan
from buque.geo.report.planned import PHASE_COLOURS
from buque.geo.report.text import col


def _rgb(h: str) -> np.ndarray:
    return np.array([int(h[i:i + 2], 16) for i in (1, 3, 5)])


def test_ledger_and_map_with_plan(province_run, tmp_path):
    full = make_plan(province_run).meta["totals"]["cost"]
    plan_dir = write_plan(tmp_path / "plan", make_plan(
        province_run, [f"2027={full * 0.4}", f"2028={full * 0.4}"]))
    plan = read_plan(plan_dir)
    out = tmp_path / "ledger.xlsx"
    p = run_cli("export", province_run, "--plan", plan_dir, "--out", out)
    assert p.returncode == 0, p.stderr
    wb = load_workbook(out, read_only=True)
    assert "项目库" in wb.sheetnames and "分期表" in wb.sheetnames
    rows = list(wb["项目库"].iter_rows(values_only=True))
    head, body = rows[1], [r for r in rows[2:] if any(v is not None for v in r)]
    t = pd.DataFrame(body, columns=head).rename(columns={col(k, "zh"): k for k in (
        "work_id", "cost", "village_codes", "funded")})
    assert len(t) == len(plan.works)
    assert set(t["work_id"]) == set(plan.works["work_id"])
    assert abs(t["cost"].sum() - plan.works["cost"].sum()) < 1
    served = {w: set(g.astype(str)) for w, g in
              plan.work_villages.groupby("work_id")["village_code"]}
    got = t.set_index("work_id")["village_codes"].map(lambda s: set(s.split("、")) if s else set())
    bad = [(w, got[w], served[w]) for w in served if got[w] != served[w]]
    assert not bad, bad[:3]
    funded = t["funded"] == "是"
    assert funded.sum() == int(plan.works["funded"].sum())
    ph = list(wb["分期表"].iter_rows(values_only=True))
    assert len([r for r in ph[2:] if any(v is not None for v in r)]) == len(plan.phases)

    # the map: the phases' colours appear only with the plan
    shots = {}
    for name, extra in (("with", ["--plan", str(plan_dir)]), ("without", [])):
        f = tmp_path / f"{name}.png"
        p = run_cli("export", province_run, "--out", f, "--dpi", "80", *extra, timeout=300)
        assert p.returncode == 0, p.stderr
        shots[name] = np.asarray(Image.open(f).convert("RGB")).astype(int)
    for colour in PHASE_COLOURS[:2]:
        near = {k: int((np.abs(v - _rgb(colour)).sum(axis=2) < 30).sum()) for k, v in shots.items()}
        assert near["with"] > near["without"] + 200, (colour, near)
    pdf = tmp_path / "map.pdf"
    p = run_cli("export", province_run, "--plan", plan_dir, "--out", pdf, "--dpi", "80",
                timeout=300)
    assert p.returncode == 0 and pdf.read_bytes()[:4] == b"%PDF", p.stderr

    # a plan of another run is refused
    other = tmp_path / "other"
    shutil.copytree(plan_dir, other)
    meta = json.loads((other / "plan.json").read_text("utf-8"))
    meta["run"]["run_id"] = "someone-else"
    (other / "plan.json").write_text(json.dumps(meta), "utf-8")
    p = run_cli("export", province_run, "--plan", other, "--out", tmp_path / "x.xlsx")
    assert p.returncode != 0 and "someone-else" in p.stderr + p.stdout
