"""The office's ledger (台账) against the run's evidence: where they disagree, and how.

A ledger has one row per village and one column per indicator holding what the office claims
(是/否, 达标/未达标, 已通/未通, 有/无, Y/N, 1/0, true/false; a blank cell claims nothing). Each
claim is matched with the run's status of that (village, indicator):

======================================  =============  ==================  ===========
class                                   ledger claims  evidence says       meaning
======================================  =============  ==================  ===========
``claimed_met_evidence_missing``        met            missing             疑似虚报/错退: inspect first
``claimed_met_evidence_unknown``        met            unknown             待核实
``claimed_missing_evidence_met``        missing        met                 台账未更新
======================================  =============  ==================  ===========

A ledger row of an administrative village may claim an indicator the run assesses at its
natural villages (water, power): the claim is then checked against the worst of its natural
villages (missing before unknown before met; of equals, the farthest), named in ``assessed_at``.

Rows that cannot be used go to the report with their spreadsheet line and a reason: a code
that names no village of the run, a repeated code, no code, a value that is not a yes/no, a
claim about an indicator the run does not assess for that village. Vectorised (merges).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from buque.layers.errors import HEADER_LINES, BuqueInputError, Report
from buque.layers.project import LedgerSpec
from buque.layers.readers import ROW
from buque.layers.tables import read_sheet

LAYER = "ledger"
DISCREPANCIES = "discrepancies.csv"
CLASSES = ("claimed_met_evidence_missing", "claimed_met_evidence_unknown",
           "claimed_missing_evidence_met")
CLASS_ZH = {"claimed_met_evidence_missing": "疑似虚报/错退", "claimed_met_evidence_unknown": "待核实",
            "claimed_missing_evidence_met": "台账未更新"}
DISCREPANCY_COLUMNS = ["village_code", "name", "county", "township", "level", "indicator",
                       "class", "claimed", "status", "distance_m", "evidence_id", "candidate_id",
                       "candidate_distance_m", "reason", "assessed_at", "ledger_row",
                       "ledger_value"]
#: what a ledger cell may say (compared after stripping blanks, case-insensitively)
CLAIM_MET = frozenset({"是", "达标", "已达标", "已通", "通", "有", "已有", "合格", "已完成", "√", "✓",
                       "y", "yes", "1", "true", "t", "met"})
CLAIM_MISSING = frozenset({"否", "未达标", "不达标", "未通", "不通", "无", "没有", "不合格", "未完成",
                           "×", "✗", "n", "no", "0", "false", "f", "missing"})
#: column names taken for the village code when ``fields`` does not name one (first found)
CODE_NAMES = ("village_code", "code", "村代码", "村编码", "行政村代码", "行政区划代码", "区划代码",
              "村级代码", "代码", "编码")
NAME_NAMES = ("name", "村名", "村名称", "行政村", "村庄名称", "名称")
STATUS_RANK = {"missing": 0, "unknown": 1, "met": 2}


@dataclass
class LedgerCheck:
    """The claims read (``village_code``, ``indicator``, ``claimed``, ``ledger_value``,
    ``ledger_row`` = spreadsheet line), their discrepancies and the ledger's row counts."""

    claims: pd.DataFrame
    discrepancies: pd.DataFrame
    rows: int
    rejected_rows: int
    #: the ledger column read for the code, the name and each indicator; columns not read
    columns: dict[str, str | None]
    ignored: list[str]


def parse_claims(values: pd.Series) -> pd.Series:
    """``met`` / ``missing`` for each ledger cell, null where blank, ``"?"`` where unreadable."""
    s = values.astype("string").str.strip()
    low = s.str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="string")
    out[low.isin(CLAIM_MET).fillna(False).to_numpy(bool)] = "met"
    out[low.isin(CLAIM_MISSING).fillna(False).to_numpy(bool)] = "missing"
    bad = s.notna().to_numpy(bool) & (s != "").fillna(False).to_numpy(bool) & out.isna().to_numpy(bool)
    out[bad] = "?"
    return out


