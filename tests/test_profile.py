"""Standards profiles: the bundled national profile, malformed profiles, custom profiles, the CLI."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import pandas as pd
import pytest
from synth_world import CODE_V1, REPO, run_cli

from buque.geo.run import run_project
from buque.layers.errors import BuqueInputError
from buque.layers.profile import load_profile

NATIONAL = REPO / "layers" / "standards" / "national.toml"


def test_national_indicators_and_thresholds():
    p = load_profile("national")
    assert p.name == "national"
    assert list(p.indicators) == ["road", "water", "power", "clinic", "broadband", "housing"]
    road, water, power = p.indicators["road"], p.indicators["water"], p.indicators["power"]
    clinic, bb = p.indicators["clinic"], p.indicators["broadband"]
    assert (road.rule, road.threshold_m, road.layer) == ("within_distance", 500, "roads")
    assert set(road.levels) == {"admin", "natural"}
    natural = road.applies["natural"]
    assert (natural.field, natural.op, natural.value, natural.if_null) == ("households", "min",
                                                                          30, "pass")
    assert (water.rule, water.threshold_m, water.levels) == ("within_distance", 800, ("natural",))
    assert (power.rule, power.threshold_m, power.levels) == ("power_supply", 500, ("natural",))
    assert (power.params["connect_m"], power.params["lv_max_v"]) == (100, 1000)
    assert (clinic.rule, clinic.fallback_threshold_m, clinic.levels) == ("inside_village", 2000,
                                                                        ("admin",))
    assert clinic.upgrade is not None
    assert (bb.rule, bb.default_radius_m, bb.levels) == ("coverage", 3000, ("admin",))
    assert bb.target_rate == pytest.approx(0.98)
    # hardened surfaces of the contract, and nothing unpaved
    surf = next(c for c in road.evidence if c.field == "surface")
    for s in ("asphalt", "concrete", "paved", "cement", "paving_stones"):
        assert s in surf.value
    for s in ("gravel", "unpaved", "dirt", "ground"):
        assert s not in surf.value
    assert p.content_hash == hashlib.sha256(NATIONAL.read_bytes()).hexdigest()
    for ind in p.indicators.values():
        assert ind.sources.get("threshold_source"), ind.key
        assert ind.deadline.year >= 2020 and ind.remedy.unit_cost > 0


def test_profile_is_deterministic_and_hash_changes_with_content(tmp_path):
    a = load_profile("national")
    assert load_profile(str(NATIONAL)).content_hash == a.content_hash
    other = tmp_path / "p.toml"
    other.write_bytes(NATIONAL.read_bytes() + b"\n# a comment\n")
    assert load_profile(other).content_hash != a.content_hash


MALFORMED = [
    # (id, old text, new text, expected key in the message, expected .field or None)
    ("missing-rule", 'rule = "within_distance"\nthreshold_m = 500', "threshold_m = 500", "'rule'",
     "rule"),
    ("missing-levels", 'layer = "roads"\nlevels = ["admin", "natural"]', 'layer = "roads"',
     "'levels'", "levels"),
    ("missing-threshold", "threshold_m = 800\n", "", "threshold_m", "threshold_m"),
    ("bad-layer", 'layer = "clinics"', 'layer = "hospitals"', "layer", "layer"),
    ("bad-rule", 'rule = "coverage"', 'rule = "within_reach"', "rule", "rule"),
    ("coverage-no-radius", "default_radius_m = 3000\n", "", "default_radius_m",
     "default_radius_m"),
    ("bad-level", 'levels = ["natural"]\nrule = "within_distance"\nthreshold_m = 800',
     'levels = ["hamlet"]\nrule = "within_distance"\nthreshold_m = 800', "levels", "levels"),
    ("bad-deadline", 'deadline = "2026-11-30"', 'deadline = "2026-13-45"', "deadline", "deadline"),
    ("bad-if-null", '{ field = "standardized", eq = true, if_null = "unknown" }',
     '{ field = "standardized", eq = true, if_null = "maybe" }', "if_null", "if_null"),
    ("unknown-condition-key", '{ field = "standardized", eq = true, if_null = "unknown" }',
     '{ field = "standardized", eq = true, iff_null = "unknown" }', "iff_null", None),
    ("two-ops", '{ field = "standardized", eq = true, if_null = "unknown" }',
     '{ field = "standardized", eq = true, min = 1 }', "exactly one", None),
    ("in-not-a-list", '{ field = "surface", in = ["asphalt"',
     '{ field = "surface", in = "asphalt", x = ["asphalt"',
     "'in' takes a list", "in"),
    ("bad-quantity", 'quantity = "count", unit_cost = 300000',
     'quantity = "acres", unit_cost = 300000', "quantity", "quantity"),
    ("remedy-no-unit", 'unit = "座", ', "", "'unit'", "unit"),
    ("no-name", 'name = "national"\n', "", "name", "name"),
    ("bad-format", "format = 1", "format = 2", "format", None),
    ("not-toml", "[indicators.road]", "[indicators.road", "TOML", None),
]


@pytest.mark.parametrize(("old", "new", "key", "field"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_profile_errors_name_the_key(tmp_path, old, new, key, field):
    text = NATIONAL.read_text("utf-8")
    assert old in text, "the national profile changed: update this test's edit"
    bad = tmp_path / "bad-profile.toml"
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(BuqueInputError) as e:
        load_profile(bad)
    msg = str(e.value)
    assert "bad-profile.toml" in msg and key in msg, msg
    if field is not None:
        assert e.value.field == field
    # it says which indicator, when the problem is inside one
    if old.startswith(("layer", "rule", "levels", "default_radius", "threshold_m = 800")):
        assert re.search(r"indicators\.\w+", msg), msg


def test_non_numeric_threshold_is_an_error_naming_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(NATIONAL.read_text("utf-8").replace("threshold_m = 500", 'threshold_m = "500m"',
                                                       1), encoding="utf-8")
    with pytest.raises(BuqueInputError) as e:
        load_profile(bad)
    assert "threshold_m" in str(e.value) and "indicators.road" in str(e.value)


def test_unknown_bundled_name_lists_the_bundled_ones():
    with pytest.raises(BuqueInputError) as e:
        load_profile("hainan")
    assert "hainan" in str(e.value) and "shaanxi" in str(e.value) and "national" in str(e.value)


@pytest.fixture(scope="module")
def strict_profile(tmp_path_factory):
    """National, with a 250 m road threshold and a renamed profile."""
    d = tmp_path_factory.mktemp("profile")
    text = NATIONAL.read_text("utf-8")
    assert "threshold_m = 500\n" in text
    text = text.replace('name = "national"', 'name = "strict-road"').replace(
        "threshold_m = 500\n", "threshold_m = 250\n", 1)
    path = d / "strict.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_custom_profile_path_changes_the_assessment(synth, strict_profile, tmp_path):
    base = run_project(synth.project, tmp_path / "base")
    run_project(synth.project, tmp_path / "strict", standard=str(strict_profile))
    m = json.loads((tmp_path / "strict" / "manifest.json").read_text("utf-8"))
    assert m["profile"]["name"] == "strict-road"
    assert m["profile"]["sha256"] == hashlib.sha256(strict_profile.read_bytes()).hexdigest()
    g0 = base.tables.gaps.set_index(["village_code", "indicator"])
    g1 = pd.read_parquet(tmp_path / "strict" / "gaps.parquet").set_index(
        ["village_code", "indicator"])
    # 张家村's asphalt road is 300 m away: met at 500 m, missing at 250 m
    assert g0.loc[(CODE_V1, "road"), "status"] == "met"
    assert g1.loc[(CODE_V1, "road"), "status"] == "missing"
    road0 = g0.xs("road", level="indicator")
    road1 = g1.xs("road", level="indicator")
    assert ((road1["status"] == "met") == (road1["distance_m"] <= 250)).all()
    assert (road0["distance_m"] - road1["distance_m"]).abs().max() < 1e-6
    # the other indicators do not move
    others = g0.index.get_level_values("indicator") != "road"
    assert (g0.loc[others, "status"] == g1.loc[g0.index[others], "status"]).all()


def test_profile_path_in_project_is_relative_to_it(copy_synth, strict_profile):
    d = copy_synth()
    shutil.copy(strict_profile, d / "my-standard.toml")
    text = (d / "project.toml").read_text("utf-8").replace('standard = "national"',
                                                          'standard = "my-standard.toml"')
    (d / "project.toml").write_text(text, encoding="utf-8")
    r = run_project(d / "project.toml", d / "out")
    assert r.manifest["profile"]["name"] == "strict-road"


def _flat(text: str) -> str:
    """Console output without box drawing, whitespace collapsed."""
    return " ".join(re.sub(r"[│┃┌┐└┘├┤┬┴┼─━┏┓┗┛╭╮╯╰]", " ", text).split())


@pytest.fixture(scope="module")
def show_national():
    proc = run_cli("standards", "show", "national", columns=1000)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cli_standards_show_prints_thresholds(show_national):
    lines = show_national.splitlines()

    def value(key: str, section: str) -> str:
        start = next(i for i, ln in enumerate(lines) if ln.startswith(section + " "))
        row = next(ln for ln in lines[start:] if re.search(rf"\b{key}\b", ln))
        return _flat(row).split(key, 1)[1].strip()

    assert value("threshold_m", "road") == "500"
    assert value("threshold_m", "water") == "800"
    assert value("threshold_m", "power") == "500"
    assert value("fallback_threshold_m", "clinic") == "2000"
    assert value("default_radius_m", "broadband") == "3000"
    assert value("rule", "clinic") == "inside_village"
    assert value("rule", "broadband") == "coverage"


def test_cli_standards_show_prints_every_source(show_national, national_toml):
    flat = _flat(show_national)
    n = 0
    for key, ind in national_toml["indicators"].items():
        for k, v in ind.items():
            if k.endswith("_source"):
                assert " ".join(v.split()) in flat, (key, k)
                n += 1
    assert n >= 5


def test_cli_standards_show_loses_nothing_at_80_columns():
    proc = run_cli("standards", "show", "national", columns=80)
    assert proc.returncode == 0
    assert "…" not in proc.stdout


def test_cli_standards_show_unknown_profile():
    bad = run_cli("standards", "show", "no-such-profile")
    assert bad.returncode != 0
    assert "no-such-profile" in bad.stderr and "Traceback" not in bad.stderr
