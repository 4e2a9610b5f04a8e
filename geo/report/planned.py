"""A plan (``buque plan``) in a run's exports: the 项目库 and 分期表 sheets of the XLSX ledger and
the planned lines on the PNG/PDF map (``buque export RUN --plan PLAN``).

The plan must be of the exported run (same run id). A selection by county keeps the works whose
county (that of the first village they serve, or of the work below a shared trunk) is selected,
and the phase rows of those counties.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from buque.geo.report.filters import ExportError, ReportData

#: one colour per phase, in budget order (as on the web map), unfunded grey
PHASE_COLOURS = ["#1f78b4", "#33a02c", "#ff7f00", "#6a3d9a", "#e31a1c", "#b15928", "#01665e"]
UNFUNDED = "#9e9e9e"
WORK_COLS = ["work_id", "county", "indicator", "action", "item", "unit", "quantity",
             "unit_cost", "cost", "priority", "phase", "funded", "villages", "prerequisite", "line_m"]
ZH = {"work_id": "项目编号", "county": "县", "indicator": "指标", "action": "类型",
      "item": "项目", "unit": "单位", "quantity": "数量", "unit_cost": "单价（元）",
      "cost": "投资（元）", "priority": "优先级", "phase": "期次", "funded": "已安排资金",
      "villages": "受益村数", "prerequisite": "前置项目", "line_m": "线路长度（米）",
      "village_codes": "受益村代码", "villages_completed": "完成村数", "assessed": "评估数",
      "met": "达标数", "rate": "达标率", "target": "目标", "deadline": "时限",
      "meets_target": "达到目标"}
ACTIONS_ZH = {"build": "新建", "upgrade": "改造", "extend": "延伸", "verify": "核实"}


def attach_plan(data: ReportData, plan_path: str | Path) -> ReportData:
    """``data`` with the plan read from ``plan_path`` (its run must be ``data``'s)."""
    from dataclasses import replace

    from buque.geo.plan.archive import read_plan

    try:
        plan = read_plan(plan_path)
    except FileNotFoundError as e:
        raise ExportError("--plan", str(e)) from None
    rid, want = plan.meta.get("run", {}).get("run_id"), data.manifest.get("run_id")
    if rid != want:
        raise ExportError("--plan", f"{plan_path}: a plan of run {rid!r}, not of the exported "
                          f"run {want!r}")
    return replace(data, plan=plan)


def _counties(data: ReportData) -> list[str] | None:
    return list(data.selection.counties) or None


def plan_tables(data: ReportData, lang: str = "zh") -> dict[str, pd.DataFrame]:
    """The 项目库 (one row per work, with the villages it serves) and 分期表 (phases.csv) of the
    selection, column names in ``lang``."""
    plan = data.plan
    w = pd.DataFrame(plan.works.drop(columns=plan.works.geometry.name))
    ph = plan.phases.copy()
    counties = _counties(data)
    if counties is not None:
        w = w[w["county"].isin(counties).to_numpy()]
        ph = ph[ph["county"].isin(counties).to_numpy()]
    wv = plan.work_villages
    codes = (wv.groupby("work_id", sort=False)["village_code"]
             .agg(lambda s: "、".join(sorted(set(s.astype(str))))))
    w = w.rename(columns={"parent": "prerequisite"})
    w = w[[c for c in WORK_COLS if c in w.columns]].assign(
        village_codes=w["work_id"].map(codes).fillna("").to_numpy())
    labels = {b["phase"]: i for i, b in enumerate(plan.meta.get("budgets", []))}
    w = w.assign(_p=w["phase"].map(labels).fillna(len(labels)).to_numpy()).sort_values(
        ["_p", "priority", "work_id"], kind="stable").drop(columns="_p")
    _register_headers()
    yes, no = ("是", "否") if lang == "zh" else ("yes", "no")
    w = w.assign(funded=np.where(w["funded"].astype(bool), yes, no))
    if lang == "zh":
        w = w.assign(action=w["action"].map(ACTIONS_ZH).fillna(w["action"]))
    names = ("项目库", "分期表") if lang == "zh" else ("Works", "Phases")
    return {names[0]: w.reset_index(drop=True), names[1]: ph.reset_index(drop=True)}


def _register_headers() -> None:
    """The ledger's column headers for the plan's columns (those it has keep theirs)."""
    from buque.geo.report.text import COLUMNS

    for k, zh in ZH.items():
        COLUMNS.setdefault(k, (zh, k.replace("_", " ")))


def phase_colour(plan: Any) -> dict[str, str]:
    return {str(b["phase"]): PHASE_COLOURS[i % len(PHASE_COLOURS)]
            for i, b in enumerate(plan.meta.get("budgets", []))}


def draw_planned(ax, data: ReportData, crs: Any, bbox, s: float, lang: str,  # noqa: ANN001
                 draw_lines) -> list:  # noqa: ANN001
    """The plan's lines (new and hardened) in the map frame, coloured by phase, drawn with the
    map's ``draw_lines``; legend handles (one per phase drawn, and unfunded)."""
    from matplotlib.lines import Line2D

    w = data.plan.works
    w = w[w.geom_type.isin(["LineString", "MultiLineString"]).to_numpy()]
    counties = _counties(data)
    if counties is not None:
        w = w[w["county"].isin(counties).to_numpy()]
    if w.empty:
        return []
    w = w.iloc[np.sort(w.sindex.query(bbox, predicate="intersects"))]
    if w.empty:
        return []
    w = w.to_crs(crs)
    colours = phase_colour(data.plan)
    phase = w["phase"].astype(object).where(w["phase"].notna(), None)
    out = []
    for label, colour in [*colours.items(), (None, UNFUNDED)]:
        sel = (phase == label).to_numpy() if label is not None else phase.isna().to_numpy()
        if not sel.any():
            continue
        draw_lines(ax, w.geometry.to_numpy()[sel], edgecolor=colour, linewidth=1.6 * s,
                   zorder=7, alpha=0.95 if label is not None else 0.7)
        text = ((f"规划项目 第{label}期" if lang == "zh" else f"planned works, phase {label}")
                if label is not None else ("规划项目（未安排资金）" if lang == "zh"
                                           else "planned works (unfunded)"))
        out.append(Line2D([], [], color=colour, lw=2.0 * s, label=text))
    return out


_register_headers()
