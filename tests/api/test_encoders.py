"""The vectorised JSON encoding of feature properties agrees with json.dumps/json.loads."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from buque.api.encoders import FeatureTable, json_objects


def test_json_objects_escapes_and_nulls():
    t = pa.table({
        "s": ["a\"b", "c\\d", "e\nf", None, "中文\t", "\x01", "x\u2028y"],
        "f": [1.5, float("nan"), float("inf"), None, 2.0, -0.0, 1e-7],
        "b": [True, False, None, True, True, False, True],
        "i": pa.array([1, None, 3, -4, 5, 6, 2**53], pa.int64()),
    })
    for text, row in zip(json_objects(t).to_pylist(), t.to_pylist(), strict=True):
        got = json.loads(text)
        assert list(got) == list(row)
        for k, v in row.items():
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            assert got[k] == v, (k, got[k], v)


def test_feature_table_round_trip(tables):
    v = tables.villages
    props = v.drop(columns="geometry").reset_index(drop=True)
    props.loc[0, "name"] = 'quote " back\\slash\ttab'
    ft = FeatureTable(props, v.geometry.to_numpy(), id_column="code")
    fc = json.loads(ft.collection(np.arange(len(v)), {"numberMatched": len(v)}))
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == len(v)
    for f, (_, row), g in zip(fc["features"], props.iterrows(), v.geometry, strict=True):
        assert f["id"] == row["code"]
        assert f["properties"]["name"] == (None if pd.isna(row["name"]) else row["name"])
        assert shapely.equals_exact(shapely.geometry.shape(f["geometry"]), g, 1e-12)
