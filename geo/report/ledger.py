"""The ledger (台账) as XLSX: about, rates vs targets, one sheet per indicator, to-verify list.

Each sheet has a title row, a frozen header with filters, column widths that fit Chinese text
(a CJK character counts twice), number formats per column, and print settings (fit to page
width, header rows repeated, page numbers). Written with XlsxWriter, column by column; formulas
and URLs are never inferred from text (a village named "=..." stays text).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from xlsxwriter import Workbook

from buque.geo.report.filters import ReportData, place_name
from buque.geo.report.tables import deficient, summary_table, unknowns
from buque.geo.report.text import col, profile_label, reason, t

WIDE = r"[\u1100-\u115F\u2E80-\u303E\u3041-\u33FF\u3400-\u4DBF\u4E00-\u9FFF\uA000-\uA4CF" \
       r"\uAC00-\uD7A3\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFF60\uFFE0-\uFFE6]"
MIN_WIDTH, MAX_WIDTH = 6, 48
PAPER_CODES = {"A4": 9, "A3": 8}
INVALID_SHEET = re.compile(r"[\[\]:*?/\\]")

NUM = {"population": "#,##0", "households": "#,##0", "exit_year": "0", "distance_m": "#,##0",
       "candidate_distance_m": "#,##0", "quantity": "#,##0.###", "unit_cost": "#,##0",
       "cost": "#,##0", "priority": "0", "assessed": "#,##0", "met": "#,##0",
       "missing": "#,##0", "unknown": "#,##0", "rate": "0.0%", "target": "0%",
       "shortfall": "#,##0", "no": "0"}


def display_width(s: pd.Series) -> int:
    """Widest cell of ``s`` in character cells, CJK characters counting two (vectorised)."""
    txt = s.drop_duplicates().astype("string").fillna("")
    if txt.empty:
        return 0
    w = txt.str.len() + txt.str.count(WIDE)
    return int(w.max())


def cells(s: pd.Series) -> list:
    """A column as Python values for XlsxWriter: numbers, text, None for blanks."""
    if pd.api.types.is_bool_dtype(s.dtype):
        s = s.astype(object)
    if pd.api.types.is_numeric_dtype(s.dtype):
        f = pd.to_numeric(s, errors="coerce").astype(float)
        return f.astype(object).where(f.notna(), None).tolist()
    return s.astype(object).where(s.notna(), None).tolist()


def sheet_name(label: str, used: set[str]) -> str:
    """A valid, unique worksheet name (≤ 31 characters, no []:*?/\\)."""
    base = INVALID_SHEET.sub("_", label).strip("'")[:31] or "Sheet"
    name, i = base, 2
    while name.lower() in used:
        suffix = f" ({i})"
        name, i = base[:31 - len(suffix)] + suffix, i + 1
    used.add(name.lower())
    return name


def _yes_no(s: pd.Series, lang: str) -> pd.Series:
    b = s.astype("boolean")
    return pd.Series(np.where(b.isna(), "", np.where(b.fillna(False), t("yes", lang), t("no", lang))),
                     index=s.index, dtype="string")


def _label(data: ReportData, key: str, lang: str) -> str:
    ind = data.indicator(key)
    return ind.label_zh if lang == "zh" else ind.label_en


def parent_label(codes: pd.Series, data: ReportData, lang: str) -> pd.Series:
    """Parent village codes as ``名称（代码）`` (``Name (code)``); the code alone when the run
    has no name for it."""
    v = data.all_villages
    names = pd.Series(v["name"].astype("string").to_numpy(),
                      index=v["code"].astype("string").to_numpy())
    names = names[~names.index.duplicated()]
    c = codes.astype("string")
    n = c.map(names)
    left, right = ("（", "）") if lang == "zh" else (" (", ")")
    return (n + left + c + right).fillna(c)


def total_row(df: pd.DataFrame, lang: str) -> dict[str, Any]:
    """The 合计 (total) row of a ledger sheet: villages counted, people, households and cost
    summed, quantities summed where they share one unit."""
    row: dict[str, Any] = {df.columns[0]: t("total", lang)}
    if "name" in df:
        row["name"] = (f"{len(df):,} 个村" if lang == "zh" else f"{len(df):,} villages")
    for c in ("population", "households", "cost"):
        if c in df:
            row[c] = float(pd.to_numeric(df[c], errors="coerce").sum())
    if "quantity" in df and "unit" in df and df["unit"].dropna().nunique() == 1:
        row["quantity"] = float(pd.to_numeric(df["quantity"], errors="coerce").sum())
        row["unit"] = df["unit"].dropna().iloc[0]
    return row


def _display_deficient(data: ReportData, key: str, lang: str) -> pd.DataFrame:
    d = deficient(data, key)
    out = pd.DataFrame({"no": np.arange(1, len(d) + 1)})
    ind = data.indicator(key)
    for c in d.columns:
        s = d[c]
        if c == "level":
            s = s.map({"admin": t("level_admin", lang), "natural": t("level_natural", lang)})
        elif c == "parent":
            s = parent_label(s, data, lang)
        elif c == "poor":
            s = _yes_no(s, lang)
        elif c in ("population", "households", "exit_year", "priority"):
            s = pd.to_numeric(s, errors="coerce").round().astype("Int64")
        elif c == "distance_m":
            s = pd.to_numeric(s, errors="coerce").round(0)
        elif c == "action":
            s = s.map({"build": t("build", lang), "upgrade": t("upgrade", lang)})
        elif c == "reason":
            s = s.map({r: reason(r, lang) for r in s.dropna().unique()})
        elif c == "item" and lang != "zh":
            en = {"build": ind.remedy.item_en or ind.remedy.item,
                  "upgrade": (ind.upgrade.item_en or ind.upgrade.item) if ind.upgrade else ""}
            s = d["action"].map(en).fillna(s)
        out[c] = s.reset_index(drop=True)
    return out


def _display_unknowns(data: ReportData, lang: str) -> pd.DataFrame:
    d = unknowns(data)
    out = pd.DataFrame({"no": np.arange(1, len(d) + 1)})
    labels = {k: _label(data, k, lang) for k in data.indicators}
    reasons = {r: reason(r, lang) for r in d["reason"].dropna().unique()}
    for c in d.columns:
        s = d[c]
        if c == "level":
            s = s.map({"admin": t("level_admin", lang), "natural": t("level_natural", lang)})
        elif c == "parent":
            s = parent_label(s, data, lang)
        elif c == "indicator":
            s = s.map(labels)
        elif c == "reason":
            s = s.map(reasons)
        elif c in ("distance_m", "candidate_distance_m"):
            s = pd.to_numeric(s, errors="coerce").round(0)
        out[c] = s.reset_index(drop=True)
    return out


def _display_summary(data: ReportData, lang: str) -> pd.DataFrame:
    s = summary_table(data)
    out = s.copy()
    total = out["county"].isna()
    out["county"] = out["county"].astype("string").where(~total, t("total", lang))
    town_total = out["township"].isna() & ~total
    out["township"] = out["township"].astype("string").where(
        ~town_total, "全县" if lang == "zh" else "(county)").fillna("")
    out["indicator"] = out["indicator"].map({k: _label(data, k, lang) for k in data.indicators})
    out["meets_target"] = _yes_no(out["meets_target"], lang)
    return out


def _display_discrepancies(data: ReportData, lang: str) -> pd.DataFrame | None:
    """The run's ledger discrepancies of the selected villages (None: no ledger check)."""
    from buque.geo.ledger import CLASS_ZH, read_discrepancies  # noqa: PLC0415

    d = read_discrepancies(data.run) if data.run is not None else None
    if d is None:
        return None
    d = d[d["village_code"].isin(data.villages["code"].astype("string")) &
          d["indicator"].isin(list(data.indicators))].reset_index(drop=True)
    zh = lang == "zh"
    words = {"met": t("yes", lang), "missing": t("no", lang)}
    cls = {k: (f"{v}（{k}）" if zh else k) for k, v in CLASS_ZH.items()}
    return pd.DataFrame({
        "no": np.arange(1, len(d) + 1), "county": d["county"], "township": d["township"],
        "code": d["village_code"], "name": d["name"],
        "indicator": d["indicator"].map({k: _label(data, k, lang) for k in data.indicators}),
        "class": d["class"].map(cls), "claimed": d["claimed"].map(words),
        "status": d["status"].map({"met": "达标", "missing": "未达标", "unknown": "待核实"})
        if zh else d["status"], "distance_m": d["distance_m"], "evidence_id": d["evidence_id"],
        "assessed_at": d["assessed_at"], "ledger_row": d["ledger_row"].astype("Float64")})


