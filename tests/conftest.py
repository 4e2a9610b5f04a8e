"""Shared fixtures: the synthetic project (tests/synth_world.py) and the real Andorra demo."""

from __future__ import annotations

import json
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from synth_world import DEMO_TOML, REPO, CliRun, Synth, build_synth, run_cli


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """No test may skip: on a machine set up by ``setup.sh`` everything a test needs is there,
    so a skip can only hide a missing dependency. A skipped test is reported as failed."""
    _no_skip((yield).get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped while it is collected (``importorskip``)."""
    _no_skip((yield).get_result())


def _no_skip(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, and no test may skip (run bash setup.sh): {reason}"


@dataclass
class DemoRun:
    out: Path
    manifest: dict
    proc: object


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Synth:
    """The synthetic project folder (read-only for tests: copy it before changing anything)."""
    return build_synth(tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="session")
def synth_cli_run(synth, tmp_path_factory) -> CliRun:
    """``buque run project.toml --out DIR`` on the synthetic project, through the real CLI."""
    out = tmp_path_factory.mktemp("runs") / "synth-run"
    proc = run_cli("run", synth.project, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return CliRun(out=out, proc=proc)


@pytest.fixture(scope="session")
def synth_points_run(synth, tmp_path_factory):
    """The synthetic project with point administrative villages (in-process)."""
    from buque.geo.run import run_project

    return run_project(synth.points_project, tmp_path_factory.mktemp("runs") / "points-run")


@pytest.fixture(scope="session")
def andorra_run(tmp_path_factory) -> DemoRun:
    """``buque demo --no-serve`` (the bundled real OpenStreetMap data of Andorra), once."""
    data = tmp_path_factory.mktemp("demo-data")
    proc = run_cli("demo", "--no-serve", "--data", data, cwd=data)
    assert proc.returncode == 0, proc.stderr
    runs = [p for p in data.iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1, runs
    manifest = json.loads((runs[0] / "manifest.json").read_text("utf-8"))
    return DemoRun(out=runs[0], manifest=manifest, proc=proc)


@pytest.fixture(scope="session")
def andorra_layers():
    """Every layer Buque derives from the Andorra extract (what the demo run assessed)."""
    from buque.layers.errors import Report
    from buque.layers.osm import DERIVABLE, derive_layers
    from buque.layers.project import load_project

    project = load_project(DEMO_TOML)
    report = Report()
    layers = derive_layers(project.osm, DERIVABLE, report)
    return layers, report


@pytest.fixture(scope="session")
def national_toml() -> dict:
    return tomllib.loads((REPO / "layers" / "standards" / "national.toml").read_text("utf-8"))


@pytest.fixture
def copy_synth(synth, tmp_path):
    """A private copy of the synthetic folder (for tests that change a file or the project)."""

    def make(name: str = "proj") -> Path:
        d = tmp_path / name
        shutil.copytree(synth.dir, d)
        return d

    return make


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    """The project whose every text field is hostile (tests/hostile_world.py)."""
    from hostile_world import build_hostile

    return build_hostile(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="session")
def hostile_run(hostile, tmp_path_factory) -> Path:
    """``buque run`` on the hostile project, through the real CLI (it must exit 0)."""
    out = tmp_path_factory.mktemp("hostile-runs") / "run"
    proc = run_cli("run", hostile.project, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def scheduler():
    """A LocalCluster of 2 single-threaded worker processes for the Dask tests (one per session,
    closed, workers first, at the end); its dashboard on a free port."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": ":0"}) as cluster:
        yield cluster.scheduler_address
