"""The vectorised MVT encoder agrees with an independent decoder (mapbox_vector_tile)."""

import mapbox_vector_tile
import numpy as np
import pandas as pd
import pytest
import shapely

from buque.geo.mvt import PropertyTable, encode_layer, varints, zigzag


def _features() -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(0)
    pts = shapely.points(rng.integers(-50, 4150, (400, 2)))
    lines = shapely.linestrings(rng.integers(0, 4096, (30, 4, 2)))
    multi = shapely.multilinestrings([shapely.linestrings([[0, 0], [10, 10]]),
                                      shapely.linestrings([[20, 20], [30, 35], [40, 40]])])
    geoms = np.concatenate([pts, lines, [multi]])
    n = len(geoms)
    props = pd.DataFrame({
        "code": [f"村{i}" for i in range(n)],
        "n": pd.array(rng.integers(-2, 300, n), dtype="Int64"),
        "poor": pd.array(rng.random(n) < 0.3, dtype="boolean"),
        "d": rng.random(n) * 1000,
        "s": pd.array(np.where(rng.random(n) < 0.5, "met", None), dtype="string")})
    props.loc[3, "n"] = pd.NA
    props.loc[5, "poor"] = pd.NA
    return geoms, props


def test_varints_match_protobuf_rules() -> None:
    b, lens = varints(np.array([0, 1, 127, 128, 300, 2**32]))
    assert lens.tolist() == [1, 1, 1, 2, 2, 5]
    assert b[:6].tolist() == [0, 1, 127, 0x80, 0x01, 0xAC]
    assert zigzag(np.array([0, -1, 1, -2, 2])).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("subset", [False, True])
def test_layer_decodes_to_the_same_features(subset: bool) -> None:
    geoms, props = _features()
    rows = np.arange(len(geoms))
    if subset:
        rows = np.sort(np.random.default_rng(1).choice(len(geoms), 120, replace=False))
    data = encode_layer("villages", geoms[rows], PropertyTable(props), ids=rows, rows=rows)
    layer = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})["villages"]
    assert layer["extent"] == 4096
    assert len(layer["features"]) == len(rows)
    for k, f in zip(rows, layer["features"], strict=True):
        assert f["id"] == k
        assert shapely.geometry.shape(f["geometry"]).equals(geoms[k])
        p, r = f["properties"], props.iloc[k]
        assert p["code"] == r["code"]
        assert ("n" in p) == (not pd.isna(r["n"]))
        if not pd.isna(r["n"]):
            assert p["n"] == r["n"]
        assert ("poor" in p) == (not pd.isna(r["poor"]))
        if not pd.isna(r["poor"]):
            assert p["poor"] is bool(r["poor"])
        assert p["d"] == pytest.approx(r["d"], abs=1e-9)
        assert p.get("s") == (None if pd.isna(r["s"]) else r["s"])


def test_empty_layer_is_empty_bytes() -> None:
    assert encode_layer("x", np.array([], dtype=object), pd.DataFrame()) == b""