def _column(columns: list[str], explicit: str | None, names: tuple[str, ...]) -> str | None:
    if explicit:
        return explicit if explicit in columns else None
    low = {c.strip().lower(): c for c in columns}
    return next((low[n] for n in names if n in low), None)


def read_ledger(spec: LedgerSpec, indicators: Mapping[str, str], report: Report) -> tuple[
        pd.DataFrame, pd.DataFrame, int]:
    """The ledger's claims, one row per (village, indicator) with a yes/no; its rows with a
    code (``village_code``, ``ledger_name``, ``ledger_row``); and its row count.

    ``indicators`` maps each indicator key to its Chinese label: a column is taken for an
    indicator when ``fields`` names it, else when it is called by the key or the label.
    Unreadable cells and rows without a code are recorded in ``report``.
    """
    path = str(spec.path)
    df, bad = read_sheet(spec.path, encoding=spec.encoding, sheet=spec.sheet, what="the ledger")
    for b in bad:
        report.reject(path, LAYER, [b.row], b.reason)
    cols = [c for c in df.columns if c != ROW]
    unknown = sorted(set(spec.fields) - {"village_code", "name", *indicators})
    if unknown:
        raise BuqueInputError(path, f"[ledger] fields: unknown key '{unknown[0]}' (give "
                              f"village_code, name or an indicator key: {', '.join(indicators)})",
                              field=unknown[0])
    for key, src in spec.fields.items():
        if src not in cols:
            raise BuqueInputError(path, f"[ledger] fields maps '{key}' to '{src}', which the "
                                  f"ledger does not have (columns: {', '.join(cols)})", field=src)
    code_col = _column(cols, spec.fields.get("village_code"), CODE_NAMES)
    if code_col is None:
        raise BuqueInputError(path, "no village code column in the ledger (looked for "
                              f"{', '.join(CODE_NAMES)}); name it with fields = "
                              "{ village_code = \"COLUMN\" }", field="village_code")
    name_col = _column(cols, spec.fields.get("name"), NAME_NAMES)
    ind_cols = {}
    for key, label in indicators.items():
        c = spec.fields.get(key) or next((x for x in cols if x.strip() in (key, label)), None)
        if c is not None:
            ind_cols[key] = c
    if not ind_cols:
        raise BuqueInputError(path, "no indicator column in the ledger: name them with fields = "
                              "{ road = \"COLUMN\", ... } or head them with the indicator's key or "
                              f"label ({', '.join(f'{k} {v}' for k, v in indicators.items())})")
    code = df[code_col].astype("string").str.strip()
    name = df[name_col].astype("string") if name_col else pd.Series(pd.NA, index=df.index,
                                                                      dtype="string")
    rows = df[ROW].to_numpy()
    nocode = code.isna().to_numpy(bool)
    report.reject(path, LAYER, rows[nocode], "no village code", names=name[nocode].to_numpy(),
                  field=code_col)
    dup = code.duplicated(keep="first").to_numpy(bool) & ~nocode
    if dup.any():
        first = pd.Series(rows[~nocode & ~dup] + HEADER_LINES, index=code[~nocode & ~dup])
        why = ("repeats the village code of row " + code[dup].map(first).astype(str)).tolist()
        report.reject(path, LAYER, rows[dup], why, codes=code[dup].to_numpy(),
                      names=name[dup].to_numpy(), field=code_col)
    keep = ~nocode & ~dup
    parts = []
    for key, c in ind_cols.items():
        claim = parse_claims(df[c])
        odd = keep & (claim == "?").to_numpy(bool, na_value=False)
        report.reject(path, LAYER, rows[odd],
                      (f"'{key}': value " + df.loc[odd, c].astype(str).map(repr) +
                       " is not a yes/no (是/否, 达标/未达标, 已通/未通, 有/无, Y/N, 1/0)").tolist(),
                      codes=code[odd].to_numpy(), names=name[odd].to_numpy(), field=c)
        use = keep & claim.isin(["met", "missing"]).fillna(False).to_numpy(bool)
        parts.append(pd.DataFrame({
            "village_code": code[use].to_numpy(), "ledger_name": name[use].to_numpy(),
            "indicator": key, "claimed": claim[use].to_numpy(), "ledger_value": df.loc[use, c].to_numpy(),
            "ledger_row": rows[use] + HEADER_LINES, "ledger_field": c}))
    claims = pd.concat(parts, ignore_index=True).astype(
        {"village_code": "string", "indicator": "string", "claimed": "string",
         "ledger_value": "string", "ledger_name": "string", "ledger_field": "string"})
    coded = pd.DataFrame({"village_code": code[keep].to_numpy(), "ledger_name": name[keep].to_numpy(),
                          "ledger_row": rows[keep] + HEADER_LINES}).astype(
        {"village_code": "string", "ledger_name": "string"})
    coded.attrs["columns"] = {"village_code": code_col, "name": name_col, **ind_cols}
    coded.attrs["ignored"] = [c for c in cols if c not in (code_col, name_col, *ind_cols.values())]
    return claims, coded, len(df) + len(bad)


