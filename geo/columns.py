"""Column helpers that stay in Arrow: no round trips of text columns through Python objects.

pandas 3 keeps text in Arrow-backed string arrays; converting them to object arrays (``to_numpy``)
and back is what made the table steps slow. These helpers code and gather text by position.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def strings(values: object) -> pd.api.extensions.ExtensionArray:
    """A pandas ``string`` array of ``values`` (a sequence, array or Series)."""
    return pd.array(values, dtype="string")


def _arrow(column: pd.Series | Sequence[str]) -> pa.Array:
    """A text column as an Arrow string array (no copy when it already is one)."""
    return pa.array(pd.Series(column, dtype="string").array)


def codes(column: pd.Series, categories: Sequence[str]) -> np.ndarray:
    """Position of each value of a text column in ``categories`` (-1: null or not listed)."""
    out = pc.index_in(_arrow(column), value_set=pa.array(list(categories), pa.large_string()))
    return pc.fill_null(out, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def equals(column: pd.Series, value: str) -> np.ndarray:
    """Boolean mask of ``column == value`` (null: False)."""
    return (column == value).to_numpy(dtype=bool, na_value=False)


def isin(column: pd.Series, values: pd.Series | Sequence[str]) -> np.ndarray:
    """Boolean mask of the values of a text column found in ``values`` (null: False)."""
    return pc.fill_null(pc.is_in(_arrow(column), value_set=_arrow(values)),
                        False).to_numpy(zero_copy_only=False)


def positions(keys: pd.Series, index: pd.Series) -> np.ndarray:
    """The first position where ``index`` equals each key (-1 where none, or a null key)."""
    pos = pc.index_in(_arrow(keys), value_set=_arrow(index))
    return pc.fill_null(pos, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def lookup(keys: pd.Series, index: pd.Series, values: pd.Series) -> pd.api.extensions.ExtensionArray:
    """``values`` at the first position where ``index`` equals each key (null where none)."""
    return values.array.take(positions(keys, index), allow_fill=True)
