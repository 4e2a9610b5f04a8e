"""Field results into a new run: the verified pairs carry the observed status, ``source = field``.

RESULTS (XLSX or CSV; the results sheet of ``buque sample``'s visit list as it is) has one row
per (village, indicator) visited: ``village_code``, ``indicator`` (key or Chinese label),
``observed`` (达标/未达标/是/否/... or met/missing/unknown), ``inspector``, ``date``, and
optionally ``note`` and ``photo``; Chinese headers (村代码, 指标, 核查结果, 核查人, 日期, 备注,
照片) are read too. A row whose ``observed`` is blank was not visited and is counted, not
applied. Rows that cannot be applied go to ``rejected.csv`` (layer ``field``) with their line:
no such village or pair in the run, an unreadable status, indicator or date, no inspector, a
pair repeated.

The new run is the source run's files copied byte for byte, with ``gaps.parquet`` (columns
``source`` = ``evidence`` | ``field``, ``model_status``, ``inspector``, ``inspected_on``,
``field_note``, ``field_photo``), ``villages.parquet`` (statuses, ``missing``), ``projects.csv``
and ``summary.csv`` recomputed with the run's own profile, ``discrepancies.csv`` re-classed,
``field.csv`` (the results applied), ``field_changes.csv`` (what the visit changed, as
``geo.diff`` counts it) and a manifest naming the source run (``derived_from``). The source run
is only read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from buque.geo.ledger import CLAIM_MET, CLAIM_MISSING
from buque.layers.errors import HEADER_LINES, BuqueInputError, Report
from buque.layers.readers import ROW
from buque.layers.tables import SHEET_SUFFIXES, read_sheet

LAYER = "field"
ALIASES = {
    "village_code": ("village_code", "code", "村代码", "村编码", "行政区划代码", "代码"),
    "indicator": ("indicator", "指标", "核查指标"),
    "observed": ("observed", "核查结果", "实际情况", "实地结果", "结果"),
    "inspector": ("inspector", "核查人", "核查人员", "检查人"),
    "date": ("date", "日期", "核查日期", "检查日期"),
    "note": ("note", "备注", "情况说明", "说明"),
    "photo": ("photo", "照片", "照片编号", "photo_ref"),
}
REQUIRED = ("village_code", "indicator", "observed", "inspector", "date")
UNKNOWN_WORDS = frozenset({"unknown", "待核实", "无法核实", "未知", "?"})
FIELD_COLUMNS = ["village_code", "indicator", "observed", "model_status", "inspector", "date",
                 "note", "photo", "results_row"]


@dataclass
class FieldResults:
    applied: pd.DataFrame   #: FIELD_COLUMNS
    rows: int
    blank: int


def _status(values: pd.Series) -> pd.Series:
    low = values.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="string")
    out[low.isin(CLAIM_MET).fillna(False).to_numpy(bool)] = "met"
    out[low.isin(CLAIM_MISSING).fillna(False).to_numpy(bool)] = "missing"
    out[low.isin(UNKNOWN_WORDS).fillna(False).to_numpy(bool)] = "unknown"
    return out


def _dates(values: pd.Series) -> pd.Series:
    """ISO dates from 2024-05-03, 2024/5/3, 2024.5.3, 2024年5月3日, 20240503 (null otherwise)."""
    s = values.astype("string").str.strip()
    m = s.str.extract(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T].*)?$")
    m2 = s.str.extract(r"^(\d{4})(\d{2})(\d{2})$")
    m = m.fillna(m2)
    out = []
    for y, mo, d in m.itertuples(index=False):  # rows of one field visit: a few hundred
        try:
            out.append(dt.date(int(y), int(mo), int(d)).isoformat())
        except (TypeError, ValueError):
            out.append(None)
    return pd.Series(out, index=values.index, dtype="string")


def _sheet_of(path: Path, sheet: str | None) -> str | None:
    if sheet is not None or path.suffix.lower() not in SHEET_SUFFIXES:
        return sheet
    from openpyxl import load_workbook  # noqa: PLC0415

    from buque.geo.sample import RESULTS_SHEET  # noqa: PLC0415

    try:
        wb = load_workbook(path, read_only=True)
        names = wb.sheetnames
        wb.close()
    except Exception:  # noqa: BLE001 - read_sheet reports an unreadable file itself
        return None
    return RESULTS_SHEET if RESULTS_SHEET in names else None


def read_results(path: Path, gaps: pd.DataFrame, labels: dict[str, str], report: Report, *,
                 encoding: str | None = None, sheet: str | None = None) -> FieldResults:
    """The field results that apply to pairs of ``gaps``; the others into ``report``."""
    path = Path(path)
    df, bad = read_sheet(path, encoding=encoding, sheet=_sheet_of(path, sheet),
                         what="the field results")
    for b in bad:
        report.reject(str(path), LAYER, [b.row], b.reason)
    low = {str(c).strip().lower(): c for c in df.columns if c != ROW}
    col = {k: next((low[a.lower()] for a in names if a.lower() in low), None)
           for k, names in ALIASES.items()}
    lack = [k for k in REQUIRED if col[k] is None]
    if lack:
        raise BuqueInputError(str(path), f"the field results need a '{lack[0]}' column (or "
                              f"{' / '.join(ALIASES[lack[0]][1:3])}); columns: "
                              f"{', '.join(map(str, low.values()))}", field=lack[0])

    def get(k: str) -> pd.Series:
        return (df[col[k]].astype("string").str.strip() if col[k] is not None else
                pd.Series(pd.NA, index=df.index, dtype="string"))

    code, ind_raw, obs_raw = get("village_code"), get("indicator"), get("observed")
    rows = df[ROW].to_numpy()
    blank = obs_raw.isna().to_numpy(bool)
    by_label = {**{k: k for k in labels}, **{v: k for k, v in labels.items()}}
    ind = ind_raw.map(by_label).astype("string")
    obs, date = _status(obs_raw), _dates(get("date"))
    insp = get("inspector")
    pair = pd.Series(list(zip(code.fillna(""), ind.fillna(""), strict=True)), index=df.index)
    known = pair.isin(set(zip(gaps["village_code"].astype(str), gaps["indicator"].astype(str),
                              strict=True))).to_numpy(bool)
    checks = [
        (code.isna().to_numpy(bool), "no village code", "village_code"),
        (ind.isna().to_numpy(bool), "indicator " + ind_raw.fillna("").map(repr) + " is not an "
         "indicator of the run (" + ", ".join(labels) + ")", "indicator"),
        (~known, "the run has no such (village, indicator): not a village of the run, or the "
         "indicator is not assessed there", "village_code"),
        (obs.isna().to_numpy(bool), "observed " + obs_raw.fillna("").map(repr) + " is not a "
         "status (达标/未达标, 是/否, met/missing/unknown)", "observed"),
        (insp.isna().to_numpy(bool), "no inspector (a field result needs who saw it)",
         "inspector"),
        (date.isna().to_numpy(bool), "date " + get("date").fillna("").map(repr) + " is not a "
         "date (2024-05-03, 2024/5/3, 2024年5月3日)", "date"),
    ]
    left = ~blank
    for mask, why, fld in checks:
        sel = left & mask
        if sel.any():
            reasons = why[sel].tolist() if isinstance(why, pd.Series) else why
            report.reject(str(path), LAYER, rows[sel], reasons, codes=code[sel].to_numpy(),
                          field=str(col[fld]))
            left &= ~sel
    dup = left & pair.where(left).duplicated(keep="first").to_numpy(bool) & \
        pair.where(left).notna().to_numpy(bool)
    if dup.any():
        first = pd.Series(rows + HEADER_LINES, index=pair).loc[lambda s: ~s.index.duplicated()]
        report.reject(str(path), LAYER, rows[dup],
                      ("repeats the (village, indicator) of row " +
                       pair[dup].map(first).astype(str)).tolist(),
                      codes=code[dup].to_numpy(), field=str(col["village_code"]))
        left &= ~dup
    applied = pd.DataFrame({
        "village_code": code[left].to_numpy(), "indicator": ind[left].to_numpy(),
        "observed": obs[left].to_numpy(), "inspector": insp[left].to_numpy(),
        "date": date[left].to_numpy(), "note": get("note")[left].to_numpy(),
        "photo": get("photo")[left].to_numpy(), "results_row": rows[left] + HEADER_LINES},
    ).astype({c: "string" for c in ("village_code", "indicator", "observed", "inspector",
                                    "date", "note", "photo")})
    return FieldResults(applied=applied, rows=len(df) + len(bad), blank=int(blank.sum()))


def apply_results(gaps: pd.DataFrame, applied: pd.DataFrame) -> pd.DataFrame:
    """``gaps`` with the observed statuses, ``source`` and the provenance columns."""
    g = gaps.copy()
    key = pd.MultiIndex.from_arrays([g["village_code"].astype(str), g["indicator"].astype(str)])
    at = pd.MultiIndex.from_arrays([applied["village_code"].astype(str),
                                    applied["indicator"].astype(str)])
    pos = key.get_indexer(at)
    was = g["status"].astype("string").to_numpy(dtype=object, na_value=None)
    had_source = "source" in g
    src = (g["source"].astype(object).to_numpy() if had_source
           else np.full(len(g), "evidence", dtype=object))
    model = (g["model_status"].astype(object).to_numpy() if "model_status" in g
             else was.copy())
    cols = {c: (g[c].astype(object).to_numpy() if c in g else np.full(len(g), None, object))
            for c in ("inspector", "inspected_on", "field_note", "field_photo")}
    status = was.copy()
    status[pos] = applied["observed"].to_numpy(dtype=object)
    src[pos] = "field"
    for c, a in (("inspector", "inspector"), ("inspected_on", "date"), ("field_note", "note"),
                 ("field_photo", "photo")):
        cols[c][pos] = applied[a].to_numpy(dtype=object, na_value=None)
    g["status"] = pd.array(status, dtype=gaps["status"].dtype if gaps["status"].dtype != object
                           else "string")
    g["source"] = pd.array(src, dtype="string")
    g["model_status"] = pd.array(model, dtype="string")
    for c, a in cols.items():
        g[c] = pd.array(a, dtype="string")
    return g


def village_statuses(villages: pd.DataFrame, gaps: pd.DataFrame, indicators: list[str]
                     ) -> pd.DataFrame:
    """The village table's status columns, ``n_missing`` and ``missing`` from ``gaps``."""
    v = villages.copy()
    code = v["code"].astype(str)
    for k in indicators:
        if k not in v:
            continue
        gk = gaps[gaps["indicator"].astype(str) == k]
        st = code.map(dict(zip(gk["village_code"].astype(str), gk["status"].astype(str),
                               strict=True)))
        v[k] = pd.array(st.where(st.notna(), None), dtype=v[k].dtype)
    keys = [k for k in indicators if k in v]
    miss = np.column_stack([(v[k] == "missing").to_numpy(bool, na_value=False) for k in keys]) \
        if keys else np.zeros((len(v), 0), bool)
    bits = (miss * (1 << np.arange(len(keys)))).sum(axis=1) if keys else np.zeros(len(v), int)
    combos, inv = np.unique(bits, return_inverse=True)
    text = np.array([",".join(k for j, k in enumerate(keys) if c >> j & 1) for c in combos],
                    dtype=object)
    v["n_missing"] = pd.array(miss.sum(axis=1), dtype=v["n_missing"].dtype)
    v["missing"] = pd.array(text[inv], dtype=v["missing"].dtype)
    return v


