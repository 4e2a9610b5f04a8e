"""The plan archive, written atomically like a run: plan.json, works.parquet (GeoParquet,
EPSG:4326), work_villages.csv, phases.csv. The same plan twice gives the same bytes (no time
stamps; rows in a fixed order)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import geopandas as gpd
import pandas as pd

from buque.geo.archive import CSV_ENCODING, replace_dir, write_csv, write_geoparquet
from buque.geo.csvsafe import restore_frame
from buque.geo.plan.make import Plan

PLAN_JSON = "plan.json"
FILES = (PLAN_JSON, "works.parquet", "work_villages.csv", "phases.csv")


def is_plan(path: Path) -> bool:
    return (Path(path) / PLAN_JSON).is_file()


def write_plan(out: str | Path, plan: Plan) -> Path:
    """Write into a temporary sibling, then rename into place (an earlier plan is replaced only
    when every file is written; a directory that is not a plan is never replaced)."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and (not out.is_dir() or (not is_plan(out) and any(out.iterdir()))):
        raise FileExistsError(f"{out}: exists and is not a Buque plan; refusing to replace it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        write_geoparquet(plan.works, tmp / "works.parquet")
        write_csv(plan.work_villages, tmp / "work_villages.csv")
        write_csv(plan.phases, tmp / "phases.csv")
        with open(tmp / PLAN_JSON, "w", encoding="utf-8") as f:
            json.dump(plan.meta, f, ensure_ascii=False, indent=2, sort_keys=False)
            f.write("\n")
        os.chmod(tmp, 0o755)
        replace_dir(tmp, out, PLAN_JSON, "plan")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_plan(path: str | Path) -> Plan:
    path = Path(path)
    if not is_plan(path):
        raise FileNotFoundError(f"{path}: not a Buque plan (no {PLAN_JSON})")
    with open(path / PLAN_JSON, encoding="utf-8") as f:
        meta = json.load(f)

    def csv(name: str) -> pd.DataFrame:
        return restore_frame(pd.read_csv(path / name, encoding=CSV_ENCODING,
                                         dtype={"village_code": "string", "county": "string",
                                                "phase": "string", "work_id": "string"},
                                         keep_default_na=False, na_values=[""]))

    return Plan(meta=meta, works=gpd.read_parquet(path / "works.parquet"),
                work_villages=csv("work_villages.csv"), phases=csv("phases.csv"))


def list_plans(folder: str | Path) -> list[Path]:
    """Plans in ``folder`` (or ``folder`` itself), by name."""
    folder = Path(folder)
    if is_plan(folder):
        return [folder]
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and is_plan(p))
