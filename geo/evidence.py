"""Three-valued evaluation of a profile's conditions on attribute tables (vectorised).

Each feature (or village) gets ``PASS`` (1), ``FAIL`` (0) or ``UNKNOWN`` (-1). Conditions combine
with AND: any fail fails, else any unknown is unknown, else pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from layers.profile import Condition

PASS, FAIL, UNKNOWN = np.int8(1), np.int8(0), np.int8(-1)


def _lower(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip().str.lower()


def evaluate(df: pd.DataFrame, cond: Condition) -> np.ndarray:
    """One condition on ``df``; a missing column counts as all null."""
    n = len(df)
    col = df[cond.field] if cond.field in df else pd.Series(pd.NA, index=df.index, dtype="string")
    null = col.isna().to_numpy()
    if cond.op in ("in", "not_in"):
        values = {str(v).strip().lower() for v in cond.value}
        hit = _lower(col).isin(values).fillna(False).to_numpy(dtype=bool)
        ok = hit if cond.op == "in" else ~hit
    elif cond.op == "eq":
        if isinstance(cond.value, bool):
            ok = (col.astype("boolean") == cond.value).fillna(False).to_numpy(dtype=bool)
        elif isinstance(cond.value, int | float):
            ok = (pd.to_numeric(col, errors="coerce") == cond.value).fillna(False).to_numpy(bool)
        else:
            ok = (_lower(col) == str(cond.value).lower()).fillna(False).to_numpy(dtype=bool)
    else:
        num = pd.to_numeric(col, errors="coerce").astype("Float64")
        null = num.isna().to_numpy()
        cmp = num >= cond.value if cond.op == "min" else num <= cond.value
        ok = cmp.fillna(False).to_numpy(dtype=bool)
    out = np.where(ok, PASS, FAIL).astype(np.int8)
    if null.any():
        if isinstance(cond.if_null, Condition):
            out[null] = evaluate(df.loc[null], cond.if_null)
        else:
            out[null] = {"pass": PASS, "fail": FAIL, "unknown": UNKNOWN}[cond.if_null]
    assert len(out) == n
    return out


def evaluate_all(df: pd.DataFrame, conds: Sequence[Condition]) -> np.ndarray:
    """AND of all conditions (an empty list passes everything)."""
    out = np.full(len(df), PASS, dtype=np.int8)
    for c in conds:
        r = evaluate(df, c)
        out = np.where((out == FAIL) | (r == FAIL), FAIL,
                       np.where((out == UNKNOWN) | (r == UNKNOWN), UNKNOWN, PASS)).astype(np.int8)
    return out
