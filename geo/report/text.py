"""Wording of the exports in Chinese and English (one table, looked up by key)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePath
from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[str, ...] = ("zh", "en")

_T: dict[str, tuple[str, str]] = {
    # map
    "gap_map": ("补短板缺口图", "Gap map"),
    "ind_map": ("{label}缺口图", "{label} gaps"),
    "run_date": ("评估日期 {date}", "Assessed {date}"),
    "profile": ("标准 {name} {version}", "Standard {name} {version}"),
    "counts": ("行政村 {admin:,} · 自然村 {natural:,} · 有缺口 {gaps:,}",
               "{admin:,} administrative · {natural:,} natural villages · {gaps:,} with gaps"),
    "source": ("数据来源：{sources}", "Sources: {sources}"),
    "run": ("运行 {run_id}", "run {run_id}"),
    "input_villages": ("行政村", "administrative villages"),
    "input_natural_villages": ("自然村", "natural villages"),
    "input_roads": ("道路", "roads"),
    "input_power": ("电力设施", "power"),
    "input_water": ("水源", "water points"),
    "input_clinics": ("卫生室", "clinics"),
    "input_broadband": ("通信基站", "telecom sites"),
    "input_boundaries": ("行政界线", "boundaries"),
    "input_official": ("村庄名录", "official village list"),
    "made_with": ("Buque {version} 制图 {date} · 运行 {run_id}",
                  "Made with Buque {version} on {date} · run {run_id}"),
    "legend_villages": ("村庄（缺口数）", "Villages (gaps)"),
    "legend_status": ("村庄（{label}）", "Villages ({label})"),
    "legend_infra": ("基础设施", "Infrastructure"),
    "no_gap": ("无缺口", "No gap"),
    "to_verify": ("无缺口，待核实", "No gap, to verify"),
    "n_gaps": ("{n}项缺口", "{n} gaps"),
    "n_gap": ("{n}项缺口", "{n} gap"),
    "n_gaps_more": ("{n}项及以上", "{n} or more"),
    "met": ("达标", "Met"),
    "missing": ("缺口", "Missing"),
    "unknown": ("待核实", "To verify"),
    "admin_marker": ("行政村", "Administrative village"),
    "natural_marker": ("自然村", "Natural village"),
    "context": ("范围外村庄", "Outside the selection"),
    "road_pass": ("硬化路", "Hardened road"),
    "road_fail": ("未硬化路", "Unhardened road"),
    "road_unknown": ("路面未知", "Surface unknown"),
    "power_line": ("电力线路", "Power line"),
    "power_point": ("变压器/变电站", "Transformer, substation"),
    "water_pass": ("安全水源", "Safe water point"),
    "water_other": ("其他水源", "Other water point"),
    "clinic_pass": ("标准化卫生室", "Standardized clinic"),
    "clinic_other": ("其他卫生室", "Other clinic"),
    "tower": ("通信基站", "Mobile / fibre site"),
    "coverage": ("覆盖范围", "Coverage"),
    "stats_title": ("达标率", "Rates"),
    "stats_head": ("指标|应评|达标率|目标|缺口", "Indicator|Assessed|Rate|Target|Gaps"),
    "overview": ("位置示意", "Location"),
    "north": ("北", "N"),
    "scale": ("比例尺 1:{n:,}", "Scale 1:{n:,}"),
    "km": ("千米", "km"),
    "m": ("米", "m"),
    "all_area": ("全域", "All"),
    "etc": ("等", " etc."),
    "sep": ("、", ", "),
    # ledger
    "sheet_about": ("说明", "About"),
    "sheet_summary": ("汇总", "Summary"),
    "sheet_unknown": ("待核实", "To verify"),
    "ledger_title": ("农村基础设施补短板台账", "Rural infrastructure gap ledger"),
    "total": ("合计", "Total"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "level_admin": ("行政村", "administrative"),
    "level_natural": ("自然村", "natural"),
    "build": ("新建", "build"),
    "upgrade": ("改造", "upgrade"),
    # html
    "layers": ("图层", "Layers"),
    "layer_roads": ("道路", "Roads"),
    "layer_power": ("电力设施", "Power"),
    "layer_water": ("水源", "Water points"),
    "layer_clinics": ("卫生室", "Clinics"),
    "layer_broadband": ("通信基站", "Telecom sites"),
    "villages": ("村庄", "Villages"),
    "distance": ("距离", "Distance"),
    "nearest": ("最近设施", "Nearest"),
    "remedy": ("措施", "Remedy"),
    "cost": ("投资", "Cost"),
    "yuan": ("元", "CNY"),
    "population": ("人口", "Population"),
    "households": ("户数", "Households"),
    "poor": ("脱贫村", "Poverty-exit village"),
    "exit_year": ("脱贫年份", "Exit year"),
    "not_assessed": ("不适用", "not assessed"),
}

#: ledger / table column headers, (zh, en) per canonical column
COLUMNS: dict[str, tuple[str, str]] = {
    "no": ("序号", "No."),
    "class": ("台账与证据不符", "Ledger vs evidence"),
    "claimed": ("台账填报", "Ledger claims"),
    "assessed_at": ("核算于", "Assessed at"),
    "ledger_row": ("台账行号", "Ledger row"),
    "county": ("县（市、区）", "County"),
    "township": ("乡（镇）", "Township"),
    "code": ("村代码", "Village code"),
    "name": ("村名", "Village"),
    "level": ("层级", "Level"),
    "parent": ("所属行政村", "Parent village"),
    "population": ("人口", "Population"),
    "households": ("户数", "Households"),
    "poor": ("脱贫村", "Poverty-exit village"),
    "exit_year": ("脱贫年份", "Exit year"),
    "distance_m": ("距最近达标设施（米）", "Distance to nearest qualifying (m)"),
    "evidence_id": ("最近达标设施", "Nearest qualifying feature"),
    "candidate_id": ("附近未达标设施", "Nearby non-qualifying feature"),
    "candidate_distance_m": ("附近设施距离（米）", "Nearby feature distance (m)"),
    "reason": ("原因", "Reason"),
    "failed": ("未达标条件", "Failed condition"),
    "action": ("类型", "Action"),
    "item": ("补短板措施", "Remedy"),
    "quantity": ("数量", "Quantity"),
    "unit": ("单位", "Unit"),
    "unit_cost": ("单价（元）", "Unit cost (CNY)"),
    "cost": ("估算投资（元）", "Estimated cost (CNY)"),
    "priority": ("优先级", "Priority"),
    "deadline": ("完成时限", "Deadline"),
    "indicator": ("指标", "Indicator"),
    "assessed": ("应评估村数", "Assessed"),
    "met": ("达标村数", "Met"),
    "missing": ("缺口村数", "Missing"),
    "unknown": ("待核实村数", "To verify"),
    "rate": ("达标率", "Rate"),
    "target": ("目标", "Target"),
    "shortfall": ("距目标差（村）", "Shortfall (villages)"),
    "meets_target": ("是否达标", "Meets target"),
    "status": ("状态", "Status"),
}

#: why a gap row has its status (gaps.parquet ``reason``)
REASONS: dict[str, tuple[str, str]] = {
    "within_threshold": ("阈值内有达标设施", "a qualifying feature lies within the threshold"),
    "inside_village": ("村内有达标设施", "a qualifying feature lies inside the village"),
    "covered": ("在覆盖范围内", "inside a qualifying coverage area"),
    "unverified_nearby": ("附近设施属性未知，需核实",
                          "only features with unknown attributes are near"),
    "non_qualifying_nearby": ("附近设施未达标（如未硬化、未标准化）",
                              "nearby features do not qualify (e.g. unpaved, not standardized)"),
    "none_within_threshold": ("阈值内无达标设施", "the nearest qualifying feature is too far"),
    "no_qualifying_feature": ("范围内无达标设施", "no qualifying feature in reach"),
    "layer_not_provided": ("未提供该图层", "the project has no layer for this indicator"),
    "rule_needs_polygon": ("需村界面数据", "the rule needs a village polygon"),
}


def t(key: str, lang: str, **kw: object) -> str:
    """The wording ``key`` in ``lang``, formatted with ``kw``."""
    zh, en = _T[key]
    s = zh if lang == "zh" else en
    return s.format(**kw) if kw else s


def profile_label(profile: object, lang: str) -> str:
    """The standard a run used, in one language: ``标准：全国…标准（2026.1）`` (the profile's
    Chinese title without its English aside; its name when the title has no Chinese) or
    ``Standard national 2026.1``."""
    name, version = getattr(profile, "name", ""), getattr(profile, "version", "")
    if lang != "zh":
        return t("profile", lang, name=name, version=version)
    title = re.sub(r"\s*[(（][\x00-\x7f]*[)）]", "", str(getattr(profile, "title", ""))).strip()
    shown = title if re.search(r"[\u4e00-\u9fff]", title) else name
    return f"标准：{shown}（{version}）" if version else f"标准：{shown}"


def text_cells(text: str) -> int:
    """Width of ``text`` in half-em cells: a CJK (wide) character counts two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def sources_label(manifest: dict, lang: str, max_cells: int | None = None) -> str:
    """Where the data came from, as the footer says it: each input file's name with the
    layers read from it (``数据来源：admin.gpkg（行政村）、roads.shp（道路）``). Within
    ``max_cells`` (see :func:`text_cells`): the file names alone, then the first of them."""
    by_file: dict[str, list[str]] = {}
    for i in manifest.get("inputs", []):
        path = str(i.get("path") or i.get("source") or "")
        name = PurePath(path).name if path else str(i.get("source", ""))
        key = f"input_{i.get('layer', '')}"
        label = t(key, lang) if key in _T else str(i.get("layer", ""))
        by_file.setdefault(name, [])
        if label not in by_file[name]:
            by_file[name].append(label)
    if not by_file:
        return t("source", lang, sources=manifest.get("project", {}).get("name", ""))
    sep = t("sep", lang)
    left, right = ("（", "）") if lang == "zh" else (" (", ")")
    files = list(by_file)
    tries = [sep.join(f"{f}{left}{sep.join(ls)}{right}" if ls else f for f, ls in by_file.items()),
             *(sep.join(files[:k]) + (t("etc", lang) if k < len(files) else "")
               for k in range(len(files), 0, -1))]
    for text in tries:
        out = t("source", lang, sources=text)
        if max_cells is None or text_cells(out) <= max_cells:
            return out
    return out


def col(key: str, lang: str) -> str:
    """A table column header."""
    zh, en = COLUMNS[key]
    return zh if lang == "zh" else en


def reason(code: str, lang: str) -> str:
    zh, en = REASONS.get(code, (code, code))
    return zh if lang == "zh" else en


def all_strings(lang: str) -> str:
    """Every fixed string of ``lang`` (for font subsetting)."""
    i = 0 if lang == "zh" else 1
    return "".join(v[i] for d in (_T, COLUMNS, REASONS) for v in d.values())
