"""The household register (建档立卡): read, validate, attach to the run's villages.

不漏一户: every data row is either in the returned table or rejected into the run's
``rejected.csv`` with file, row and reason (a row with the wrong number of fields, no id, a
duplicate id, a value that does not parse, a village code not in the run). Booleans accept
是/否, 有/无, Y/N, 1/0, true/false; ``housing_grade`` A/B/C/D (also ``A级``), 无房/none for
no house. Derived: ``housing_safe`` (住房安全有保障) is true for grade A or B or a renovated
house, false for grade C, D or no house not renovated, null when the grade is not recorded or
the renovation of a C/D house is not (never guessed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from buque.layers.errors import BuqueInputError, Report, line_of
from buque.layers.readers import ROW, read_text_table
from buque.layers.registers import HEADER_ALIASES, REGISTER_FIELDS, REQUIRED, RegisterSpec
from buque.layers.schema import FALSE_STRINGS, TRUE_STRINGS

GRADES = ("A", "B", "C", "D", "none")
NO_HOUSE = {"无房", "无", "NONE", "无住房", "NO HOUSE"}


def read_table(spec: RegisterSpec) -> tuple[pd.DataFrame, list]:
    """The register's rows as text (``_row``: 1-based data row) and the unreadable rows."""
    path = spec.path
    if not path.is_file():
        raise BuqueInputError(str(path), f"[registers.{spec.kind}]: no such file")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        try:
            df = pd.read_excel(path, sheet_name=spec.sheet or 0, dtype=str, engine="openpyxl")
        except (OSError, ValueError, KeyError) as e:
            raise BuqueInputError(str(path), f"cannot read register '{spec.kind}': {e}") from e
        df = df.apply(lambda c: c.str.strip()).replace({"": None})
        df[ROW] = np.arange(1, len(df) + 1)
        return df, []
    return read_text_table(path, spec.encoding, what=f"register '{spec.kind}'")


def _column(df: pd.DataFrame, spec: RegisterSpec, canon: str) -> str | None:
    if canon in spec.fields:
        src = spec.fields[canon]
        if src not in df.columns:
            raise BuqueInputError(str(spec.path), f"[registers.{spec.kind}] fields: column "
                                  f"{src!r} (for {canon}) is not in the file; its columns: "
                                  f"{', '.join(map(str, df.columns[:30]))}", field=canon)
        return src
    for name in (canon, *HEADER_ALIASES.get(canon, ())):
        if name in df.columns:
            return name
    return None


def _parse(col: pd.Series, typ: str) -> pd.Series:
    """Typed values; null where blank or unparsable (the caller tells which)."""
    s = col.astype("string").str.strip()
    if typ == "string":
        return s.mask(s == "")
    if typ == "int":
        n = pd.to_numeric(s, errors="coerce")
        ok = n.notna() & (n == n.round()) & (n >= 0)
        return n.where(ok).astype("Int64")
    if typ == "bool":
        low = s.str.lower()
        out = pd.Series(pd.NA, index=col.index, dtype="boolean")
        out[low.isin(TRUE_STRINGS).fillna(False).to_numpy(bool)] = True
        out[low.isin(FALSE_STRINGS).fillna(False).to_numpy(bool)] = False
        return out
    g = s.str.upper().str.replace("级", "", regex=False).str.replace("類", "", regex=False)
    g = g.str.strip()
    out = g.where(g.isin(["A", "B", "C", "D"]))
    return out.mask(g.isin(NO_HOUSE).fillna(False), "none")


