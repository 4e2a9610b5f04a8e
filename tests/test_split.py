"""A run on two processes (geo/split.py) writes the archive one process writes, file for file.

Compared on bench.synth's small county and on the hostile project (rows rejected and repaired
in layers of both processes), through ``run_project`` and the real ``buque run``; a bad file
read by the second process fails the run naming it, and leaves the previous run and no staging
folder behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from synth_world import run_cli

from bench.synth import generate
from buque.geo.rules import rule_of
from buque.geo.run import run_project
from buque.geo.split import share_of
from buque.layers.errors import BuqueInputError
from buque.layers.profile import load_profile
from buque.layers.project import load_project
from buque.layers.schema import VILLAGE_LAYERS

#: manifest entries that differ between any two runs (time, run id and timings)
VOLATILE = ("created", "run_id", "timings_s")


@pytest.fixture(scope="module")
def county(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("split-county")
    generate(out, admin=300, natural=2000, roads=3000, seed=7, verbose=False)
    return out / "project.toml"


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def _manifest(run: Path) -> dict:
    m = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    return {k: v for k, v in m.items() if k not in VOLATILE}


def assert_same_archive(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        assert fa[name] == fb[name], name
    assert _manifest(a) == _manifest(b)


def test_share_keeps_what_rules_read_together(county):
    project = load_project(county)
    profile = load_profile(project.standard)
    kinds, keys = share_of(project, profile)
    features = [k for k in project.layers if k not in VILLAGE_LAYERS]
    assert kinds and set(kinds) < set(features)  # some layers go, some stay
    for ind in profile.indicators.values():
        if rule_of(ind).spatial and ind.layer in project.layers:
            reads = set(rule_of(ind).reads(ind))
            # an indicator is answered where every layer it reads is
            assert (ind.key in keys) == (reads <= set(kinds)), ind.key


def test_two_processes_write_the_same_archive(county, tmp_path):
    one = run_project(county, tmp_path / "one", processes=1)
    two = run_project(county, tmp_path / "two", processes=2)
    assert (one.processes, two.processes) == (1, 2)
    assert two.manifest["counts"]["assessed"] > 0
    pd.testing.assert_frame_equal(two.tables.gaps, one.tables.gaps, check_exact=True)
    assert_same_archive(one.out, two.out)
    assert not list(tmp_path.glob(".two.layers-*"))  # the staging folder is gone


def test_rejections_from_both_processes_keep_their_order(county, tmp_path):
    d = tmp_path / "proj"
    shutil.copytree(county.parent, d)
    project = load_project(d / "project.toml")
    for kind, spec in project.layers.items():  # a row without geometry in every layer
        g = gpd.read_file(spec.path)
        bad = g.iloc[[0, 1]].copy()
        bad["geometry"] = None
        if kind not in VILLAGE_LAYERS:
            bad[g.columns[0]] = g.iloc[[0, 1], 0].to_numpy()
        gpd.GeoDataFrame(pd.concat([g.iloc[:5], bad, g.iloc[5:]], ignore_index=True),
                         crs=g.crs).to_file(spec.path, driver="GPKG")
    one = run_project(d / "project.toml", tmp_path / "one", processes=1)
    two = run_project(d / "project.toml", tmp_path / "two", processes=2)
    assert two.processes == 2
    kinds, _ = share_of(project, load_profile(project.standard))
    layers = set(one.tables.rejected["layer"]) | set(one.tables.warnings["layer"])
    assert layers & set(kinds) and layers - set(kinds)  # rows set aside in both processes
    assert_same_archive(one.out, two.out)


def test_cli_two_processes(county, tmp_path):
    ref = run_project(county, tmp_path / "ref", processes=1)
    proc = run_cli("run", county, "--out", tmp_path / "cli", "--processes", "2")
    assert proc.returncode == 0, proc.stderr
    assert_same_archive(ref.out, tmp_path / "cli")


def test_bad_file_in_second_process(county, tmp_path):
    d = tmp_path / "proj"
    shutil.copytree(county.parent, d)
    good = run_project(d / "project.toml", tmp_path / "out", processes=1)
    before = _files(good.out)
    kinds, _ = share_of(load_project(d / "project.toml"), load_profile("national"))
    bad = load_project(d / "project.toml").layers[kinds[0]].path
    bad.write_bytes(b"not a GeoPackage at all")
    with pytest.raises(BuqueInputError) as e:
        run_project(d / "project.toml", tmp_path / "out", processes=2)
    assert bad.name in str(e.value)
    assert any("second process" in n for n in getattr(e.value, "__notes__", []))
    assert _files(good.out) == before  # the previous run survives
    assert not list(tmp_path.glob(".out.layers-*")) and not list(tmp_path.glob(".out.tmp-*"))


def test_first_bad_layer_in_project_order(county, tmp_path):
    """Bad layers in both processes: the run names the one a one-process run names (the first
    in the project's order), here the child's, though the parent fails on its own first."""
    d = tmp_path / "proj"
    shutil.copytree(county.parent, d)
    project = load_project(d / "project.toml")
    kinds, _ = share_of(project, load_profile("national"))
    order = list(project.layers)
    first = min(kinds, key=order.index)
    later = next(k for k in order[order.index(first) + 1:] if k not in kinds)  # the parent's
    for kind in (first, later):  # as long as they were: the same share (by file size)
        path = project.layers[kind].path
        path.write_bytes(b"not a GeoPackage " * (path.stat().st_size // 17 + 1))
    assert share_of(load_project(d / "project.toml"), load_profile("national"))[0] == kinds
    names = []
    for processes in (1, 2):
        with pytest.raises(BuqueInputError) as e:
            run_project(d / "project.toml", tmp_path / f"out{processes}", processes=processes)
        names.append(Path(e.value.path).name)
    assert names == [project.layers[first].path.name] * 2


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # ended, not yet reaped


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_child_ends_with_a_killed_parent(tmp_path):
    """The second process asks for a signal when its parent ends, however it ends: a parent
    killed with SIGKILL leaves no child assessing on."""
    import multiprocessing
    import os
    import signal
    import time

    from buque.geo.split import die_with_parent

    pid_file = tmp_path / "child.pid"

    def child(parent: int) -> None:
        die_with_parent(parent)
        time.sleep(60)

    def parent() -> None:
        p = multiprocessing.get_context("fork").Process(target=child, args=(os.getpid(),))
        p.start()
        pid_file.write_text(str(p.pid))
        time.sleep(60)

    ctx = multiprocessing.get_context("fork")
    mid = ctx.Process(target=parent)
    mid.start()
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    time.sleep(0.2)  # the child has asked for the signal
    assert not _gone(pid)
    os.kill(mid.pid, signal.SIGKILL)
    mid.join(5)
    for _ in range(100):
        if _gone(pid):
            break
        time.sleep(0.05)
    try:
        assert _gone(pid)
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)