def _write_sheet(wb: Workbook, name: str, title: str, df: pd.DataFrame, lang: str,
                 fmt: dict[str, Any], paper: str, freeze_cols: int = 0,
                 red_rate: bool = False, total: dict[str, Any] | None = None) -> None:
    """One table: title row, header row, data, an optional total row below the filtered range;
    frozen, filtered, sized, print-ready."""
    headers = [col(c, lang) for c in df.columns]
    ws = wb.add_worksheet(name)
    for j, c in enumerate(df.columns):  # columns, each written whole
        ws.write_column(2, j, cells(df[c]))
    n, m = len(df), len(df.columns)
    ws.merge_range(0, 0, 0, max(m - 1, 1), title, fmt["title"])
    ws.set_row(0, 24)
    ws.write_row(1, 0, headers, fmt["header"])
    ws.set_row(1, 30)
    for j, c in enumerate(df.columns):
        width = max(display_width(pd.Series([headers[j]])) * 0.8 + 2,
                    display_width(df[c]) + 2, MIN_WIDTH)
        ws.set_column(j, j, min(width, MAX_WIDTH), fmt.get(c, fmt["text"]))
    if total is not None:  # below the data, outside the filter (sorting never moves it)
        for j, c in enumerate(df.columns):
            v = total.get(c)
            if isinstance(v, float):
                ws.write_number(2 + n, j, v, fmt[f"total {c}"] if f"total {c}" in fmt
                                else fmt["total"])
            elif v is not None:
                ws.write_string(2 + n, j, str(v), fmt["total"])
    ws.freeze_panes(2, freeze_cols)
    ws.autofilter(1, 0, 1 + max(n, 1), m - 1)
    if red_rate and n:
        r, tg = df.columns.get_loc("rate"), df.columns.get_loc("target")
        rc, tc = _col_letter(r), _col_letter(tg)
        ws.conditional_format(2, r, 1 + n, r, {
            "type": "formula", "criteria": f"=AND(ISNUMBER(${rc}3),${rc}3<${tc}3)",
            "format": fmt["below"]})
    ws.set_landscape()
    ws.set_paper(PAPER_CODES.get(paper, 9))
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0, 1)
    ws.set_footer("&L&8" + title.replace("&", "&&") + "&R&8&P / &N")


