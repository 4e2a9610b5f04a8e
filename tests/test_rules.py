"""Rules as plug-ins (issue 12, part 1): the registry's protocol, and the spatial rules giving
the same archives as before the refactor.

The "before" is the code at commit 55da2ea (the last one before the rules moved to
``geo.rules``), extracted with ``git archive`` and run in its own process on the same projects;
the tables of its archives must equal this tree's, on one machine and on Dask. (Independently
of any Buque code, tests/test_distances.py checks the same projects against a geodesic
reference, tests/refcalc.py.)

Since issue 12 part 3 the national profile's ``power`` uses the ``power_supply`` rule (a
transformer, or a low-voltage line: a deliberate change of the power results), so the
comparison covers the unchanged indicators: rows and columns of ``power`` are left out, and
so are ``missing``/``n_missing`` of the village table and ``rank`` of the remedy list (they
combine every indicator).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from synth_world import DEMO_TOML, REPO

from buque.geo.rules import Rule, rules
from buque.geo.rules.spatial import SpatialRule
from buque.geo.run import run_project
from buque.layers.errors import BuqueInputError
from buque.layers.profile import INDICATOR_KEYS, load_profile, parse_profile

BEFORE = "55da2ea"
TABLES = ["gaps.parquet", "villages.parquet", "projects.csv", "summary.csv", "rejected.csv"]


def test_registry_lists_the_spatial_rules_and_registers_without_mutating():
    assert set(rules.names()) >= {"within_distance", "inside_village", "coverage",
                                  "within_network_distance"}
    assert all(isinstance(rules.get(n), Rule) for n in rules.names())

    class Toy(SpatialRule):
        name = "toy"

    more = rules.register(Toy())
    assert "toy" in more and "toy" not in rules
    with pytest.raises(ValueError, match="already registered"):
        more.register(Toy())
    with pytest.raises(KeyError, match="within_distance"):
        rules.get("nope")
    assert rules.keys() <= INDICATOR_KEYS


def test_each_rule_parses_its_own_parameters_and_reach():
    p = load_profile("national-network")
    assert p.indicators["clinic"].reach_m == 3000 and p.indicators["broadband"].reach_m == 3000
    clinic = p.indicators["clinic"]
    assert rules.get(clinic.rule).reads(clinic) == ("clinics", "roads")
    raw = load_profile("national")
    road = raw.indicators["road"]
    assert (road.threshold_m, road.reach_m, rules.get(road.rule).reads(road)) == (500, 500,
                                                                                 ("roads",))
    data = {"name": "x", "version": "1", "indicators": {"w": {
        "layer": "water", "levels": ["natural"], "rule": "within_distance", "deadline":
        "2026-01-01", "remedy": {"item": "i", "unit": "km", "quantity": "count",
                                 "unit_cost": 1}}}}
    with pytest.raises(BuqueInputError, match="needs threshold_m"):
        parse_profile(data)
    data["indicators"]["w"]["rule"] = "within_distence"
    with pytest.raises(BuqueInputError, match="rule must be one of"):
        parse_profile(data)


@pytest.fixture(scope="module")
def before_tree(tmp_path_factory) -> Path:
    """The tree at BEFORE, extracted (the repository's history is part of a checkout)."""
    d = tmp_path_factory.mktemp("before")
    tar = d / "before.tar"
    proc = subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(tar), BEFORE],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"git archive {BEFORE} failed (a shallow clone?): {proc.stderr}"
    with tarfile.open(tar) as t:
        t.extractall(d / "tree", filter="data")
    return d / "tree"


def _before(tree: Path, project: Path, out: Path, standard: str | None) -> None:
    code = ("import sys; from geo.run import run_project; "
            "run_project(sys.argv[1], sys.argv[2], standard=sys.argv[3] or None)")
    proc = subprocess.run([sys.executable, "-c", code, str(project), str(out), standard or ""],
                          cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


CHANGED = "power"  # its rule changed on purpose (issue 12 part 3)


def _read(d: Path, name: str) -> pd.DataFrame:
    """A table of the run without the deliberately changed indicator."""
    df = pd.read_parquet(d / name) if name.endswith(".parquet") else pd.read_csv(
        d / name, dtype=str, keep_default_na=False)
    if "indicator" in df:
        df = df[df["indicator"] != CHANGED].reset_index(drop=True)
    drop = [c for c in df.columns if c in (CHANGED, f"{CHANGED}_distance_m", "missing",
                                           "n_missing", "rank")]
    return df.drop(columns=drop)


@pytest.mark.parametrize("case", ["demo", "synth", "synth-network", "points"])
def test_archives_identical_to_before_the_refactor(case, before_tree, synth, tmp_path,
                                                    scheduler):
    project, standard = {"demo": (DEMO_TOML, None), "synth": (synth.project, None),
                         "synth-network": (synth.project, "national-network"),
                         "points": (synth.points_project, None)}[case]
    _before(before_tree, project, tmp_path / "before", standard)
    run_project(project, tmp_path / "local", standard=standard)
    run_project(project, tmp_path / "dask", standard=standard, engine="dask",
                scheduler=scheduler, partitions=3)
    for name in TABLES:
        old = _read(tmp_path / "before", name)
        assert len(old) or name == "rejected.csv"
        for engine in ("local", "dask"):
            pd.testing.assert_frame_equal(_read(tmp_path / engine, name), old, check_exact=True,
                                          obj=f"{case} {engine} {name}")