def read_households(spec: RegisterSpec, report: Report) -> tuple[pd.DataFrame, int]:
    """The valid households (canonical fields, ``housing_safe``, ``_row``) and the number of
    data rows in the file; the others are rejected into ``report``."""
    path, kind = str(spec.path), spec.kind
    df, bad = read_table(spec)
    for b in bad:
        report.reject(path, kind, [b.row], b.reason)
    n_in = len(df) + len(bad)
    fields = REGISTER_FIELDS[kind]
    cols = {c: _column(df, spec, c) for c in fields}
    for c in REQUIRED[kind]:
        if cols[c] is None:
            raise BuqueInputError(path, f"[registers.{kind}]: no {c} column (map it with "
                                  f"fields = {{ {c} = \"COLUMN\" }})", field=c)
    out = pd.DataFrame({ROW: df[ROW].to_numpy()})
    ok = np.ones(len(df), dtype=bool)
    ids = _parse(df[cols["id"]], "string").to_numpy(dtype=object, na_value=None)

    def reject(mask: np.ndarray, reason, fld: str) -> None:
        nonlocal ok
        mask = mask & ok
        if mask.any():
            r = reason if isinstance(reason, str) else np.asarray(reason, dtype=object)[mask]
            report.reject(path, kind, df[ROW].to_numpy()[mask], r, codes=ids[mask], field=fld)
            ok &= ~mask

    for c, typ in fields.items():
        if cols[c] is None:
            out[c] = _parse(pd.Series(pd.NA, index=df.index, dtype="string"), typ).array
            continue
        raw = df[cols[c]]
        val = _parse(raw, typ)
        blank = raw.astype("string").str.strip().fillna("").eq("").to_numpy(bool)
        if c in REQUIRED[kind]:
            reject(blank, f"no {c}", c)
        unparsed = ~blank & val.isna().to_numpy(bool)
        what = {"int": "a whole number ≥ 0", "bool": "是/否, 有/无, Y/N, 1/0 or true/false",
                "grade": "A, B, C, D or 无房 (no house)", "string": "text"}[typ]
        reject(unparsed, f"{c} " + raw.astype("string").str.slice(0, 40).map(repr)
               + f" is not {what}", c)
        out[c] = val.array
    yr = out["exit_year"]
    reject(((yr < 1990) | (yr > 2100)).to_numpy(bool, na_value=False),
           "exit_year " + yr.astype("string") + " is not a year between 1990 and 2100",
           "exit_year")
    first = pd.Series(df[ROW].to_numpy()).groupby(pd.Series(ids).where(ok)).transform("first")
    dup = pd.Series(ids).where(ok).duplicated(keep="first").to_numpy(bool)
    reject(dup, "duplicate id " + pd.Series(ids).astype("string").map(repr)
           + " (first at row " + first.map(lambda r: str(line_of(r)) if pd.notna(r) else "")
           + ")", "id")
    out = out[ok].reset_index(drop=True)
    grade, ren = out["housing_grade"], out["housing_renovated"]
    good = grade.isin(["A", "B"]).fillna(False) | ren.fillna(False)
    badh = grade.isin(["C", "D", "none"]).fillna(False) & ren.eq(False).fillna(False)
    out["housing_safe"] = pd.array(np.where(good, True, np.where(badh, False, None)),
                                   dtype="boolean")
    return out, n_in


def attach_villages(hh: pd.DataFrame, villages: pd.DataFrame, report: Report, spec: RegisterSpec
                    ) -> pd.DataFrame:
    """Each household's administrative village (``admin_code``) and, when coded to a natural
    village, that one (``natural_code``); a code not in the run is a rejection."""
    v = villages[["code", "level", "village_code"]] if "village_code" in villages else \
        villages[["code", "level"]].assign(village_code=pd.NA)
    idx = pd.Index(v["code"].astype("string"))
    pos = idx.get_indexer(hh["village_code"].astype("string"))
    unknown = pos < 0
    if unknown.any():
        report.reject(str(spec.path), spec.kind, hh[ROW].to_numpy()[unknown],
                      "village_code " + hh["village_code"][unknown].astype("string").map(repr)
                      + " is not a village of this run (not in the village layers, or rejected)",
                      codes=hh["id"].to_numpy(dtype=object)[unknown], field="village_code")
    hh = hh[~unknown].reset_index(drop=True)
    pos = pos[~unknown]
    level = v["level"].to_numpy(dtype=object)[pos]
    natural = level == "natural"
    parent = v["village_code"].astype("string").to_numpy(dtype=object, na_value=None)[pos]
    code = hh["village_code"].to_numpy(dtype=object)
    hh["admin_code"] = pd.array(np.where(natural, parent, code), dtype="string")
    hh["natural_code"] = pd.array(np.where(natural, code, None), dtype="string")
    return hh


def load_registers(registers: dict[str, RegisterSpec], villages: pd.DataFrame, report: Report
                   ) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, int]]]:
    """Every register of the project, attached to ``villages``, and per register its counts
    ``{in, assessed, rejected}`` (in = assessed + rejected: 不漏一户)."""
    out, counts = {}, {}
    for kind, spec in registers.items():
        before = report.n_rejected(kind)
        hh, n_in = read_households(spec, report)
        hh = attach_villages(hh, villages, report, spec)
        out[kind] = hh
        counts[kind] = {"in": int(n_in), "assessed": len(hh),
                        "rejected": report.n_rejected(kind) - before}
        assert counts[kind]["in"] == counts[kind]["assessed"] + counts[kind]["rejected"], counts
    return out, counts
