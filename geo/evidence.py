"""Three-valued evaluation of a profile's conditions on attribute tables (vectorised).

Each feature (or village) gets ``PASS`` (1), ``FAIL`` (0) or ``UNKNOWN`` (-1). Conditions combine
with AND: any fail fails, else any unknown is unknown, else pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from buque.layers.indicator import Condition

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


def fields_of(cond: Condition) -> list[str]:
    """The fields a condition reads (its own and those of its ``if_null`` fallbacks)."""
    out: list[str] = []
    while isinstance(cond, Condition):
        out.append(cond.field)
        cond = cond.if_null
    return list(dict.fromkeys(out))


def evaluate_all(df: pd.DataFrame, conds: Sequence[Condition]) -> np.ndarray:
    """AND of all conditions (an empty list passes everything)."""
    return _and(len(df), [evaluate(df, c) for c in conds])


def _and(n: int, results: Sequence[np.ndarray]) -> np.ndarray:
    """Three-valued AND of per-condition results: any fail fails, else any unknown is unknown."""
    out = np.full(n, PASS, dtype=np.int8)
    for r in results:
        out = np.where((out == FAIL) | (r == FAIL), FAIL,
                       np.where((out == UNKNOWN) | (r == UNKNOWN), UNKNOWN, PASS)).astype(np.int8)
    return out


#: values of an ``in`` / ``not_in`` list shown in a description before "…"
LIST_SHOWN = 3


def _values(cond: Condition) -> str:
    vals = [str(v) for v in cond.value]
    return "[" + ", ".join(vals[:LIST_SHOWN]) + (", …" if len(vals) > LIST_SHOWN else "") + "]"


def _number(s: pd.Series) -> pd.Series:
    """Numbers as short text: 3.0 -> ``3.0``, 3.25 -> ``3.25`` (vectorised)."""
    return pd.to_numeric(s, errors="coerce").astype("Float64").round(3).astype("string")


def _describe(df: pd.DataFrame, cond: Condition) -> pd.Series:
    """Why ``cond`` does not pass on each row of ``df`` (all rows FAIL or UNKNOWN on it)."""
    f = cond.field
    col = df[f] if f in df else pd.Series(pd.NA, index=df.index, dtype="string")
    null = (pd.to_numeric(col, errors="coerce").isna() if cond.op in ("min", "max")
            else col.isna()).to_numpy(dtype=bool)
    out = pd.Series(pd.NA, index=df.index, dtype="string")
    if null.any():
        if isinstance(cond.if_null, Condition):  # the fallback decided: say why it did not pass
            sub = df.loc[null]
            r = evaluate(sub, cond.if_null)
            out[null] = _first(sub, [cond.if_null], [r], r).to_numpy()
        else:
            out[null] = f"{f} unknown"
    if (~null).any():
        c = col[~null]
        if cond.op in ("in", "not_in"):
            word = "not in" if cond.op == "in" else "in"
            text = f + " '" + c.astype("string").str.strip() + f"' {word} {_values(cond)}"
        elif cond.op == "eq":
            want = str(cond.value).lower() if isinstance(cond.value, bool) else str(cond.value)
            shown = c.astype("string").str.strip()
            if isinstance(cond.value, bool):
                shown = shown.str.lower()
            text = f + " '" + shown + f"' != {want}"
        else:
            text = f + " " + _number(c) + (f" < {cond.value:g}" if cond.op == "min"
                                           else f" > {cond.value:g}")
        out[~null] = text.to_numpy()
    return out


def _first(df: pd.DataFrame, conds: Sequence[Condition], results: Sequence[np.ndarray],
           cls: np.ndarray) -> pd.Series:
    """The first condition that fails each FAIL row, or is unknown on each UNKNOWN row
    (``results``: each condition's evaluation, ``cls`` their AND)."""
    out = pd.Series(pd.NA, index=df.index, dtype="string")
    for c, r in zip(conds, results, strict=True):
        todo = (r == cls) & (cls != PASS) & out.isna().to_numpy()
        if todo.any():
            out[todo] = _describe(df.loc[todo], c).to_numpy()
    return out


def explain(df: pd.DataFrame, conds: Sequence[Condition]) -> pd.Series:
    """Per row of ``df``: the first of ``conds`` that fails it, else the first that is unknown
    on it, in words (``width_m 3.0 < 3.5``, ``surface 'gravel' not in [asphalt, concrete, …]``,
    ``standardized unknown``); null where every condition passes.

    Vectorised: the text is built per condition with pandas string operations, and only for
    the rows that condition decides. Returns a ``string`` Series on ``df``'s index.
    """
    frame = df.reset_index(drop=True)
    results = [evaluate(frame, c) for c in conds]  # each condition evaluated once
    out = _first(frame, list(conds), results, _and(len(frame), results))
    out.index = df.index
    return out
