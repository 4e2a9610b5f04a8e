"""The Dask engine (geo/distributed.py) on a LocalCluster of 2 workers equals the single-machine
engine exactly: the gaps table, and the archive files of ``run_project`` / ``buque run``.

The project is bench.synth's small synthetic county (300 administrative, 2000 natural villages,
3000 road segments), split into at least 4 partitions; the tests assert that villages whose
evidence lies in a neighbouring partition exist, and that some were only settled in a later
round with wider halos.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.spatial import cKDTree

from bench.synth import generate
from buque.geo.distributed import assess_dask, partition_villages
from buque.geo.gaps import assess
from buque.geo.run import load_layers, prepare_villages, run_project
from buque.layers.errors import Report
from buque.layers.profile import load_profile
from buque.layers.project import load_project
from buque.layers.schema import VILLAGE_LAYERS

PARTITIONS = 6
ARCHIVE_FILES = ("gaps.parquet", "summary.csv", "projects.csv")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    out = tmp_path_factory.mktemp("county")
    generate(out, admin=300, natural=2000, roads=3000, seed=7, verbose=False)
    return out / "project.toml"


@pytest.fixture(scope="module")
def county(project):
    proj = load_project(project)
    report = Report()
    layers, _ = load_layers(proj, report)
    villages = prepare_villages(layers, report)
    return villages, {k: g for k, g in layers.items() if k not in VILLAGE_LAYERS}


def test_partitions_cover_every_village_once(county):
    villages, _ = county
    parts = partition_villages(villages, PARTITIONS)
    assert len(parts) >= 4
    allpos = np.concatenate(parts)
    assert np.array_equal(np.sort(allpos), np.arange(len(villages)))
    assert all(np.all(np.diff(p) > 0) for p in parts)
    # villages without a county go by spatial blocks, still each in exactly one partition
    nocounty = villages.assign(county=pd.Series(pd.NA, index=villages.index, dtype="string"))
    parts = partition_villages(nocounty, PARTITIONS)
    assert len(parts) >= 4
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(villages)))


def _evidence_across(gaps: pd.DataFrame, villages, layers, profile, partition_of) -> int:
    """Rows whose evidence feature lies in another partition's territory (its nearest village
    belongs to another partition)."""
    lonlat = villages[["ref_lon", "ref_lat"]].to_numpy(dtype=float)
    tree = cKDTree(lonlat)
    n = 0
    for key, ind in profile.indicators.items():
        rows = gaps[(gaps["indicator"] == key) & gaps["evidence_id"].notna()]
        if not len(rows):
            continue
        lyr = layers[ind.layer].set_index("id")
        pt = shapely.get_coordinates(shapely.point_on_surface(
            lyr.loc[rows["evidence_id"].to_numpy(dtype=object)].geometry.to_numpy()))
        _, near = tree.query(pt)
        n += int((partition_of[near] != partition_of[rows["_v"].to_numpy()]).sum())
    return n


@pytest.mark.parametrize("standard,no_county", [("national", False), ("national-network", True)])
def test_assess_dask_equals_assess(county, scheduler, standard, no_county):
    villages, layers = county
    if no_county:  # a third of the villages by spatial blocks instead of counties
        villages = villages.copy()
        villages.loc[villages.index % 3 == 0, "county"] = pd.NA
    profile = load_profile(standard)
    expected = assess(villages, layers, profile)
    info: dict = {}
    got = assess_dask(villages, layers, profile, scheduler=scheduler, partitions=PARTITIONS,
                      info=info)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert len(info["partitions"]) >= 4
    # villages whose nearest qualifying feature is in a neighbouring partition ...
    assert _evidence_across(expected, villages, layers, profile, info["partition_of"]) > 0
    # ... and villages that only a wider halo could settle
    assert len(info["rounds"]) >= 2 and info["rounds"][0]["uncertain"] > 0


def test_sparse_layers_leave_partitions_without_features(county, scheduler):
    """Most partitions have no road or clinic within their first halo: settled in later rounds."""
    villages, layers = county
    layers = {**layers, "roads": layers["roads"].iloc[:3], "clinics": layers["clinics"].iloc[::25]}
    profile = load_profile("national-network")
    expected = assess(villages, layers, profile)
    got = assess_dask(villages, layers, profile, scheduler=scheduler, partitions=PARTITIONS)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_run_project_dask_archive_identical(project, scheduler, tmp_path):
    local = run_project(project, tmp_path / "local")
    dask = run_project(project, tmp_path / "dask", engine="dask", scheduler=scheduler,
                       partitions=PARTITIONS)
    pd.testing.assert_frame_equal(dask.tables.gaps, local.tables.gaps, check_exact=True)
    pd.testing.assert_frame_equal(dask.tables.villages, local.tables.villages, check_exact=True)
    for name in ARCHIVE_FILES:
        assert (dask.out / name).read_bytes() == (local.out / name).read_bytes(), name
    assert dask.manifest["counts"] == local.manifest["counts"]
    assert dask.manifest["metric_crs"] == local.manifest["metric_crs"]


def test_cli_engine_dask_own_local_cluster(project, tmp_path):
    """``buque run --engine dask`` starting its own LocalCluster (spawned worker processes)."""
    cmd = [sys.executable, "-m", "buque.cli", "run", str(project)]
    dask = subprocess.run([*cmd, "--out", str(tmp_path / "dask"), "--engine", "dask",
                           "--partitions", "4"], capture_output=True, text=True, timeout=300)
    assert dask.returncode == 0, dask.stderr
    assert "partitions on 2 worker(s)" in dask.stderr
    local = run_project(project, tmp_path / "local")
    for name in ARCHIVE_FILES:
        assert (tmp_path / "dask" / name).read_bytes() == (local.out / name).read_bytes(), name


def test_cli_rejects_bad_engine_options(project, tmp_path):
    from typer.testing import CliRunner

    from buque.cli import app

    cmd = ["run", str(project), "--out", str(tmp_path / "x")]
    bad = CliRunner().invoke(app, [*cmd, "--engine", "spark"])
    assert bad.exit_code == 2 and "local or dask" in bad.output
    bad = CliRunner().invoke(app, [*cmd, "--scheduler", "tcp://127.0.0.1:8786"])
    assert bad.exit_code == 2 and "need --engine dask" in bad.output
    with pytest.raises(ValueError, match="unknown engine"):
        run_project(project, tmp_path / "y", engine="spark")
