"""The run archive: writing a run atomically, reading runs back, listing a folder of runs.

A run directory holds exactly the files of the contract (manifest.json, gaps.parquet,
villages.parquet, projects.csv, summary.csv, rejected.csv) plus warnings.csv and unlocated.csv,
and exit.csv when the project set ``year``.
``villages.parquet`` is GeoParquet 1.1 (EPSG:4326, with a covering bbox column so readers can
filter by area); runs written before it have ``villages.gpkg`` with the same columns, and are
read the same way. GeoPackage, Shapefile and GeoJSON are export formats (``buque export``).
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyogrio

from buque.geo.csvsafe import neutralise_table, restore_frame

MANIFEST = "manifest.json"
FILES = ("manifest.json", "gaps.parquet", "villages.parquet", "projects.csv", "summary.csv",
         "rejected.csv", "warnings.csv", "unlocated.csv")
VILLAGES = "villages.parquet"
#: the exit checks, in runs whose project sets ``year`` (older runs have none)
EXIT = "exit.csv"
#: the village table of runs written before GeoParquet
VILLAGES_GPKG = "villages.gpkg"
GEOPARQUET_VERSION = "1.1.0"
#: archive files written at once. At national size (2.6 M villages) two threads took 17.9 s
#: and three 16.3 s; the run's memory peak is in this step, and was 9.8 GiB with two against
#: 10.6 GiB with three (that run also read its layers in threads)
WRITE_THREADS = 2
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
    #: archived layers already written as files (by a run's second process, :mod:`geo.split`),
    #: moved into the archive by :func:`write_run`; not in ``layers``
    layer_files: dict[str, Path] = field(default_factory=dict)
    #: further CSV files of the run by file name (``discrepancies.csv`` of a ledger check)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: exit checks (``exit.csv``): runs whose project sets ``year``; None for the others
    exit: pd.DataFrame | None = None


def write_run(out: Path, tables: RunTables, manifest: dict[str, Any],
              fault: Callable[[str], None] | None = None) -> Path:
    """Write a run into ``out`` atomically; ``out`` is replaced only when all files are written.

    ``fault`` is called with each file name before it is written (tests use it to fail a run
    half-way and check the earlier run survived).
    """
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    jobs: list[tuple[str, Callable[[Path], None]]] = [
        ("gaps.parquet", lambda p: write_parquet(tables.gaps, p)),
        (VILLAGES, lambda p: write_geoparquet(tables.villages, p)),
    ]
    for name, df in (("projects.csv", tables.projects), ("summary.csv", tables.summary),
                     ("rejected.csv", tables.rejected), ("warnings.csv", tables.warnings),
                     ("unlocated.csv", tables.unlocated), *tables.extra.items()):
        jobs.append((name, lambda p, df=df: write_csv(df, p)))
    if tables.exit is not None:
        jobs.append((EXIT, lambda p: write_csv(tables.exit, p)))
    for kind, gdf in tables.layers.items():
        jobs.append((f"{LAYERS_DIR}/{kind}.parquet", lambda p, gdf=gdf: write_geoparquet(gdf, p)))
    for kind, src in tables.layer_files.items():
        jobs.append((f"{LAYERS_DIR}/{kind}.parquet", lambda p, src=src: os.replace(src, p)))
    try:
        if tables.layers or tables.layer_files:
            (tmp / LAYERS_DIR).mkdir()
        # the files are written side by side (Arrow's Parquet and CSV writers and GEOS's WKB
        # encoding release the GIL); ``fault`` still sees every name, in this order
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            pending = []
            try:
                for name, write in jobs:
                    if fault:
                        fault(name)
                    pending.append(pool.submit(write, tmp / name))
            finally:
                for f in pending:
                    f.result()
        if fault:
            fault(MANIFEST)
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest, f, ensure_ascii=False, indent=2, default=str)
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; a run is for everyone to read
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


#: rows per row group of a GeoParquet file (pyarrow's default); larger tables are converted to
#: Arrow one row group at a time, so only that much WKB is in memory at once
ROW_GROUP = 1 << 20


def write_geoparquet(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """GeoParquet 1.1 with a covering bbox column (GDAL, DuckDB and geopandas filter on it).

    A table of more than :data:`ROW_GROUP` rows is written row group by row group, with the
    file metadata (``geo``: bbox, geometry types) of the whole table: the same file as
    geopandas' ``to_parquet`` writes, without holding all of it as WKB and Arrow at once (at
    national size gigabytes at the run's peak).
    """
    dictionary = dictionary_columns(gdf)
    if len(gdf) <= ROW_GROUP:
        gdf.to_parquet(path, index=False, schema_version=GEOPARQUET_VERSION,
                       write_covering_bbox=True, use_dictionary=dictionary)
        return
    # geopandas' own conversion and metadata (private helpers, pinned in constraints.txt)
    from geopandas.io.arrow import _create_metadata, _encode_metadata, _geopandas_to_arrow

    geo = _encode_metadata(_create_metadata(
        gdf, schema_version=GEOPARQUET_VERSION,
        geometry_encoding={c: "WKB" for c in gdf.columns[gdf.dtypes == "geometry"]},
        write_covering_bbox=True))
    writer = None
    try:
        for start in range(0, len(gdf), ROW_GROUP):
            t = _geopandas_to_arrow(gdf.iloc[start:start + ROW_GROUP], index=False,
                                    schema_version=GEOPARQUET_VERSION, write_covering_bbox=True)
            t = t.replace_schema_metadata({**t.schema.metadata, b"geo": geo})
            if writer is None:
                writer = pq.ParquetWriter(path, t.schema, use_dictionary=dictionary)
            writer.write_table(t, row_group_size=ROW_GROUP)
            del t
    finally:
        if writer is not None:
            writer.close()


def dictionary_columns(df: pd.DataFrame, sample: int = 4096) -> list[str]:
    """The columns worth Parquet's dictionary encoding: few distinct values (at most one in
    four) among the first ``sample`` rows, e.g. statuses, indicators, counties, kinds.

    Parquet writers try it on every column by default; on mostly distinct ones (codes, ids,
    names, distances) that cost about a third of the write time of the province archive's
    tables and made the files larger."""
    head = df.iloc[:sample]

    def few(c: object) -> bool:
        try:
            return head[c].nunique(dropna=False) <= len(head) // 4
        except TypeError:  # unhashable cells (lists): leave it to the writer's default
            return True

    return [str(c) for c in df.columns
            if not isinstance(df[c].dtype, gpd.array.GeometryDtype) and few(c)]


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """A table without geometry as Parquet (pandas' metadata kept, as ``to_parquet`` writes)."""
    df.to_parquet(path, index=False, use_dictionary=dictionary_columns(df))


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """UTF-8 CSV with a byte-order mark (Excel then reads Chinese correctly), via Arrow; text
    cells that a spreadsheet would run as a formula get a leading ``'`` (:mod:`geo.csvsafe`;
    :func:`read_run` takes it off again)."""
    table = neutralise_table(pa.Table.from_pandas(df, preserve_index=False))
    with open(path, "wb") as f:
        f.write("\ufeff".encode())
        pacsv.write_csv(table, f, write_options=pacsv.WriteOptions(quoting_style="needed"))


def replace_dir(new: Path, out: Path, marker: str | None = MANIFEST, what: str = "run") -> None:
    """Swap the finished folder ``new`` into ``out``: an existing ``out`` is moved aside, then
    removed (and moved back if the swap fails). With ``marker``, an existing non-empty ``out``
    without that file (not a Buque ``what``) is refused rather than replaced. Runs, plans,
    samples and derived runs are all written this way."""
    if not out.exists():
        os.rename(new, out)
        return
    if not out.is_dir():
        raise FileExistsError(f"{out}: exists and is a file, not a {what} directory; refusing "
                              "to replace it")
    if marker is not None and not (out / marker).is_file() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not a Buque {what}; refusing to replace it")
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
                     villages=read_villages(run),
                     projects=csv("projects.csv"), summary=csv("summary.csv"),
                     rejected=csv("rejected.csv"), warnings=csv("warnings.csv"),
                     unlocated=csv("unlocated.csv"), layers=read_layers(run),
                     exit=read_exit(run))


