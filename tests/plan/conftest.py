"""A small synthetic province (bench.synth) and its run, shared by the planning tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def province(tmp_path_factory) -> Path:
    from bench.synth import generate

    d = tmp_path_factory.mktemp("plan-province")
    generate(d, admin=120, natural=800, roads=1200, seed=3)
    return d


@pytest.fixture(scope="session")
def province_run(province, tmp_path_factory) -> Path:
    from buque.geo.run import run_project

    out = tmp_path_factory.mktemp("plan-runs") / "run"
    run_project(province / "project.toml", out)
    return out
