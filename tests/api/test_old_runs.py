"""Runs written before the village table became GeoParquet (``villages.gpkg``) still load: the
archive reader, the API (features, tiles, exports, diffs) and the report exports read them and
give what the same run gives as ``villages.parquet``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest

from buque.geo.archive import read_run


def as_old_run(new: Path, old: Path, run_id: str) -> Path:
    """``new`` rewritten as the earlier code wrote runs: villages.gpkg (written as it was, with
    pyogrio's GPKG driver), no villages.parquet; a run id of its own."""
    shutil.copytree(new, old)
    villages = gpd.read_parquet(old / "villages.parquet")
    pyogrio.write_dataframe(villages, old / "villages.gpkg", layer="villages", driver="GPKG",
                            use_arrow=True)
    (old / "villages.parquet").unlink()
    man = json.loads((old / "manifest.json").read_text("utf-8"))
    man["run_id"] = run_id
    man["created"] = "2026-01-01T00:00:00+00:00"
    (old / "manifest.json").write_text(json.dumps(man, ensure_ascii=False), "utf-8")
    return old


@pytest.fixture(scope="module")
def both(demo_run, tmp_path_factory) -> tuple[Path, str, str]:
    folder = tmp_path_factory.mktemp("old-and-new")
    shutil.copytree(demo_run, folder / "new")
    as_old_run(demo_run, folder / "old", "20260101T000000Z-0ld0ld00")
    new_id = json.loads((folder / "new" / "manifest.json").read_text("utf-8"))["run_id"]
    return folder, "20260101T000000Z-0ld0ld00", new_id


def test_read_run_gives_the_same_villages(both):
    folder, _, _ = both
    old, new = read_run(folder / "old").villages, read_run(folder / "new").villages
    assert list(old.columns) == list(new.columns)
    def values(v: gpd.GeoDataFrame) -> pd.DataFrame:  # NaN / NA / None alike
        df = pd.DataFrame(v.drop(columns="geometry")).astype(object)
        return df.where(df.notna(), None)

    pd.testing.assert_frame_equal(values(old), values(new), check_dtype=False)
    assert old.geometry.geom_equals_exact(new.geometry, tolerance=1e-9).all()
    assert old.crs.to_epsg() == new.crs.to_epsg() == 4326


def test_api_serves_an_old_run_like_the_new_one(both, make_client):
    folder, old_id, new_id = both
    with make_client(folder) as c:
        ids = [r["run_id"] for r in c.get("/runs").json()["runs"]]
        assert set(ids) == {old_id, new_id}
        q = "/collections/villages/items?limit=1000"
        a = c.get(f"{q}&run={old_id}").json()["features"]
        b = c.get(f"{q}&run={new_id}").json()["features"]
        assert len(a) == len(b) == 68
        assert [(f["id"], f["properties"]["missing"]) for f in a] == \
            [(f["id"], f["properties"]["missing"]) for f in b]
        d = c.get(f"/runs/{old_id}/diff/{new_id}").json()
        assert d["counts"] and all(n == 0 for per in d["counts"].values() for n in per.values()), d
        r = c.get(f"/exports/gpkg?run={old_id}")
        assert r.status_code == 200 and r.content[:16] == b"SQLite format 3\x00"


def test_a_run_without_the_failed_column_still_loads(demo_run, tmp_path, make_client):
    """gaps.parquet written before ``failed``: the popup, the XLSX ledger (API and export) and
    the village list still work, the failed condition left blank."""
    from buque.geo.report import ExportOptions, export

    run = tmp_path / "runs" / "nofailed"
    shutil.copytree(demo_run, run)
    g = pd.read_parquet(run / "gaps.parquet").drop(columns="failed")
    g.to_parquet(run / "gaps.parquet", index=False)
    assert "failed" not in read_run(run).gaps.columns
    export(run, tmp_path / "ledger.xlsx", ExportOptions(fmt="xlsx"))
    assert (tmp_path / "ledger.xlsx").stat().st_size > 0
    with make_client(run) as c:
        code = g.loc[g["candidate_id"].notna(), "village_code"].iloc[0]
        pop = c.get(f"/map/villages/{code}")
        assert pop.status_code == 200 and all("failed" not in x for x in pop.json()["gaps"])
        for url in ("/collections/villages/items?f=xlsx&missing=any", "/projects?f=xlsx",
                    "/collections/villages/items?f=csv"):
            assert c.get(url).status_code == 200, url