def read_exit(run: Path) -> pd.DataFrame | None:
    """A run's ``exit.csv`` (None for runs without one: no ``year``, or written before)."""
    p = Path(run) / EXIT
    if not p.is_file():
        return None
    df = restore_frame(pd.read_csv(p, encoding=CSV_ENCODING, keep_default_na=False,
                                   na_values=[""], dtype={"village_code": "string",
                                                          "county": "string",
                                                          "blockers": "string"}))
    df["ready"] = df["ready"].astype(str).str.lower().eq("true")
    df["blockers"] = df["blockers"].fillna("")
    return df


def read_villages(run: Path) -> gpd.GeoDataFrame:
    """A run's village table: ``villages.parquet``, or ``villages.gpkg`` of an older run; the
    same columns in the same order (geometry last) either way."""
    run = Path(run)
    if (run / VILLAGES).is_file() or not (run / VILLAGES_GPKG).is_file():
        v = gpd.read_parquet(run / VILLAGES)
        v = v[[c for c in v.columns if c != v.geometry.name] + [v.geometry.name]]
        text = [c for c in v.columns if isinstance(v[c].dtype, pd.StringDtype)]
        v[text] = v[text].astype("str")  # pandas' default text (NaN for null), as in older runs
    else:
        v = pyogrio.read_dataframe(run / VILLAGES_GPKG, use_arrow=True)
    return _village_dtypes(v)


def _village_dtypes(v: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Nullable dtypes for the village columns stored as bool / integer (GeoPackage has no
    nullable booleans, so older runs need them restored)."""
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
