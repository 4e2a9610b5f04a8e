"""`buque run` through the real CLI on the synthetic project: the files and tables of CONTRACT.md."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from synth_world import ADMIN, NATURAL, REPO, run_cli

CONTRACT_FILES = {"manifest.json", "gaps.parquet", "villages.parquet", "projects.csv",
                  "summary.csv", "rejected.csv"}
# documented in geo/archive.py: always written beside the contract's files
DOCUMENTED_EXTRAS = {"warnings.csv", "unlocated.csv", "layers"}
INDICATORS = ["road", "water", "power", "clinic", "broadband"]


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, encoding="utf-8-sig", dtype={"village_code": str, "code": str},
                       keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def run(synth_cli_run):
    out = synth_cli_run.out
    return {
        "out": out,
        "manifest": json.loads((out / "manifest.json").read_text("utf-8")),
        "gaps": pd.read_parquet(out / "gaps.parquet"),
        "villages": gpd.read_parquet(out / "villages.parquet"),
        "projects": read_csv(out / "projects.csv"),
        "summary": read_csv(out / "summary.csv"),
        "rejected": read_csv(out / "rejected.csv"),
    }


@pytest.fixture(scope="module")
def expected_pairs() -> set[tuple[str, str]]:
    """(village, indicator) pairs the national profile assesses, from the source tables."""
    pairs = set()
    for code, *_ in ADMIN:
        pairs |= {(code, k) for k in ("road", "clinic", "broadband")}
    seen = set()
    for code, _, _, hh, point in NATURAL:
        if point is None or code in seen:
            continue
        seen.add(code)
        pairs |= {(code, "water"), (code, "power")}
        if hh is None or hh >= 30:
            pairs.add((code, "road"))
    return pairs


def test_cli_exit_status_and_exact_files(synth_cli_run):
    assert synth_cli_run.proc.returncode == 0
    files = {p.name for p in synth_cli_run.out.iterdir()}
    assert files >= CONTRACT_FILES
    assert files - CONTRACT_FILES <= DOCUMENTED_EXTRAS, files
    if (synth_cli_run.out / "layers").exists():
        # the feature layers the run used, one GeoParquet per kind
        kinds = {p.name for p in (synth_cli_run.out / "layers").iterdir()}
        assert kinds <= {f"{k}.parquet" for k in ("roads", "water", "power", "clinics",
                                                    "broadband")}, kinds
    # nothing left next to it: no temporary or moved-aside directories
    assert [p.name for p in synth_cli_run.out.parent.iterdir()] == [synth_cli_run.out.name]


def test_gaps_columns_dtypes_and_values(run):
    g = run["gaps"]
    for c in ("village_code", "level", "indicator", "status", "distance_m", "evidence_id"):
        assert c in g.columns
    for c in ("village_code", "level", "indicator", "status", "evidence_id"):
        assert pd.api.types.is_string_dtype(g[c]), (c, g[c].dtype)
    assert pd.api.types.is_float_dtype(g["distance_m"])
    assert set(g["status"]) <= {"met", "missing", "unknown"}
    assert set(g["level"]) <= {"admin", "natural"}
    assert set(g["indicator"]) == set(INDICATORS)
    assert g["village_code"].notna().all() and g["status"].notna().all()
    assert (g["distance_m"].dropna() >= 0).all()
    # a distance exactly when there is an evidence feature
    assert (g["distance_m"].isna() == g["evidence_id"].isna()).all()


def test_gaps_one_row_per_village_and_applicable_indicator(run, expected_pairs):
    g = run["gaps"]
    pairs = list(zip(g["village_code"], g["indicator"], strict=True))
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == expected_pairs
    lv = g.groupby("village_code")["level"].nunique()
    assert (lv == 1).all()
    assert set(g.loc[g["level"] == "admin", "village_code"]) == {a[0] for a in ADMIN}


def test_villages_geoparquet_one_row_per_village_in_wgs84(run, synth):
    v = run["villages"]
    geo = json.loads(pq.read_schema(run["out"] / "villages.parquet").metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    col = geo["columns"]["geometry"]
    assert col["encoding"] == "WKB" and col["crs"]["id"] == {"authority": "EPSG", "code": 4326}
    assert set(col["covering"]["bbox"]) == {"xmin", "ymin", "xmax", "ymax"}
    assert v.crs.to_epsg() == 4326
    assert v["code"].is_unique
    assert set(v["code"]) == set(run["gaps"]["village_code"])
    assert len(v) == 5 + 5   # 5 admin; 7 natural rows minus a null geometry and a duplicate
    # geometry in degrees, where the sources put it (admin polygons to the cm)
    src = synth.admin.set_index("code").geometry
    got = v.set_index("code").geometry
    for code in src.index:
        assert got[code].equals_exact(src[code], tolerance=1e-7), code


def test_villages_status_columns_and_missing_match_gaps(run):
    v = run["villages"].set_index("code")
    g = run["gaps"]
    wide = g.pivot(index="village_code", columns="indicator", values="status")
    for k in INDICATORS:
        assert k in v.columns
        col = v[k].where(v[k].notna(), None)
        exp = wide[k].reindex(v.index)
        assert (col.fillna("<NA>") == exp.astype(object).fillna("<NA>")).all(), k
    for code, row in v.iterrows():
        got = set(filter(None, (row["missing"] or "").split(",")))
        want = set(g.loc[(g["village_code"] == code) & (g["status"] == "missing"), "indicator"])
        assert got == want, code


def test_projects_one_row_per_missing_pair(run, national_toml):
    p, g = run["projects"], run["gaps"]
    miss = g[g["status"] == "missing"]
    got = list(zip(p["village_code"], p["indicator"], strict=True))
    assert len(got) == len(set(got))
    assert set(got) == set(zip(miss["village_code"], miss["indicator"], strict=True))
    for c in ("quantity", "unit", "cost", "priority"):
        assert c in p.columns and p[c].notna().all(), c
    assert np.allclose(p["cost"], p["quantity"] * p["unit_cost"], atol=0.01)
    assert list(p["rank"]) == list(range(1, len(p) + 1))
    assert p["priority"].is_monotonic_increasing
    dist = miss.set_index(["village_code", "indicator"])["distance_m"]
    for r in p.itertuples():
        rem = national_toml["indicators"][r.indicator]
        if r.action == "upgrade":
            rem = rem["upgrade"]
            # only where a non-qualifying feature already satisfies the rule
            assert r.indicator == "clinic"
        else:
            rem = rem["remedy"]
        assert r.unit == rem["unit"] and r.unit_cost == rem["unit_cost"]
        if rem["quantity"] == "count":
            assert r.quantity == 1
        elif rem["quantity"] == "distance_km":
            d = dist[(r.village_code, r.indicator)]
            want = d / 1000 if not math.isnan(d) else rem["default_quantity"]
            assert r.quantity == pytest.approx(want, abs=1e-3)


def test_projects_priority_poor_villages_first(run):
    from synth_world import CODE_V1, CODE_V2

    p = run["projects"]
    # 张家村 is poor with an exit year (1), 李家村 poor without one (2), the rest 3; natural
    # villages take their parent's (N1, N3 of 张家村; N2, N5 of 李家村)
    prio = p.groupby("village_code")["priority"].first()
    assert prio.get(CODE_V2) == 2
    first, second = [CODE_V1, "N1", "N3"], [CODE_V2, "N2", "N5"]
    assert (prio.reindex(first).dropna() == 1).all()
    assert (prio.reindex(second).dropna() == 2).all()
    assert (prio.drop(first + second, errors="ignore") == 3).all()
    assert p.loc[(p["village_code"] == CODE_V2) & (p["indicator"] == "clinic"),
                 "action"].tolist() == ["upgrade"]   # a non-standardized clinic is there


def test_summary_counts_agree_with_gaps(run, national_toml):
    s, g, v = run["summary"], run["gaps"], run["villages"]
    place = v.set_index("code")[["county", "township"]]
    j = g.join(place, on="village_code")
    assert j["county"].notna().all()   # natural villages inherit their parent's county
    for col in ("county", "township", "indicator", "assessed", "met", "rate", "target"):
        assert col in s.columns
    s = s.assign(township=s["township"].fillna(""))
    checked = 0
    for (county, town, ind), grp in j.groupby(["county", "township", "indicator"]):
        row = s[(s["county"] == county) & (s["township"] == town) & (s["indicator"] == ind)]
        assert len(row) == 1, (county, town, ind)
        row = row.iloc[0]
        assert row["assessed"] == len(grp)
        assert row["met"] == (grp["status"] == "met").sum()
        assert row["rate"] == pytest.approx(row["met"] / row["assessed"], abs=1e-4)
        assert row["target"] == national_toml["indicators"][ind].get("target_rate", 1.0)
        checked += 1
    # county totals (township empty)
    for (county, ind), grp in j.groupby(["county", "indicator"]):
        row = s[(s["county"] == county) & (s["township"] == "") & (s["indicator"] == ind)]
        assert len(row) == 1 and row.iloc[0]["assessed"] == len(grp)
        assert row.iloc[0]["met"] == (grp["status"] == "met").sum()
    assert checked == len(s) - len(j.groupby(["county", "indicator"]))


def test_manifest_hashes_profile_and_counts(run, synth):
    m = run["manifest"]
    for k in ("run_id", "created", "tool", "profile", "inputs", "counts"):
        assert k in m
    assert m["tool"]["version"]
    national = REPO / "layers" / "standards" / "national.toml"
    assert m["profile"]["name"] == "national"
    assert m["profile"]["sha256"] == hashlib.sha256(national.read_bytes()).hexdigest()
    by_layer = {i["layer"]: i for i in m["inputs"]}
    assert set(by_layer) == {"villages", "natural_villages", "roads", "water", "power",
                             "clinics", "broadband"}
    for layer in ("villages", "water", "clinics"):
        f = synth.files[layer]
        assert Path(by_layer[layer]["path"]).resolve() == f.resolve()
        assert by_layer[layer]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert all(len(i["sha256"]) == 64 for i in m["inputs"])
    rows = {"villages": 5, "natural_villages": 7, "roads": 7, "water": 6, "power": 5,
            "clinics": 4, "broadband": 4}
    assert {k: i["rows"] for k, i in by_layer.items()} == rows
    c = m["counts"]
    assert c["villages_in"] == 12
    assert c["assessed"] == len(run["villages"]) == run["gaps"]["village_code"].nunique()
    village_rejects = run["rejected"]["layer"].isin(["villages", "natural_villages"]).sum()
    assert c["rejected"] == village_rejects == 2
    assert c["villages_in"] == c["assessed"] + c["rejected"] + c.get("not_applicable", 0)
    assert c.get("not_applicable", 0) == 0


def test_rejected_csv_and_nothing_lost(run, synth):
    rej = run["rejected"]
    for c in ("file", "row", "reason"):
        assert c in rej.columns and rej[c].notna().all()
    nat_file = str(synth.files["natural_villages"])
    nat = rej[rej["file"] == nat_file].set_index("row")
    # rows are spreadsheet lines (header = line 1): N6, data row 6, is line 7
    assert "geometry" in nat.loc[7, "reason"]                       # N6 has no geometry
    assert nat.loc[7, "code"] == "N6" and nat.loc[7, "name"] == "无图组"
    assert "duplicate" in nat.loc[8, "reason"] and "row 6" in nat.loc[8, "reason"]
    assert nat.loc[8, "name"] == "重号组"
    kept = set(run["villages"]["code"])
    for r in synth.natural.itertuples():
        assert r.code in kept or r.row + 1 in set(nat.index), r
    assert kept >= set(synth.admin["code"])


def test_cli_bad_input_one_line_error_naming_file(tmp_path):
    project = tmp_path / "p.toml"
    (tmp_path / "villages.gpkg").write_bytes(b"\x00garbage, not SQLite\xff" * 64)
    project.write_text('[layers.villages]\npath = "villages.gpkg"\n', encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli("run", project, "--out", out)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "villages.gpkg" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
