"""The CLI as a county office meets it first: errors printed literally, misspelt keys caught,
the summary readable in an 80-column terminal."""

from __future__ import annotations

import re

import pytest
from synth_world import REPO, run_cli

from buque.layers.errors import BuqueInputError
from buque.layers.profile import load_profile
from buque.layers.project import load_project


def _project(copy_synth, edit) -> tuple:
    d = copy_synth()
    p = d / "project.toml"
    p.write_text(edit(p.read_text("utf-8")), encoding="utf-8")
    return d, p


def test_bracketed_text_in_errors_is_printed_literally(copy_synth) -> None:
    d, p = _project(copy_synth, lambda t: t.replace("[layers.roads]", "[layers.road]"))
    bad = p.rename(d / "bad2.toml")
    proc = run_cli("run", bad, "--out", d / "out")
    assert proc.returncode == 2
    err = " ".join(proc.stderr.split())
    assert "bad2.toml" in err and "[layers.road]: unknown layer kind 'road'" in err, err
    assert "did you mean 'roads'?" in err
    assert ": : " not in err


def test_misspelt_top_level_key_is_an_error_with_a_suggestion(copy_synth) -> None:
    d, p = _project(copy_synth, lambda t: t.replace('standard = "national"',
                                                    'standrad = "shaanxi"'))
    with pytest.raises(BuqueInputError, match=r"unknown key 'standrad'; did you mean 'standard'\?"
                       ) as e:
        load_project(p)
    assert e.value.path == str(p.resolve()) and e.value.field == "standrad"
    proc = run_cli("run", p, "--out", d / "out")
    assert proc.returncode == 2
    assert "standrad" in proc.stderr and "did you mean 'standard'" in proc.stderr


@pytest.mark.parametrize("old,new,key,hint", [
    ('path = "roads.shp"', 'path = "roads.shp"\nencodng = "GBK"', "encodng", "encoding"),
    ('[layers.water]', '[osm]\npth = "x.pbf"\n\n[layers.water]', "pth", "path"),
    ('id = "LXBM", surface', 'id = "LXBM", surfce', "surfce", "surface"),
])
def test_unknown_keys_in_any_project_table(copy_synth, old, new, key, hint) -> None:
    _, p = _project(copy_synth, lambda t: t.replace(old, new, 1))
    with pytest.raises(BuqueInputError, match=rf"'{key}'.*did you mean '{hint}'\?"):
        load_project(p)


@pytest.mark.parametrize("old,new,key,hint", [
    ('version = "2026.1"', 'version = "2026.1"\ntitel = "x"', "titel", "title"),
    ("threshold_m = 800", "threshhold_m = 800", "threshhold_m", "threshold_m"),
    ("target_rate = 0.98", "target_rate = 0.98\ndeadlien = 1", "deadlien", "deadline"),
    ('unit = "座", quantity', 'unit = "座", quantty = "count", quantity', "quantty", "quantity"),
    ('{ field = "households", min = 30', '{ field = "households", mn = 30, min = 30', "mn",
     "min"),
])
def test_unknown_keys_in_a_profile(tmp_path, old, new, key, hint) -> None:
    text = (REPO / "layers" / "standards" / "national.toml").read_text("utf-8")
    assert old in text
    p = tmp_path / "shaanxi.toml"
    p.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(BuqueInputError, match=rf"'{key}'.*did you mean '{hint}'\?") as e:
        load_profile(p)
    assert str(p) in str(e.value)


def test_a_profile_extending_another_checks_its_own_keys(tmp_path) -> None:
    p = tmp_path / "child.toml"
    p.write_text('extends = "national"\nname = "c"\nversion = "1"\n'
                 '[indicators.water]\nthreshold = 1000\n', encoding="utf-8")
    with pytest.raises(BuqueInputError, match=r"indicators.water: unknown key 'threshold'"):
        load_profile(p)


def test_summary_keeps_chinese_labels_in_80_columns(synth, tmp_path) -> None:
    proc = run_cli("run", synth.project, "--out", tmp_path / "out", columns=80)
    assert proc.returncode == 0, proc.stderr
    for label in ("road 通硬化路", "water 饮水安全", "power 通生产生活用电", "clinic 标准化村卫生室",
                  "broadband 通光纤和4G"):
        assert label in proc.stdout, proc.stdout
    assert "…" not in proc.stdout
    # log lines end in the message, not in the place of the code that logged it
    assert not re.search(r"cli\.py:\d+", proc.stderr), proc.stderr


def test_help_starts_without_the_data_stack():
    """`buque --help` answers without importing pandas, geopandas or numpy (0.15 s, not 0.5 s):
    the CLI's own module imports only typer and rich; a command imports what it needs."""
    import subprocess
    import sys

    code = ("import sys, buque.cli; heavy = [m for m in ('pandas', 'geopandas', 'numpy', "
            "'shapely', 'scipy') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == ""
    r = run_cli("--help")
    assert r.returncode == 0 and "run" in r.stdout