def _children_worst(gaps: pd.DataFrame, villages: pd.DataFrame) -> pd.DataFrame:
    """Per (administrative village, indicator) assessed at its natural villages: the worst one."""
    nat = villages.loc[villages["level"].astype("string") == "natural", ["code", "village_code"]]
    g = gaps.merge(nat.rename(columns={"code": "_child", "village_code": "_parent"}),
                   left_on="village_code", right_on="_child", how="inner")
    g = g[g["_parent"].notna()].copy()
    g["_rank"] = g["status"].astype(str).map(STATUS_RANK)
    g = g.sort_values(["_parent", "indicator", "_rank", "distance_m", "_child"],
                      ascending=[True, True, True, False, True], kind="stable")
    g = g.drop_duplicates(["_parent", "indicator"], keep="first")
    g["assessed_at"] = ("natural:" + g["_child"].astype(str)).astype("string")
    return g.drop(columns=["village_code", "_child", "_rank"]).rename(
        columns={"_parent": "village_code"})


def check_claims(claims: pd.DataFrame, coded: pd.DataFrame, gaps: pd.DataFrame,
                 villages: pd.DataFrame, report: Report, path: str, indicators: list[str]
                 ) -> pd.DataFrame:
    """The discrepancies of ``claims`` against the run's ``gaps`` (:data:`DISCREPANCY_COLUMNS`),
    ordered by class, county, township, village code and indicator (the profile's order).

    Rows of ``coded`` (the ledger's rows with a code) naming a village the run does not have
    are rejected into ``report``, once per row; so are claims of pairs it did not assess.
    """
    vcode = set(villages["code"].astype("string").dropna())
    known = claims["village_code"].isin(vcode).to_numpy(bool)
    bad = coded.loc[~coded["village_code"].isin(vcode).to_numpy(bool)]
    report.reject(path, LAYER, bad["ledger_row"].to_numpy() - HEADER_LINES,
                  "village code names no village of the run (not in its village layers, or "
                  "rejected there)", codes=bad["village_code"].to_numpy(),
                  names=bad["ledger_name"].to_numpy(),
                  field=coded.attrs.get("columns", {}).get("village_code", "village_code"))
    c = claims.loc[known]
    keep = ["village_code", "indicator", "status", "level", "distance_m", "evidence_id",
            "candidate_id", "candidate_distance_m", "reason"]
    g = gaps[[k for k in keep if k in gaps]].astype({"village_code": "string",
                                                     "indicator": "string"})
    m = c.merge(g.assign(assessed_at=pd.array([pd.NA] * len(g), dtype="string")),
                on=["village_code", "indicator"], how="left")
    unassessed = m["status"].isna().to_numpy(bool)
    if unassessed.any():
        kids = _children_worst(gaps.astype({"village_code": "string", "indicator": "string"}),
                               villages)
        sub = m.loc[unassessed, list(c.columns)].merge(
            kids[[k for k in [*keep, "assessed_at"] if k in kids]],
            on=["village_code", "indicator"], how="left")
        m = pd.concat([m.loc[~unassessed], sub], ignore_index=True)
    none = m["status"].isna().to_numpy(bool)
    for fld, nr in m.loc[none].groupby("ledger_field", sort=False):  # one group per column
        report.reject(path, LAYER, nr["ledger_row"].to_numpy() - HEADER_LINES,
                      ("'" + nr["indicator"].astype(str) + "': the run does not assess this "
                       "indicator for this village (not applicable to it)").tolist(),
                      codes=nr["village_code"].to_numpy(), names=nr["ledger_name"].to_numpy(),
                      field=str(fld))
    m = m.loc[~none]
    st, cl = m["status"].astype(str), m["claimed"].astype(str)
    cls = np.select([(cl == "met") & (st == "missing"), (cl == "met") & (st == "unknown"),
                     (cl == "missing") & (st == "met")], list(CLASSES), default="")
    d = m.loc[cls != ""].assign(**{"class": cls[cls != ""]})
    place = villages[["code", "name", "county", "township", "level"]].rename(
        columns={"code": "village_code", "level": "_vlevel"}).astype({"village_code": "string"})
    d = d.merge(place, on="village_code", how="left")
    d["level"] = d["_vlevel"].astype("string")  # an aggregated claim: assessed_at names the hamlet
    d["_c"] = d["class"].map({k: i for i, k in enumerate(CLASSES)})
    d["_i"] = d["indicator"].map({k: i for i, k in enumerate(indicators)})
    d = d.sort_values(["_c", "county", "township", "village_code", "_i"], kind="stable",
                      na_position="last")
    out = d.reindex(columns=DISCREPANCY_COLUMNS).reset_index(drop=True)
    out["ledger_row"] = out["ledger_row"].astype("Int64")
    return out