def _reclass(disc: pd.DataFrame, gaps: pd.DataFrame) -> pd.DataFrame:
    """Discrepancies with each pair's status as it now is (pairs that now agree dropped)."""
    from buque.geo.ledger import CLASSES  # noqa: PLC0415

    st = disc.merge(gaps[["village_code", "indicator", "status", "source"]].astype(
        {"village_code": "string", "indicator": "string", "status": "string"}),
        on=["village_code", "indicator"], how="left", suffixes=("_old", ""))
    st["status"] = st["status"].fillna(st["status_old"])
    cl, s = st["claimed"].astype(str), st["status"].astype(str)
    cls = np.select([(cl == "met") & (s == "missing"), (cl == "met") & (s == "unknown"),
                     (cl == "missing") & (s == "met")], list(CLASSES), default="")
    st["class"] = cls
    keep = [c for c in disc.columns] + ["source"]
    return st.loc[cls != "", keep].reset_index(drop=True)


def verify_run(run: Path, results: Path, out: Path, *, encoding: str | None = None,
               sheet: str | None = None) -> tuple[Path, FieldResults, pd.DataFrame]:
    """Write run ``out``: run ``run`` with the field results of ``results`` applied (module
    doc). Returns the new run, the results applied and the changes (``geo.diff`` rows)."""
    from buque.geo.archive import (  # noqa: PLC0415
        read_manifest,
        read_run,
        sha256_file,
        write_csv,
        write_geoparquet,
        write_parquet,
    )
    from buque.geo.derive import derive_run, derived_manifest, run_profile  # noqa: PLC0415
    from buque.geo.diff import diff_gaps  # noqa: PLC0415
    from buque.geo.ledger import DISCREPANCIES, labels_of, read_discrepancies, with_counts  # noqa: PLC0415
    from buque.geo.rates import summary  # noqa: PLC0415
    from buque.geo.remedies import remedies  # noqa: PLC0415

    run, out = Path(run).resolve(), Path(out).resolve()
    if out == run:
        raise FileExistsError(f"{out}: the field results make a new run; give another --out "
                              "(the original run is never changed)")
    t = read_run(run)
    manifest = read_manifest(run)
    levels = set(t.villages["level"].dropna().astype(str))
    profile = run_profile(manifest, levels)
    labels = labels_of(profile)
    report = Report()
    res = read_results(results, t.gaps, labels, report, encoding=encoding, sheet=sheet)
    gaps2 = apply_results(t.gaps, res.applied)
    inds = list(profile.indicators)
    v2 = village_statuses(t.villages, gaps2, inds)
    g_v = gaps2.assign(_v=pd.Index(v2["code"].astype(str)).get_indexer(
        gaps2["village_code"].astype(str)))
    projects = remedies(g_v, v2, profile)
    summ = summary(g_v, v2, profile)
    disc = read_discrepancies(run)
    writers = {}
    if disc is not None:
        disc2 = _reclass(disc, gaps2)
        summ = with_counts(summ, disc2)
        writers[DISCREPANCIES] = lambda p: write_csv(disc2, p)
    model = t.gaps.set_index([t.gaps["village_code"].astype(str),
                              t.gaps["indicator"].astype(str)])["status"]
    applied = res.applied.assign(model_status=pd.array(
        [model.get((c, k)) for c, k in zip(res.applied["village_code"], res.applied["indicator"],
                                           strict=True)], dtype="string"))[FIELD_COLUMNS]
    changes = diff_gaps(t.gaps, gaps2)
    old_rej = t.rejected[t.rejected["layer"].astype("string") != LAYER] if len(t.rejected) \
        else t.rejected
    new_rej = report.rejected_frame()
    rejected = pd.concat([old_rej.astype({c: "string" for c in ("file", "layer", "code", "name",
                                                                "field", "reason")}), new_rej],
                         ignore_index=True) if len(new_rej) else old_rej
    m = derived_manifest(manifest, run, "field", [Path(results)])
    m["counts"]["gaps"] = {k: {s: int(c) for s, c in g["status"].value_counts().items()}
                           for k, g in gaps2.groupby("indicator")}
    m["counts"]["remedy_cost"] = float(projects["cost"].sum()) if len(projects) else 0.0
    m["field"] = {"path": str(Path(results).resolve()), "sha256": sha256_file(Path(results)),
                  "rows": res.rows, "applied": int(len(applied)), "blank": res.blank,
                  "rejected": int(len(new_rej)), "changed": int(len(changes)),
                  "inspectors": sorted(set(applied["inspector"].dropna().astype(str))),
                  "dates": [str(applied["date"].min()), str(applied["date"].max())]
                  if len(applied) else []}
    writers.update({
        "gaps.parquet": lambda p: write_parquet(gaps2, p),
        "villages.parquet": lambda p: write_geoparquet(v2, p),
        "projects.csv": lambda p: write_csv(projects, p),
        "summary.csv": lambda p: write_csv(summ, p),
        "rejected.csv": lambda p: write_csv(rejected, p),
        "field.csv": lambda p: write_csv(applied, p),
        "field_changes.csv": lambda p: write_csv(changes, p),
    })
    derive_run(run, out, writers, m)
    return out, FieldResults(applied=applied, rows=res.rows, blank=res.blank), changes

