"""Three runs of the synthetic project three months apart (for progress tests): r1; r2 after
R2 was paved (V3 and N4 gain a road); r3 after R1 was removed and R5's surface became gravel."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pyogrio

DATES = ["2025-03-01T08:00:00+00:00", "2025-06-01T08:00:00+00:00", "2025-09-01T08:00:00+00:00"]


def make_three(synth_dir: Path, dest: Path) -> Path:
    """``dest/runs`` holding r1, r2, r3 (the project copied to ``dest/proj``)."""
    from buque.geo.run import run_project

    shutil.copytree(synth_dir, dest / "proj")
    project, roads_path = dest / "proj" / "project.toml", dest / "proj" / "roads.shp"
    runs = dest / "runs"
    roads = gpd.read_file(roads_path)
    run_project(project, runs / "r1")
    roads.loc[roads["LXBM"] == "R2", "LMLX"] = "水泥"
    pyogrio.write_dataframe(roads, roads_path, driver="ESRI Shapefile")
    run_project(project, runs / "r2")
    roads = roads[roads["LXBM"] != "R1"].copy()
    roads.loc[roads["LXBM"] == "R5", "LMLX"] = "砂石"
    pyogrio.write_dataframe(roads, roads_path, driver="ESRI Shapefile")
    run_project(project, runs / "r3")
    for name, when in zip(("r1", "r2", "r3"), DATES, strict=True):
        m = json.loads((runs / name / "manifest.json").read_text("utf-8"))
        m["created"] = when
        (runs / name / "manifest.json").write_text(json.dumps(m, ensure_ascii=False), "utf-8")
    return runs
