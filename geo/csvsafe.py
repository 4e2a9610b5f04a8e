"""CSV cells that a spreadsheet will not run as formulas (CSV injection, OWASP's rule).

Names, codes and ids come from files anyone can edit; Excel and WPS evaluate a CSV cell that
begins with ``=``, ``+``, ``-`` or ``@`` (and treat a leading tab or carriage return the same
way). Every CSV the product writes passes its text columns through :func:`neutralise_table` or
:func:`neutralise_frame`: such a cell gets a leading ``'``, so it opens as text. Real numbers
are left alone: numeric columns are not touched, and a text cell that is a plain number
("-12.5", "+3", "1e-3") is written as it is.

The rule is reversible: a cell that already starts with quotes followed by a trigger
("'=x") gets one more quote, so :func:`restore_frame` (used where the archive reads its own
CSVs back) strips exactly one quote from cells matching ``'+`` + trigger and gives back the
original text.

Vectorised: Arrow compute (RE2) over whole columns, no per-cell Python.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: the first characters a spreadsheet treats as the start of a formula
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_CLASS = "[=+\\-@\\t\\r]"
_NEEDS_QUOTE = f"^'*{_CLASS}"          # a trigger, possibly behind quotes already there
_QUOTED = f"^'+{_CLASS}"               # what neutralising made (or would make) of it
_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _neutralise_array(a: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(a.type):
        d = _neutralise_array(a.dictionary)
        return a if d is a.dictionary else pa.DictionaryArray.from_arrays(a.indices, d)
    if not _is_text(a.type) or len(a) == 0:
        return a
    need = pc.match_substring_regex(a, _NEEDS_QUOTE)  # anchored: looks at the first bytes
    if not pc.any(need).as_py():  # the usual case: the number test (a full scan) is not needed
        return a
    hit = pc.and_kleene(need, pc.invert(pc.match_substring_regex(a, _NUMBER)))
    if not pc.any(hit).as_py():
        return a
    quoted = pc.replace_substring_regex(a, "^", "'", max_replacements=1)
    return pc.if_else(pc.fill_null(hit, False), quoted, a)


def neutralise_array(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Text values with a ``'`` before a leading formula trigger (numbers left alone)."""
    if isinstance(values, pa.ChunkedArray):
        chunks = [_neutralise_array(c) for c in values.chunks]
        if all(c is o for c, o in zip(chunks, values.chunks, strict=True)):
            return values
        return pa.chunked_array(chunks, type=chunks[0].type if chunks else values.type)
    return _neutralise_array(values)


def neutralise_table(table: pa.Table) -> pa.Table:
    """``table`` with every text column neutralised (see the module docstring)."""
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        t = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        if _is_text(t):
            new = neutralise_array(col)
            if new is not col:
                table = table.set_column(i, name, new)
    return table


def _text_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype == object
            or isinstance(df[c].dtype, pd.StringDtype | pd.CategoricalDtype)]


def _mask(s: pd.Series, pattern: str, not_number: bool) -> np.ndarray:
    """Cells of ``s`` (only its str values) matching ``pattern`` (and not plain numbers)."""
    if isinstance(s.dtype, pd.StringDtype):  # text already: Arrow takes it as it is
        is_str = s.notna().to_numpy(bool)
        arr = pa.array(s, from_pandas=True)
    else:  # object or categorical columns may mix text with other values
        obj = s.astype(object)
        is_str = np.fromiter((isinstance(x, str) for x in obj.to_numpy()), bool, len(obj))
        arr = pa.array(obj.where(is_str, None).to_numpy(), type=pa.large_string(),
                       from_pandas=True)
    if not is_str.any():
        return is_str
    hit = pc.match_substring_regex(arr, pattern)
    if not_number:
        hit = pc.and_kleene(hit, pc.invert(pc.match_substring_regex(arr, _NUMBER)))
    return pc.fill_null(hit, False).to_numpy(zero_copy_only=False) & is_str


def _rewrite(df: pd.DataFrame, pattern: str, not_number: bool, change) -> pd.DataFrame:
    """``df`` with ``change`` applied to the text cells matching ``pattern`` (a copy when
    anything changed; columns keep their dtype, categoricals become plain objects)."""
    out = df
    for c in _text_columns(df):
        hit = _mask(df[c], pattern, not_number)
        if hit.any():
            if out is df:
                out = df.copy()
            dtype = out[c].dtype
            col = out[c].astype(object)
            col[hit] = change(col[hit].astype(str))
            out[c] = col.astype(dtype) if not isinstance(dtype, pd.CategoricalDtype) else col
    return out


def neutralise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its text cells neutralised (a copy when anything changed)."""
    return _rewrite(df, _NEEDS_QUOTE, True, lambda t: "'" + t)


def restore_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The inverse of :func:`neutralise_frame` on text read back from a CSV the product wrote."""
    return _rewrite(df, _QUOTED, False, lambda t: t.str[1:])
