"""The Arrow column helpers the table steps use, against plain pandas (an independent path)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from buque.geo.archive import read_run
from buque.geo.columns import concat_text, first_occurrence, ranks, take_text
from buque.geo.remedies import PROJECT_COLUMNS

WORDS = ["水", "电", "路", "a", "B", "b", "", "北京市", "z9", "10", "9", None]


@pytest.mark.parametrize("pool_size", [0, 1, 3, 12, 5000])
def test_take_text_is_a_take_with_nulls_for_negative_positions(pool_size):
    rng = np.random.default_rng(pool_size)
    pool = pd.array([WORDS[i % len(WORDS)] if i % 7 else f"id:{i}" for i in range(pool_size)],
                    dtype="string")
    idx = rng.integers(-1, max(pool_size, 1), 2000) if pool_size else np.full(50, -1)
    got = take_text(pool, idx)
    want = pool.take(idx, allow_fill=True)
    assert got.dtype == want.dtype == pd.StringDtype("pyarrow", na_value=pd.NA)
    pd.testing.assert_series_equal(pd.Series(got), pd.Series(want))


def test_take_text_accepts_plain_lists_and_chunked_arrow():
    got = take_text(["met", "missing", "unknown"], np.array([2, 0, 0, 1, -1]))
    assert list(pd.Series(got).astype(object).where(pd.Series(got).notna(), None)) == [
        "unknown", "met", "met", "missing", None]
    chunked = pd.Series(["x", "y", None, "z"], dtype="string")  # Arrow-backed: chunked inside
    pd.testing.assert_series_equal(pd.Series(take_text(chunked, np.array([3, 2, 1]))),
                                   pd.Series(chunked.array.take(np.array([3, 2, 1]))))


@pytest.mark.parametrize("dtype", ["string", "str", object])
def test_first_occurrence_is_not_duplicated_keep_first(dtype):
    rng = np.random.default_rng(4)
    values = np.array([WORDS[i] for i in rng.integers(0, len(WORDS), 4000)], dtype=object)
    col = pd.Series(values, dtype=dtype)
    # several Arrow chunks, as a concatenation of layers makes them
    col = pd.concat([col.iloc[:1500], col.iloc[1500:]], ignore_index=True)
    assert np.array_equal(first_occurrence(col), ~col.duplicated(keep="first").to_numpy())


def test_concat_text_chains_chunked_columns_in_order():
    a = pd.concat([pd.Series(["水", None], dtype="string"), pd.Series(["x"], dtype="string")],
                  ignore_index=True)  # chunked inside
    b = pd.Series(["路", "b"], dtype="str")
    got = concat_text([a, b, pd.Series([], dtype="string")])
    assert got.type == "large_string"
    assert got.to_pylist() == ["水", None, "x", "路", "b"]
    assert concat_text([]).to_pylist() == []


@pytest.mark.parametrize("distinct", [3, 40, 6000])
def test_ranks_are_pandas_dense_ranks_nulls_last(distinct):
    rng = np.random.default_rng(distinct)
    pool = [f"{w or ''}{i}" for i, w in enumerate(WORDS * (distinct // len(WORDS) + 1))][:distinct]
    text = pd.Series(pd.array([pool[i] for i in rng.integers(0, distinct, 5000)], dtype="string"))
    text[rng.random(5000) < 0.05] = pd.NA
    years = pd.Series(pd.array(rng.integers(2020, 2020 + distinct, 5000), dtype="Int64"))
    years[rng.random(5000) < 0.05] = pd.NA
    for col in (text, years):
        want = col.rank(method="dense", na_option="bottom").to_numpy(dtype=np.int64)
        assert np.array_equal(ranks(col).astype(np.int64), want)


def test_lexsort_of_ranks_orders_like_a_stable_pandas_sort():
    rng = np.random.default_rng(1)
    n = 3000
    df = pd.DataFrame({
        "p": rng.integers(1, 4, n),
        "y": pd.array(np.where(rng.random(n) < 0.2, None, rng.integers(2025, 2029, n)),
                      dtype="Int64"),
        "c": pd.array([WORDS[i] for i in rng.integers(0, len(WORDS), n)], dtype="string"),
        "t": pd.array([WORDS[i] for i in rng.integers(0, len(WORDS), n)], dtype="string"),
    })
    keys = ["p", "y", "c", "t"]
    want = df.sort_values(keys, na_position="last", kind="stable").index.to_numpy()
    order = np.lexsort([ranks(df[k]) for k in reversed(keys)])
    assert np.array_equal(order, want)


@pytest.mark.parametrize("which", ["synth_points_run", "andorra_run"])
def test_remedies_come_in_the_documented_order(which, request):
    run = request.getfixturevalue(which)
    p = run.tables.projects if hasattr(run, "tables") else read_run(run.out).projects
    assert len(p) > 10 and list(p.columns) == PROJECT_COLUMNS
    keys = ["priority", "exit_year", "county", "township", "village_code", "indicator"]
    again = p.sort_values(keys, na_position="last", kind="stable")
    assert np.array_equal(again.index.to_numpy(), np.arange(len(p)))
    assert np.array_equal(p["rank"].to_numpy(), np.arange(1, len(p) + 1))
    assert p[["village_code", "indicator"]].duplicated().sum() == 0
