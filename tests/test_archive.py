"""Atomic runs: a failed run leaves no half-written directory and never touches an earlier run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from synth_world import run_cli

from buque.geo.run import run_project


class Boom(RuntimeError):
    pass


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def siblings(d: Path) -> list[str]:
    return sorted(p.name for p in d.parent.iterdir() if p.name != d.name)


@pytest.fixture(scope="module")
def pristine(synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pristine") / "county"
    run_project(synth.project, out)
    assert (out / "manifest.json").is_file()
    return out


@pytest.fixture
def earlier(pristine, tmp_path) -> Path:
    """A successful run (a byte copy of one) in ``tmp_path/runs/county``."""
    out = tmp_path / "runs" / "county"
    shutil.copytree(pristine, out)
    return out


def files_written_by(synth, tmp_path) -> list[str]:
    """The names ``fault`` is called with, in order, on a clean run."""
    seen: list[str] = []
    run_project(synth.project, tmp_path / "probe", fault=seen.append)
    return seen


def test_fault_called_for_every_contract_file(synth, tmp_path):
    seen = files_written_by(synth, tmp_path)
    assert {"manifest.json", "gaps.parquet", "villages.parquet", "projects.csv", "summary.csv",
            "rejected.csv"} <= set(seen)
    probe = tmp_path / "probe"
    assert sorted(seen) == sorted(p.relative_to(probe).as_posix() for p in probe.rglob("*")
                                  if p.is_file())


@pytest.mark.parametrize("fail_at", ["gaps.parquet", "summary.csv", "manifest.json"])
def test_failed_run_leaves_earlier_run_byte_identical(synth, earlier, fail_at):
    before = snapshot(earlier)
    written: list[str] = []

    def fault(name: str) -> None:
        if name == fail_at:
            raise Boom(name)
        written.append(name)

    with pytest.raises(Boom):
        run_project(synth.project, earlier, fault=fault)
    if fail_at != "gaps.parquet":
        assert written, "the run failed half-way, after writing some files"
    assert snapshot(earlier) == before
    assert siblings(earlier) == []          # no temp or moved-aside directories


def test_failed_first_run_leaves_nothing(synth, tmp_path):
    out = tmp_path / "runs" / "new"

    def fault(name: str) -> None:
        if name == "projects.csv":
            raise Boom(name)

    with pytest.raises(Boom):
        run_project(synth.project, out, fault=fault)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_bad_input_never_touches_earlier_run(earlier, copy_synth):
    from buque.layers.errors import BuqueInputError

    d = copy_synth()
    (d / "roads.dbf").write_bytes(b"not a dbf")
    before = snapshot(earlier)
    with pytest.raises(BuqueInputError):
        run_project(d / "project.toml", earlier)
    assert snapshot(earlier) == before and siblings(earlier) == []


def test_successful_rerun_replaces_the_run(synth, earlier, tmp_path):
    first = json.loads((earlier / "manifest.json").read_text("utf-8"))
    # a different profile: a new run, written over the old one, nothing left behind
    prof = tmp_path / "strict.toml"
    national = Path(first["profile"]["path"]).read_text("utf-8")
    prof.write_text(national.replace('name = "national"', 'name = "strict"'), encoding="utf-8")
    run_project(synth.project, earlier, standard=str(prof))
    second = json.loads((earlier / "manifest.json").read_text("utf-8"))
    assert second["profile"]["name"] == "strict"
    assert second["run_id"] != first["run_id"]
    assert siblings(earlier) == []


def test_existing_non_run_directory_is_refused(synth, tmp_path):
    out = tmp_path / "documents"
    out.mkdir()
    (out / "report.docx").write_bytes(b"precious")
    before = snapshot(out)
    with pytest.raises(FileExistsError, match="documents"):
        run_project(synth.project, out)
    assert snapshot(out) == before
    assert siblings(out) == []


def test_cli_refuses_non_run_directory(synth, tmp_path):
    out = tmp_path / "documents"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    proc = run_cli("run", synth.project, "--out", out)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "documents" in proc.stderr
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert siblings(out) == []


def test_out_is_an_existing_file_is_refused(synth, tmp_path):
    out = tmp_path / "result.csv"
    out.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(FileExistsError):
        run_project(synth.project, out)
    assert out.read_text(encoding="utf-8") == "a,b\n1,2\n"
    assert siblings(out) == []


def test_empty_existing_directory_is_used(synth, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    run_project(synth.project, out)
    assert (out / "manifest.json").is_file() and siblings(out) == []


def test_large_geoparquet_is_written_by_row_group_as_geopandas_writes_it(tmp_path, monkeypatch):
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    import shapely

    from buque.geo import archive

    n = 25_000
    rng = np.random.default_rng(0)
    g = gpd.GeoDataFrame(
        {"id": pd.array([f"r{i}" for i in range(n)], dtype="string"), "w": rng.random(n),
         "k": pd.array(np.where(rng.random(n) < .1, None, 3), dtype="Int64")},
        geometry=shapely.linestrings(rng.random((n, 3, 2)) + 100), crs="EPSG:4326")
    monkeypatch.setattr(archive, "ROW_GROUP", 10_000)
    archive.write_geoparquet(g, tmp_path / "a.parquet")
    g.to_parquet(tmp_path / "b.parquet", index=False, schema_version="1.1.0",
                 write_covering_bbox=True, row_group_size=10_000)
    a, b = pq.ParquetFile(tmp_path / "a.parquet"), pq.ParquetFile(tmp_path / "b.parquet")
    assert a.metadata.num_row_groups == b.metadata.num_row_groups == 3
    assert a.read().equals(b.read())
    assert a.schema_arrow.equals(b.schema_arrow, check_metadata=False)
    geo_a, geo_b = (json.loads(f.schema_arrow.metadata[b"geo"]) for f in (a, b))
    assert geo_a == geo_b and geo_a["columns"]["geometry"]["bbox"] == list(g.total_bounds)
    pd.testing.assert_frame_equal(gpd.read_parquet(tmp_path / "a.parquet"), g)
