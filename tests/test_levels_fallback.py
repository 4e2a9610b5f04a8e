"""A project of administrative villages only: natural-village indicators (water, power) are
said to be skipped, or assessed at the administrative village where the profile says so."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from synth_world import run_cli

from buque.geo.archive import read_run
from buque.layers.errors import BuqueInputError
from buque.layers.profile import load_profile


def _admin_only(d: Path, standard: str | None = None) -> Path:
    p = d / "project.toml"
    text = p.read_text("utf-8").replace('[layers.natural_villages]\npath = "natural.geojson"\n',
                                        "")
    if standard:
        text = text.replace('standard = "national"', f'standard = "{standard}"')
    p.write_text(text, encoding="utf-8")
    return p


def test_skipped_indicators_are_said_in_warnings_and_summary(copy_synth):
    d = copy_synth()
    p = _admin_only(d)
    proc = run_cli("run", p, "--out", d / "out", columns=120)
    assert proc.returncode == 0, proc.stderr
    w = pd.read_csv(d / "out" / "warnings.csv", dtype=str)
    skipped = w[w["reason"].str.contains("not assessed", na=False)]
    assert set(skipped["field"]) == {"water", "power"}
    assert skipped["reason"].str.contains("no natural villages in the inputs").all()
    assert skipped["reason"].str.contains('fallback = "admin"').all()
    for line in ("water 饮水安全: not assessed", "power 通生产生活用电: not assessed"):
        assert line in proc.stdout, proc.stdout
    m = json.loads((d / "out" / "manifest.json").read_text("utf-8"))
    assert set(m["not_assessed"]) == {"water", "power", "housing"} and m["fallback"] == {}
    assert set(read_run(d / "out").gaps["indicator"]) == {"road", "clinic", "broadband"}


def test_profile_fallback_assesses_at_the_administrative_village(copy_synth):
    d = copy_synth()
    (d / "admin-fallback.toml").write_text(
        'extends = "national"\nname = "county"\nversion = "1"\n'
        '[indicators.water]\nfallback = "admin"\n', encoding="utf-8")
    p = _admin_only(d, "admin-fallback.toml")
    proc = run_cli("run", p, "--out", d / "out", columns=120)
    assert proc.returncode == 0, proc.stderr
    t = read_run(d / "out")
    water = t.gaps[t.gaps["indicator"] == "water"]
    assert len(water) == t.villages["code"].nunique() and set(water["level"]) == {"admin"}
    m = json.loads((d / "out" / "manifest.json").read_text("utf-8"))
    assert m["fallback"] == {"water": "admin"} and set(m["not_assessed"]) == {"power", "housing"}
    w = t.warnings
    flagged = w[(w["field"] == "water")]
    assert flagged["reason"].str.contains("assessed at the administrative village").all()
    assert "water 饮水安全: assessed at the admin village" in proc.stdout


def test_with_natural_villages_nothing_changes(synth_cli_run):
    m = json.loads((synth_cli_run.out / "manifest.json").read_text("utf-8"))
    assert m["fallback"] == {} and set(m["not_assessed"]) == {"housing"}  # no register


@pytest.mark.parametrize("value", ["natural", "county", 1])
def test_fallback_must_be_another_level(tmp_path, value):
    p = tmp_path / "bad.toml"
    p.write_text('extends = "national"\nname = "x"\nversion = "1"\n'
                 f'[indicators.water]\nfallback = {json.dumps(value)}\n', encoding="utf-8")
    with pytest.raises(BuqueInputError, match="fallback"):
        load_profile(p)
