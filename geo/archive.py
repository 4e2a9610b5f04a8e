"""The run archive: writing a run atomically, reading runs back, listing a folder of runs.

A run directory holds exactly the files of the contract (manifest.json, gaps.parquet,
villages.gpkg, projects.csv, summary.csv, rejected.csv) plus warnings.csv and unlocated.csv.
The feature layers the run used are kept beside them as GeoParquet (``layers/<kind>.parquet``,
EPSG:4326, canonical fields plus ``evidence_<indicator>`` = pass/fail/unknown per indicator that
reads the layer), so maps, tiles and exports need nothing but the run.

It is written into a temporary sibling directory and renamed into place, so a failed run never
leaves a half-written directory and never touches an earlier run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyogrio

from geo.csvsafe import neutralise_table, restore_frame

MANIFEST = "manifest.json"
FILES = ("manifest.json", "gaps.parquet", "villages.gpkg", "projects.csv", "summary.csv",
         "rejected.csv", "warnings.csv", "unlocated.csv")
LAYERS_DIR = "layers"
CSV_ENCODING = "utf-8-sig"  # with BOM, so Excel opens Chinese text correctly


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def sidecars(path: Path) -> list[Path]:
    """A file and the files that belong to it (a Shapefile's .dbf/.shx/.prj/.cpg)."""
    if path.suffix.lower() != ".shp":
        return [path]
    return sorted(p for p in path.parent.glob(path.stem + ".*") if p.is_file())


def hash_input(path: Path) -> str:
    """SHA-256 of a file, or over a Shapefile and its sidecars."""
    files = sidecars(path)
    if len(files) == 1:
        return sha256_file(files[0])
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + sha256_file(p).encode())
    return h.hexdigest()


@dataclass
class RunTables:
    gaps: pd.DataFrame
    villages: gpd.GeoDataFrame
    projects: pd.DataFrame
    summary: pd.DataFrame
    rejected: pd.DataFrame
    warnings: pd.DataFrame
    unlocated: pd.DataFrame
    layers: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)


def write_run(out: Path, tables: RunTables, manifest: dict[str, Any],
              fault: Callable[[str], None] | None = None) -> Path:
    """Write a run into ``out`` atomically; ``out`` is replaced only when all files are written.

    ``fault`` is called with each file name before it is written (tests use it to fail a run
    half-way and check the earlier run survived).
    """
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        def step(name: str) -> Path:
            if fault:
                fault(name)
            return tmp / name

        tables.gaps.to_parquet(step("gaps.parquet"), index=False)
        pyogrio.write_dataframe(tables.villages, step("villages.gpkg"), layer="villages",
                                driver="GPKG", use_arrow=True)
        for name, df in (("projects.csv", tables.projects), ("summary.csv", tables.summary),
                         ("rejected.csv", tables.rejected), ("warnings.csv", tables.warnings),
                         ("unlocated.csv", tables.unlocated)):
            write_csv(df, step(name))
        if tables.layers:
            (tmp / LAYERS_DIR).mkdir()
        for kind, gdf in tables.layers.items():
            gdf.to_parquet(step(f"{LAYERS_DIR}/{kind}.parquet"), index=False)
        with open(step(MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, ensure_ascii=False, indent=2, default=str)
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; a run is for everyone to read
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """UTF-8 CSV with a byte-order mark (Excel then reads Chinese correctly), via Arrow; text
    cells that a spreadsheet would run as a formula get a leading ``'`` (:mod:`geo.csvsafe`;
    :func:`read_run` takes it off again)."""
    table = neutralise_table(pa.Table.from_pandas(df, preserve_index=False))
    with open(path, "wb") as f:
        f.write("\ufeff".encode())
        pacsv.write_csv(table, f, write_options=pacsv.WriteOptions(quoting_style="needed"))


def _replace_dir(new: Path, out: Path) -> None:
    """Swap ``new`` into ``out``; an existing ``out`` is moved aside first, then removed."""
    if not out.exists():
        os.rename(new, out)
        return
    if not out.is_dir():
        raise FileExistsError(f"{out}: exists and is a file, not a run directory; refusing to "
                              "replace it")
    if not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not a Buque run; refusing to replace it")
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def is_run(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def list_runs(folder: Path) -> list[Path]:
    """Runs in ``folder`` (or ``folder`` itself if it is a run), oldest first by creation time."""
    folder = Path(folder)
    if is_run(folder):
        return [folder]
    runs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and is_run(p)]
    return sorted(runs, key=lambda p: (read_manifest(p).get("created", ""), p.name))


def read_manifest(run: Path) -> dict[str, Any]:
    with open(Path(run) / MANIFEST, encoding="utf-8") as f:
        return json.load(f)


def read_run(run: Path) -> RunTables:
    """Load a run's tables back (CSV columns with their natural dtypes, text as it came in)."""
    run = Path(run)
    if not is_run(run):
        raise FileNotFoundError(f"{run}: not a Buque run (no {MANIFEST})")

    def csv(name: str) -> pd.DataFrame:
        return restore_frame(pd.read_csv(
            run / name, encoding=CSV_ENCODING, dtype={"village_code": "string", "code": "string",
                                                      "county": "string", "township": "string"},
            keep_default_na=False, na_values=[""]))

    return RunTables(gaps=pd.read_parquet(run / "gaps.parquet"),
                     villages=_village_dtypes(pyogrio.read_dataframe(run / "villages.gpkg",
                                                                      use_arrow=True)),
                     projects=csv("projects.csv"), summary=csv("summary.csv"),
                     rejected=csv("rejected.csv"), warnings=csv("warnings.csv"),
                     unlocated=csv("unlocated.csv"), layers=read_layers(run))


def _village_dtypes(v: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Nullable dtypes for the village columns that GeoPackage stores as bool / integer."""
    for c in ("poor",):
        if c in v:
            v[c] = v[c].astype("boolean")
    for c in ("population", "households", "exit_year", "n_missing"):
        if c in v:
            v[c] = v[c].astype("Int64")
    return v


def read_layers(run: Path) -> dict[str, gpd.GeoDataFrame]:
    """The feature layers archived with a run (empty for runs without them)."""
    folder = Path(run) / LAYERS_DIR
    if not folder.is_dir():
        return {}
    return {p.stem: gpd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
