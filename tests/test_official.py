"""Completeness against the official village list (不漏一村): real NBS codes of 瀛湖镇, 汉滨区."""

from __future__ import annotations

import shutil

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from synth_world import ADMIN, FIXTURES, PROJECT_TOML

from buque.geo.run import run_project
from buque.layers.errors import BuqueInputError

SAMPLE = FIXTURES / "ankang_official_sample.csv"


def read_csv(path):
    return pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False,
                       na_values=[""])


@pytest.fixture(scope="module")
def official():
    df = read_csv(SAMPLE)
    assert len(df) == 20 and df["code"].str.fullmatch(r"\d{12}").all()
    return df


def official_project(d, prefix: str | list[str] = "610902", csv: str = "official.csv"):
    shutil.copy(SAMPLE, d / "official.csv")
    pref = f'"{prefix}"' if isinstance(prefix, str) else str(prefix).replace("'", '"')
    p = d / "official.toml"
    p.write_text(PROJECT_TOML.format(extra=f'\n[official]\npath = "{csv}"\nprefix = {pref}\n'),
                 encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def official_run(synth, tmp_path_factory):
    d = tmp_path_factory.mktemp("official")
    shutil.copytree(synth.dir, d, dirs_exist_ok=True)
    return run_project(official_project(d), d / "out")


def test_listed_but_absent_villages_are_unlocated(official_run, official):
    out = official_run.out
    listed = official[official["code"].str.startswith("610902")]
    located = {a[0] for a in ADMIN}
    assert located <= set(listed["code"])          # the synthetic villages use real codes
    want = set(listed["code"]) - located
    un = read_csv(out / "unlocated.csv")
    assert set(un["code"]) == want and len(un) == len(want) == 13
    row = un.set_index("code").loc["610902102208"]
    assert row["name"] == "阳坡村委会"
    assert row["township"] == "瀛湖镇" and row["county"] == "汉滨区"
    assert row["township_code"] == "610902102" and row["county_code"] == "610902"
    # the prefix keeps 旬阳市 out
    assert not un["code"].str.startswith("610981").any()


def test_manifest_counts_official_and_unlocated(official_run):
    c = official_run.manifest["counts"]
    assert c["official_listed"] == 18
    assert c["unlocated"] == 13
    inputs = {i["layer"]: i for i in official_run.manifest["inputs"]}
    assert inputs["official"]["rows"] == 18
    import hashlib

    assert inputs["official"]["sha256"] == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()


def test_no_official_list_warnings_for_natural_villages(official_run):
    w = read_csv(official_run.out / "warnings.csv")
    offl = w[w["reason"].str.contains("official", na=False)]
    assert offl.empty, offl[["layer", "code"]].to_dict("records")


def test_admin_village_missing_from_list_is_warned(synth, tmp_path):
    shutil.copytree(synth.dir, tmp_path, dirs_exist_ok=True)
    project = official_project(tmp_path, prefix="610902")
    csv = read_csv(tmp_path / "official.csv")
    csv[csv["code"] != ADMIN[0][0]].to_csv(tmp_path / "official.csv", index=False,
                                          encoding="utf-8-sig")
    r = run_project(project, tmp_path / "out")
    w = read_csv(tmp_path / "out" / "warnings.csv")
    hits = w[w["reason"].str.contains("official", na=False)]
    admin_codes = {a[0] for a in ADMIN}
    assert [c for c in hits["code"] if c in admin_codes] == [ADMIN[0][0]]
    # 17 listed, 4 of them located (张家村 is located but no longer listed)
    assert r.manifest["counts"]["official_listed"] == 17
    assert r.manifest["counts"]["unlocated"] == 13


def test_rejected_listed_village_is_unlocated(synth, tmp_path):
    """A listed village whose geometry is unusable counts as unlocated, not as assessed."""
    shutil.copytree(synth.dir, tmp_path, dirs_exist_ok=True)
    g = pyogrio.read_dataframe(tmp_path / "admin.gpkg")
    victim = g["CUN_DM"].iloc[1]
    g.loc[1, "geometry"] = None
    pyogrio.write_dataframe(g, tmp_path / "admin.gpkg", layer="cun")
    r = run_project(official_project(tmp_path), tmp_path / "out")
    un = read_csv(tmp_path / "out" / "unlocated.csv")
    assert victim in set(un["code"]) and len(un) == 14
    rej = read_csv(tmp_path / "out" / "rejected.csv")
    assert victim in set(rej["code"])
    assert victim not in set(gpd.read_parquet(tmp_path / "out" / "villages.parquet")["code"])
    assert r.manifest["counts"]["unlocated"] == 14


def test_several_prefixes(synth, tmp_path):
    shutil.copytree(synth.dir, tmp_path, dirs_exist_ok=True)
    r = run_project(official_project(tmp_path, prefix=["610902102", "610981105"]),
                    tmp_path / "out")
    assert r.manifest["counts"]["official_listed"] == 20
    assert r.manifest["counts"]["unlocated"] == 15


def test_malformed_official_code_names_row_and_field(synth, tmp_path):
    shutil.copytree(synth.dir, tmp_path, dirs_exist_ok=True)
    project = official_project(tmp_path)
    lines = (tmp_path / "official.csv").read_text("utf-8").splitlines()
    assert lines[3].startswith("610902102201,")
    lines[3] = lines[3].replace("610902102201", "61090210221", 1)     # 11 digits, data row 3
    (tmp_path / "official.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BuqueInputError) as e:
        run_project(project, tmp_path / "out")
    assert "official.csv" in str(e.value) and e.value.row == 4 and e.value.field == "code"
    assert not (tmp_path / "out").exists()


def test_official_row_with_extra_field_stops_the_run_at_its_line(synth, tmp_path):
    """A completeness list cannot lose a row: a row with one field too many stops the run, and
    the error's row is the same spreadsheet line its reason names (as for a bad code above)."""
    shutil.copytree(synth.dir, tmp_path, dirs_exist_ok=True)
    project = official_project(tmp_path)
    lines = (tmp_path / "official.csv").read_text("utf-8").splitlines()
    lines[3] += ",extra"                                               # line 4 of the file
    (tmp_path / "official.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BuqueInputError) as e:
        run_project(project, tmp_path / "out")
    assert e.value.row == 4 and "line 4 of the file" in str(e.value), str(e.value)
    assert not (tmp_path / "out").exists()
