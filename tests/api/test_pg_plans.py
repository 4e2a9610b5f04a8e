"""Plans in PostGIS: ``buque publish PLAN`` (the real CLI) into a real throwaway PostgreSQL +
PostGIS cluster, then ``/plans``, ``/plans/{id}`` and ``/plans/{id}/works`` served from it (the
plan folder removed first) answer exactly as they do from the plan archive."""

from __future__ import annotations

import shutil
import warnings

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from synth_world import run_cli

from buque.api.settings import Settings
from buque.geo.plan.archive import write_plan
from buque.geo.plan.make import make_plan

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

from pgtest import throwaway_cluster

from buque.api.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def pg():
    yield from throwaway_cluster("buque-plans", "the PostGIS plan tests")


def test_plans_published_and_served_from_postgis(pg, runs, tmp_path):
    from buque.api.pgstore import publish

    dsn = pg.dsn()
    publish(runs.a, dsn)
    files = tmp_path / "plans"
    write_plan(files / "small", make_plan(runs.a, ["2027=3e6", "2028=3e6"]))
    write_plan(files / "full", make_plan(runs.a))
    pub = tmp_path / "pub"
    shutil.copytree(files, pub)
    for name in ("small", "full", "small"):  # publishing again replaces the earlier copy
        p = run_cli("publish", pub / name, "--postgres", dsn)
        assert p.returncode == 0, p.stderr
        assert "published plan" in p.stdout + p.stderr
    shutil.rmtree(pub)  # served from PostGIS only
    with pg.connect() as conn:
        n = dict(conn.execute("SELECT name, count(*) FROM buque.plan_works w JOIN buque.plans p "
                              "USING (plan_id) GROUP BY name").fetchall())
    works = {k: gpd.read_parquet(files / k / "works.parquet") for k in ("small", "full")}
    assert n == {k: len(w) for k, w in works.items()}
    with TestClient(create_app(Settings(data=runs.folder, plans=files))) as fc, \
            TestClient(create_app(Settings(postgres=dsn))) as pc:
        a, b = fc.get("/plans").json(), pc.get("/plans").json()
        assert sorted(a["plans"], key=lambda x: x["name"]) == \
            sorted(b["plans"], key=lambda x: x["name"])
        for path in ("/plans/small", "/plans/full",
                     "/plans/small/works?indicator=power,water&limit=50",
                     "/plans/small/works?phase=none&limit=20&offset=5",
                     "/plans/full/works?f=csv", "/plans/small/diff/full", "/plans/nope"):
            ra, rb = fc.get(path), pc.get(path)
            assert ra.status_code == rb.status_code, (path, rb.text[:300])
            if path.endswith("csv"):
                assert ra.content == rb.content, path
            else:
                assert ra.json() == rb.json(), path
        # every work and its geometry read back from PostGIS as written
        fc_all = pc.get("/plans/small/works?limit=10000").json()
        got = gpd.GeoDataFrame.from_features(fc_all["features"], crs=4326)
        want = works["small"]
        assert list(got["work_id"]) == list(want["work_id"])
        assert shapely.equals_exact(got.geometry.to_numpy(), want.geometry.to_numpy(),
                                    tolerance=1e-9).all()
        ph = pc.get("/plans/small").json()["phases"]
        assert pd.DataFrame(ph)["cost"].sum() == pytest.approx(
            pd.DataFrame(fc.get("/plans/small").json()["phases"])["cost"].sum())