def _col_letter(j: int) -> str:
    s = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        s = chr(65 + r) + s
    return s


def _about(data: ReportData, lang: str) -> pd.DataFrame:
    m, p = data.manifest, data.profile
    sel = data.selection
    zh = lang == "zh"
    rows: list[tuple[str, Any]] = [
        ("标题" if zh else "Title", f"{place_name(data, lang)} {t('ledger_title', lang)}"),
        ("项目" if zh else "Project", m.get("project", {}).get("name", "")),
        ("运行编号" if zh else "Run id", m.get("run_id", "")),
        ("评估时间" if zh else "Assessed at", m.get("created", "")),
        ("标准" if zh else "Standard", profile_label(p, lang) if zh
         else f"{p.name} {p.version} {p.title}"),
        ("标准 SHA-256" if zh else "Standard SHA-256", m.get("profile", {}).get("sha256", "")),
        ("县" if zh else "Counties", "、".join(sel.counties) or t("all_area", lang)),
        ("乡镇" if zh else "Townships", "、".join(sel.townships) or t("all_area", lang)),
        ("指标" if zh else "Indicators", "、".join(_label(data, k, lang) for k in data.indicators)),
        ("村庄数" if zh else "Villages", len(data.villages)),
        ("缺口（村·项）" if zh else "Gaps (village × indicator)",
         int((data.gaps["status"] == "missing").sum())),
        ("估算总投资（元）" if zh else "Estimated total cost (CNY)",
         float(data.projects["cost"].sum()) if len(data.projects) else 0.0),
        ("生成" if zh else "Generated",
         f"Buque {m.get('tool', {}).get('version', '')} {dt.datetime.now():%Y-%m-%d %H:%M}"),
    ]
    rows += [("数据许可" if zh else "Data licence", a) for a in data.attribution]
    for k in data.indicators:
        ind = data.indicator(k)
        thr = ind.threshold_m or ind.fallback_threshold_m or ind.default_radius_m
        rows.append((_label(data, k, lang),
                     ("目标 {:.0%}，时限 {}，阈值 {} 米，措施 {}（{:,.0f} 元/{}）" if zh else
                      "target {:.0%}, deadline {}, threshold {} m, remedy {} ({:,.0f} CNY/{})").format(
                         ind.target_rate, ind.deadline.isoformat(), f"{thr:g}" if thr else "–",
                         ind.remedy.item if zh else (ind.remedy.item_en or ind.remedy.item),
                         ind.remedy.unit_cost, ind.remedy.unit)))
    return pd.DataFrame(rows, columns=["key", "value"])