def check_ledger(spec: LedgerSpec, gaps: pd.DataFrame, villages: pd.DataFrame,
                 indicators: Mapping[str, str], report: Report) -> LedgerCheck:
    """Read the ledger of ``spec`` and check it against a run's gaps and village table."""
    claims, coded, rows = read_ledger(spec, indicators, report)
    disc = check_claims(claims, coded, gaps, villages, report, str(spec.path), list(indicators))
    rej = report.rejected_frame()
    rej = rej[(rej["layer"] == LAYER) & (rej["file"] == str(spec.path))]
    return LedgerCheck(claims=claims, discrepancies=disc, rows=rows,
                       rejected_rows=int(rej["row"].nunique()),
                       columns=coded.attrs["columns"], ignored=coded.attrs["ignored"])


def class_counts(disc: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Discrepancies per ``by`` (e.g. county, indicator), one count column per class."""
    if not len(disc):
        return pd.DataFrame(columns=[*by, *CLASSES])
    ct = disc.assign(n=1).pivot_table(index=by, columns="class", values="n", aggfunc="sum",
                                      fill_value=0, dropna=False, observed=True)
    ct = ct.reindex(columns=list(CLASSES), fill_value=0).reset_index()
    ct.columns.name = None
    for k in CLASSES:
        ct[k] = ct[k].astype("int64")
    return ct


def with_counts(summary: pd.DataFrame, disc: pd.DataFrame) -> pd.DataFrame:
    """``summary`` (summary.csv) with one column per discrepancy class: the counts of its county
    (county rows) or township (township rows) and indicator."""
    s = summary.drop(columns=[k for k in CLASSES if k in summary])
    d = disc.assign(county=disc["county"].astype("string").fillna(""),
                    township=disc["township"].astype("string").fillna(""))
    county = class_counts(d, ["county", "indicator"]).assign(scope="county", township="")
    town = class_counts(d, ["county", "township", "indicator"]).assign(scope="township")
    ct = pd.concat([county, town], ignore_index=True)
    key = ["scope", "county", "township", "indicator"]
    ct = ct.astype({k: "string" for k in key})
    s2 = s.astype({k: "string" for k in key}).fillna({"county": "", "township": ""})
    out = s.assign(_k=np.arange(len(s)))
    merged = s2[key].assign(_k=np.arange(len(s))).merge(ct, on=key, how="left")
    merged = merged.sort_values("_k")
    for k in CLASSES:
        out[k] = merged[k].fillna(0).astype("int64").to_numpy()
    return out.drop(columns="_k")


def labels_of(profile) -> dict[str, str]:
    """Indicator key -> Chinese label, in the profile's order (what ledger columns are called)."""
    return {k: i.label_zh for k, i in profile.indicators.items()}


def manifest_entry(spec: LedgerSpec, check: LedgerCheck) -> dict:
    """What a run's manifest says of the ledger it was checked against."""
    from buque.geo.archive import sha256_file  # noqa: PLC0415

    d = check.discrepancies
    return {"path": str(spec.path), "sha256": sha256_file(spec.path), "rows": check.rows,
            "rejected": check.rejected_rows, "claims": int(len(check.claims)),
            "columns": check.columns, "ignored_columns": check.ignored,
            "discrepancies": {k: int((d["class"] == k).sum()) for k in CLASSES}}


def read_discrepancies(run: Path) -> pd.DataFrame | None:
    """A run's ``discrepancies.csv`` (None when the run was not checked against a ledger)."""
    from buque.geo.archive import CSV_ENCODING  # noqa: PLC0415
    from buque.geo.csvsafe import restore_frame  # noqa: PLC0415

    p = Path(run) / DISCREPANCIES
    if not p.is_file():
        return None
    text = {c: "string" for c in ("village_code", "name", "county", "township", "level",
                                  "indicator", "class", "claimed", "status", "evidence_id",
                                  "candidate_id", "reason", "assessed_at", "ledger_value")}
    d = restore_frame(pd.read_csv(p, encoding=CSV_ENCODING, dtype=text, keep_default_na=False,
                                  na_values=[""]))
    return d.astype({"ledger_row": "Int64"})


def check_run(run: Path, spec: LedgerSpec, out: Path | None = None) -> tuple[Path, LedgerCheck]:
    """Check run ``run`` against the ledger of ``spec``; write the run with its
    ``discrepancies.csv``, the ledger's rejected rows in ``rejected.csv``, the class counts in
    ``summary.csv`` and ``ledger`` in the manifest to ``out`` (default: ``run`` itself,
    replaced atomically; its run id kept). A previous ledger check of the run is replaced."""
    from buque.geo.archive import read_manifest, read_run, write_csv  # noqa: PLC0415
    from buque.geo.derive import derive_run, derived_manifest, run_profile  # noqa: PLC0415

    run = Path(run).resolve()
    t = read_run(run)
    manifest = read_manifest(run)
    profile = run_profile(manifest, exact=False)
    report = Report()
    check = check_ledger(spec, t.gaps, t.villages, labels_of(profile), report)
    old = t.rejected[t.rejected["layer"].astype("string") != LAYER] if len(t.rejected) else \
        t.rejected
    new = report.rejected_frame()
    rejected = pd.concat([old.astype({c: "string" for c in ("file", "layer", "code", "name",
                                                            "field", "reason")}),
                          new], ignore_index=True) if len(new) else old
    summ = with_counts(t.summary, check.discrepancies)
    target = Path(out).resolve() if out is not None else run
    m = derived_manifest(manifest, run, "ledger", [spec.path], keep_id=target == run)
    m["ledger"] = manifest_entry(spec, check)
    derive_run(run, target, {
        DISCREPANCIES: lambda p: write_csv(check.discrepancies, p),
        "rejected.csv": lambda p: write_csv(rejected, p),
        "summary.csv": lambda p: write_csv(summ, p),
    }, m)
    return target, check