def write_xlsx(data: ReportData, out: Path, lang: str = "zh", paper: str = "A4") -> Path:
    """Write the ledger of ``data`` to ``out``."""
    opts = {"strings_to_urls": False, "strings_to_formulas": False, "strings_to_numbers": False}
    place = place_name(data, lang)
    wb = Workbook(str(out), opts)
    try:
        wb.set_properties({"title": f"{place} {t('ledger_title', lang)}", "author": "Buque",
                           "comments": f"run {data.manifest.get('run_id', '')}; "
                                       + "; ".join(data.attribution)})
        base = {"font_name": "等线" if lang == "zh" else "Calibri", "font_size": 10}
        fmt: dict[str, Any] = {
            "text": wb.add_format({**base}),
            "title": wb.add_format({**base, "bold": True, "font_size": 14, "align": "left",
                                    "valign": "vcenter"}),
            "header": wb.add_format({**base, "bold": True, "text_wrap": True, "valign": "vcenter",
                                     "align": "center", "bg_color": "#DDEBF7", "border": 1}),
            "below": wb.add_format({"font_color": "#B2182B", "bold": True}),
        }
        for c, nf in NUM.items():
            fmt[c] = wb.add_format({**base, "num_format": nf})
            fmt[f"total {c}"] = wb.add_format({**base, "num_format": nf, "bold": True,
                                               "top": 1})
        fmt["total"] = wb.add_format({**base, "bold": True, "top": 1})
        used: set[str] = set()
        about = _about(data, lang)
        ws = wb.add_worksheet(sheet_name(t("sheet_about", lang), used))
        ws.write_column(0, 0, cells(about["key"]))
        ws.write_column(0, 1, cells(about["value"]))
        ws.set_column(0, 0, max(display_width(about["key"]) + 2, 12), fmt["header"])
        ws.set_column(1, 1, 90, fmt["text"])
        summ = _display_summary(data, lang)
        _write_sheet(wb, sheet_name(t("sheet_summary", lang), used),
                     f"{place} {t('stats_title', lang)}", summ, lang, fmt, paper,
                     freeze_cols=3, red_rate=True)
        for k in data.indicators:
            label = _label(data, k, lang)
            df = _display_deficient(data, k, lang)
            title = (f"{place} {label} 缺口台账（{len(df):,} 个村）" if lang == "zh"
                     else f"{place} — {label}: {len(df):,} villages missing")
            _write_sheet(wb, sheet_name(label, used), title, df, lang, fmt, paper, freeze_cols=5,
                         total=total_row(df, lang))
        if data.plan is not None:  # buque export --plan: the works and the phases
            from buque.geo.report.planned import plan_tables

            for name, df in plan_tables(data, lang).items():
                title = (f"{place} {name}（{len(df):,} 行）" if lang == "zh"
                         else f"{place} — plan {name.lower()}: {len(df):,} rows")
                _write_sheet(wb, sheet_name(name, used), title, df, lang, fmt, paper,
                             freeze_cols=1)
        unk = _display_unknowns(data, lang)
        if len(unk):
            title = (f"{place} 待核实（{len(unk):,} 项）" if lang == "zh"
                     else f"{place} — to verify: {len(unk):,}")
            _write_sheet(wb, sheet_name(t("sheet_unknown", lang), used), title, unk, lang, fmt,
                         paper, freeze_cols=5)
        disc = _display_discrepancies(data, lang)
        if disc is not None:
            title = (f"{place} 台账与证据不符（{len(disc):,} 项）" if lang == "zh"
                     else f"{place} — ledger vs evidence: {len(disc):,}")
            _write_sheet(wb, sheet_name("台账核对" if lang == "zh" else "Ledger check", used),
                         title, disc, lang, fmt, paper, freeze_cols=5)
    finally:
        wb.close()
    return out


def ledger_bytes(data: ReportData, lang: str = "zh", paper: str = "A4") -> bytes:
    """The ledger of ``data`` (as :func:`write_xlsx` writes it) as bytes, for an HTTP answer."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="buque-ledger-") as tmp:
        path = write_xlsx(data, Path(tmp) / "ledger.xlsx", lang=lang, paper=paper)
        return path.read_bytes()
