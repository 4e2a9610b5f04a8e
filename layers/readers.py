"""Read input layers from real files into canonical, validated GeoDataFrames (EPSG:4326).

Formats: anything GDAL reads (GeoPackage, Shapefile with a declared encoding, GeoJSON,
FlatGeobuf, ...) through pyogrio; GeoParquet and GeoArrow (Feather/IPC) through pyarrow; CSV,
and Parquet/Arrow tables without geometry, from lon/lat columns. CRS: a layer's declared ``crs``
wins, then the file's own, then the project's; none at all is an error, never a guess.
GCJ-02 and BD-09 are converted to WGS84. Rows that cannot be used are recorded in the
:class:`~layers.errors.Report` with file, row, field and reason; nothing is dropped silently.
"""

from __future__ import annotations

import codecs
import csv
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.feather as pa_feather
import pyarrow.parquet as pq
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from buque.geo.crs import normalise_datum_name, transform_geometries_offset
from buque.layers.errors import HEADER_LINES, BuqueInputError, Report, line_of
from buque.layers.project import LayerSpec
from buque.layers.schema import FALSE_STRINGS, GEOMETRY_FAMILIES, LAYER_FIELDS, TRUE_STRINGS

#: coordinate column names recognised (case and surrounding blanks ignored), best first; X/Y
#: are taken as east/north as in GIS (a survey table whose X is the northing names its columns
#: with lon = "..." and lat = "..." in the project)
LON_NAMES = ("lon", "lng", "long", "longitude", "经度", "东经", "x", "x坐标", "jd")
LAT_NAMES = ("lat", "latitude", "纬度", "北纬", "y", "y坐标", "wd")
#: GeoParquet and GeoArrow files, read with pyarrow (GDAL here has no Parquet driver)
ARROW_SUFFIXES = (".parquet", ".geoparquet", ".arrow", ".feather", ".ipc")
#: delimited text files, read as tables (with lon/lat columns when they are a layer)
TEXT_SUFFIXES = (".csv", ".txt", ".tsv")
ROW = "_row"   # 1-based source data row, kept through the pipeline (reports show line = row + 1)
FILE = "_file"


#: GDAL's Arrow stream of a layer (pyogrio's metadata, table)
Fetched = tuple[dict, pa.Table]


def read_layer(spec: LayerSpec, project_crs: str | None, report: Report,
               ahead: Prefetch | None = None) -> gpd.GeoDataFrame:
    """Read, map fields, set CRS, validate and coerce one layer.

    ``ahead``: GDAL's part of the reading, started earlier in a thread (it runs without the
    GIL, e.g. while the previous layer is decoded).

    Returns a GeoDataFrame in EPSG:4326 with the layer kind's canonical columns, ``_row`` and
    ``_file``; rows that cannot be used are in ``report.rejected``.
    """
    path = spec.path
    if not path.exists():
        raise BuqueInputError(str(path), f"layer '{spec.kind}': no such file")
    reader = reader_of(path)
    if reader == "text":
        gdf, declared = _read_csv(spec, report)
    elif reader == "arrow":
        gdf, declared = _read_arrow_file(spec, report)
    else:
        gdf, declared = _read_vector(spec, ahead), None
    if ROW not in gdf:  # a CSV sets its own (it drops rows without coordinates)
        gdf[ROW] = np.arange(1, len(gdf) + 1)
    gdf = _map_fields(gdf, spec)
    gdf = _to_wgs84(gdf, spec, declared or spec.crs, project_crs)
    return normalise(gdf, spec, report)


def normalise(gdf: gpd.GeoDataFrame, spec: LayerSpec, report: Report) -> gpd.GeoDataFrame:
    """Validate geometry and cast canonical fields of a frame already in EPSG:4326.

    ``gdf`` carries canonical column names and ``_row``; used by file readers and OSM alike.
    """
    if ROW not in gdf:
        gdf = gdf.assign(**{ROW: np.arange(1, len(gdf) + 1)})
    gdf = _validate_geometry(gdf, spec, report)
    return _coerce(gdf, spec, report)


def _ogr_arrow(spec: LayerSpec) -> bool:
    """Whether the layer is read from GDAL's Arrow stream (several times faster); legacy
    Shapefiles, and layers with a declared encoding, keep GDAL's own decoding path."""
    return (not spec.encoding and reader_of(spec.path) == "ogr"
            and spec.path.suffix.lower() not in (".shp", ".dbf"))


def reader_of(path: Path) -> str:
    """Which reader a layer file takes, by its suffix: ``text`` (CSV/TSV), ``arrow``
    (GeoParquet, Feather/Arrow IPC) or ``ogr`` (everything else, through GDAL)."""
    suffix = path.suffix.lower()
    return "text" if suffix in TEXT_SUFFIXES else "arrow" if suffix in ARROW_SUFFIXES else "ogr"


def fetch(spec: LayerSpec) -> Fetched | None:
    """GDAL's part of reading the layer (the file into an Arrow table, the GIL released), or
    None when it is not read that way or a dated/JSON field makes pyogrio parse it itself."""
    if not _ogr_arrow(spec) or not spec.path.exists():
        return None
    meta, table = pyogrio.read_arrow(spec.path, layer=spec.layer, datetime_as_string=True)
    special = any(d is not None and str(d).startswith("datetime") for d in meta["dtypes"])
    if special or any(s == "OFSTJSON" for s in meta.get("ogr_subtypes", ())):
        return None
    return meta, table


class Prefetch:
    """A layer's :func:`fetch`, run by ``pool`` (now, in this thread, without one).

    :meth:`take` waits for it and hands the table over, keeping no reference: the table is
    freed as it is decoded. A failed fetch raises there, inside :func:`read_layer`, which says
    which file could not be read."""

    def __init__(self, spec: LayerSpec, pool: Executor | None = None) -> None:
        self._box: list[Fetched | None] = []
        if pool is None:
            self._run(spec)
            self._done: Future[None] | None = None
        else:
            self._done = pool.submit(self._run, spec)

    def _run(self, spec: LayerSpec) -> None:
        self._box.append(fetch(spec))

    def take(self) -> Fetched | None:
        if self._done is not None:
            self._done.result()
        return self._box.pop()


def _read_vector(spec: LayerSpec, ahead: Prefetch | None = None) -> gpd.GeoDataFrame:
    kw: dict = {}
    if spec.encoding:
        kw["encoding"] = spec.encoding
    try:
        gdf = _frame_of(ahead or Prefetch(spec))
        if gdf is None:  # not read from the Arrow stream
            gdf = pyogrio.read_dataframe(spec.path, layer=spec.layer,
                                         use_arrow=_ogr_arrow(spec), **kw)
    except Exception as e:  # pyogrio raises several DataSourceError/FieldError types
        raise BuqueInputError(str(spec.path), f"cannot read layer '{spec.kind}': {e}") from e
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf:
        raise BuqueInputError(str(spec.path), f"layer '{spec.kind}' has no geometry column")
    _check_decoding(gdf, spec)
    return gdf


def _frame_of(ahead: Prefetch) -> gpd.GeoDataFrame | pd.DataFrame | None:
    """What ``pyogrio.read_dataframe(..., use_arrow=True)`` makes of the fetched table (None
    when there is none), with the geometry decoded from the Arrow WKB column itself:
    converting it inside the table to pandas first makes a Python ``bytes`` object per feature
    (measured 1.4 s of a 4.5 s read of 2 M roads, same frame)."""
    got = ahead.take()
    if got is None:
        return None
    meta, table = got
    del got
    name = meta["geometry_name"] or "wkb_geometry"
    if name not in table.column_names:
        return table.to_pandas()
    # decoded batch by batch: no combined copy of the whole WKB column first
    chunks = [c.storage if isinstance(c, pa.ExtensionArray) else c
              for c in table.column(name).chunks]
    df = table.drop_columns([name]).to_pandas()
    del table
    parts = [shapely.from_wkb(c.to_numpy(zero_copy_only=False)) for c in chunks]
    del chunks
    df["geometry"] = (np.concatenate(parts) if parts else np.array([], dtype=object))
    return gpd.GeoDataFrame(df, geometry="geometry", crs=meta["crs"])


def _looks_misdecoded(values: pd.Series) -> str | None:
    """The encoding that Latin-1-decoded text really is in (GBK, UTF-8), if it looks like CJK."""
    s = values.dropna().astype(str).unique()
    s = [v for v in s if any("\x80" <= ch <= "\xff" for ch in v)][:200]
    if not s:
        return None
    for enc in ("utf-8", "gbk"):
        try:
            fixed = [v.encode("latin-1").decode(enc) for v in s]
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        if any("\u4e00" <= ch <= "\u9fff" for v in fixed for ch in v):
            return enc.upper()
    return None


def _check_decoding(df: pd.DataFrame, spec: LayerSpec) -> None:
    """Say which encoding to set when text did not decode, instead of writing mojibake.

    Two cases: replacement characters (bytes that are not valid in the assumed encoding), and
    a Shapefile with neither a .cpg nor a declared encoding, read as Latin-1 (GDAL's fallback),
    whose text turns out to be GBK or UTF-8 Chinese.
    """
    legacy = (spec.encoding is None and spec.path.suffix.lower() in (".shp", ".dbf")
              and not spec.path.with_suffix(".cpg").exists()
              and not spec.path.with_suffix(".CPG").exists())
    if legacy:
        for col in df.columns:
            if col == "geometry" or not (df[col].dtype == object
                                         or pd.api.types.is_string_dtype(df[col])):
                continue
            enc = _looks_misdecoded(df[col])
            if enc:
                raise BuqueInputError(
                    str(spec.path), f"the Shapefile has no .cpg and its text looks like {enc} "
                    f"read as Latin-1; set encoding = \"{enc}\" for this layer in the project",
                    field=str(col))
    for col in df.columns:
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]):
            hits = _replacement_chars(df[col])
            if hits.any():
                row = line_of(int(np.flatnonzero(hits)[0]) + 1)
                raise BuqueInputError(
                    str(spec.path), "text does not decode; set encoding = \"GBK\" (or the "
                    "file's encoding) for this layer in the project", row=row, field=str(col))


def _replacement_chars(col: pd.Series) -> np.ndarray:
    """Which cells of a text column hold U+FFFD (text that did not decode); null: no."""
    if isinstance(col.dtype, pd.StringDtype) and col.dtype.storage == "pyarrow":
        arr = pa.array(col.array)  # no copy: the column is already Arrow text
    else:  # object columns (mixed values): as text, nulls kept null
        arr = pa.array(col.astype("string").array)
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    # the UTF-8 bytes of U+FFFD looked for in the text buffers first (a byte search; nearly
    # every file has none): cells are matched only where they occur
    if not any(_FFFD in memoryview(c.buffers()[2]).tobytes() for c in chunks
               if c.buffers()[2] is not None):
        return np.zeros(len(col), dtype=bool)
    return pc.fill_null(pc.match_substring(arr, "\ufffd"), False).to_numpy(zero_copy_only=False)


_FFFD = "\ufffd".encode()


def _find_column(columns, explicit: str | None, names: tuple[str, ...], path: Path,
                 what: str) -> str:
    if explicit:
        if explicit not in columns:
            raise BuqueInputError(str(path), f"no column '{explicit}' for {what}", field=explicit)
        return explicit
    lower = {str(c).strip().lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    raise BuqueInputError(str(path), f"no {what} column found (looked for {', '.join(names)}); "
                          f"name it with {what[:3]} = \"COLUMN\" in the project")


def _read_arrow_file(spec: LayerSpec, report: Report) -> tuple[gpd.GeoDataFrame, str | None]:
    """GeoParquet / GeoArrow (Feather, IPC) with their own geometry and CRS; a plain Parquet or
    Arrow table without geometry is read like a CSV, from its lon/lat columns."""
    path = spec.path
    feather = path.suffix.lower() not in (".parquet", ".geoparquet")
    try:
        schema = pa.ipc.open_file(pa.memory_map(str(path))).schema if feather else pq.read_schema(path)
        if schema.metadata and b"geo" in schema.metadata:
            gdf = gpd.read_feather(path) if feather else gpd.read_parquet(path)
            return gdf.rename_geometry("geometry") if gdf.geometry.name != "geometry" else gdf, None
        df = (pa_feather.read_table(path) if feather else pq.read_table(path)).to_pandas()
    except (OSError, ValueError, pa.ArrowException) as e:
        raise BuqueInputError(str(path), f"cannot read layer '{spec.kind}': {e}") from e
    return _points_from_lonlat(df, spec, report)


def _read_csv(spec: LayerSpec, report: Report) -> tuple[gpd.GeoDataFrame, str | None]:
    path = spec.path
    df, bad = read_text_table(path, spec.encoding, what=f"layer '{spec.kind}'")
    for b in bad:
        report.reject(str(path), spec.kind, [b.row], b.reason)
    return _points_from_lonlat(df, spec, report)


@dataclass(frozen=True)
class BadRow:
    """A CSV row whose field count differs from the header's."""

    line: int      #: the row's number in the file, the header being 1 (what a spreadsheet shows)
    fields: int
    expected: int
    text: str

    @property
    def row(self) -> int:
        """Its data row (the header not counted), as callers give rows to :class:`Report`."""
        return self.line - HEADER_LINES

    @property
    def reason(self) -> str:
        snippet = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return (f"{self.fields} fields where the header has {self.expected} (an unquoted "
                f"comma or quote?), row not read: line {self.line} of the file counting the "
                "header as line 1, as a spreadsheet numbers rows (a text editor's line too, "
                f"unless an earlier quoted value spans lines): {snippet!r}")


def read_text_table(path: Path, encoding: str | None, sep: str | None = None, *,
                    what: str = "CSV") -> tuple[pd.DataFrame, list[BadRow]]:
    """A delimited text file as text columns (blank cells null), and the rows set aside.

    ``sep``: the delimiter; by default a tab for ``.tsv`` and a comma otherwise.

    A row with more or fewer fields than the header is never fitted in: it is returned as a
    :class:`BadRow` and the other rows keep their columns (no data column is ever taken as the
    index). The frame carries ``_row``, each row's 1-based data row in the file. Read by Arrow's
    CSV reader (serially, so row numbers are exact; quoted values may span lines).
    """
    enc = encoding or "utf-8-sig"
    if sep is None:
        sep = "\t" if Path(path).suffix.lower() == ".tsv" else ","
    try:
        with open(path, encoding=enc, newline="") as f:
            header = next(csv.reader(f, delimiter=sep), None)
    except UnicodeDecodeError as e:
        raise BuqueInputError(str(path), f"text does not decode as {encoding or 'UTF-8'}; set "
                              "encoding = \"GBK\" (or the file's encoding) for this layer") from e
    except (LookupError, csv.Error) as e:
        raise BuqueInputError(str(path), f"cannot read {what}: {e}") from e
    if not header:
        raise BuqueInputError(str(path), f"cannot read {what}: the file is empty (no header)")
    names = _unique_names(header)
    bad: list[tuple[int, int, int, str]] = []

    def on_bad(r: pacsv.InvalidRow) -> str:
        bad.append((r.number if r.number is not None and r.number >= 0 else -1,
                    r.actual_columns, r.expected_columns, r.text))
        return "skip"

    utf8 = codecs.lookup(enc).name in ("utf-8", "utf-8-sig")
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False, column_names=names, skip_rows=1,
                                           encoding="utf8" if utf8 else enc),
            parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=True,
                                             invalid_row_handler=on_bad),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=True,
                quoted_strings_can_be_null=True, null_values=[""]))
    except pa.ArrowInvalid as e:
        if "UTF8" in str(e) or "decode" in str(e):
            raise BuqueInputError(str(path), f"text does not decode as {encoding or 'UTF-8'}; "
                                  "set encoding = \"GBK\" (or the file's encoding) for this "
                                  "layer") from e
        raise BuqueInputError(str(path), f"cannot read {what}: {e}") from e
    df = table.to_pandas()
    # data rows: 1..n in file order; the bad ones (line - 1, the header being line 1) are gaps
    lines = sorted(b[0] for b in bad)
    rows = np.arange(1, len(df) + len(bad) + 1)
    rows = rows[~np.isin(rows, np.asarray(lines, dtype=np.int64) - 1)]
    df[ROW] = rows[:len(df)]
    return df, [BadRow(line=ln, fields=n, expected=e, text=t) for ln, n, e, t in sorted(bad)]


def _unique_names(header: list[str]) -> list[str]:
    """Header names as pandas makes them: blanks ``Unnamed: i``, repeats ``x.1``, ``x.2``."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, h in enumerate(header):
        name = h if h != "" else f"Unnamed: {i}"
        base = name
        while name in seen:
            seen[base] += 1
            name = f"{base}.{seen[base]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


def _points_from_lonlat(df: pd.DataFrame, spec: LayerSpec, report: Report
                        ) -> tuple[gpd.GeoDataFrame, str | None]:
    """Points from a table's longitude/latitude columns (found by name or named in the spec);
    rows without usable coordinates are rejected here."""
    path = spec.path
    xcol = _find_column(df.columns, spec.lon, LON_NAMES, path, "longitude")
    ycol = _find_column(df.columns, spec.lat, LAT_NAMES, path, "latitude")
    x = pd.to_numeric(df[xcol], errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(df[ycol], errors="coerce").to_numpy(dtype=float)
    crs = spec.crs
    geographic = crs is None or normalise_datum_name(crs) is not None or _is_geographic(crs, path)
    if geographic:
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            lat_bad = (np.abs(y[ok]) > 90).mean()
            swapped_ok = (np.abs(x[ok]) <= 90).mean()
            if lat_bad > 0.5 and swapped_ok > 0.5:
                raise BuqueInputError(
                    str(path), f"latitude column '{ycol}' holds values beyond ±90 in "
                    f"{lat_bad:.0%} of rows while '{xcol}' looks like latitudes: longitude and "
                    "latitude look swapped; set lon = \"...\" and lat = \"...\" in the project",
                    field=ycol)
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if ROW not in df:  # a CSV keeps its file's data row numbers (rows set aside leave gaps)
        df[ROW] = np.arange(1, len(df) + 1)
    if bad.any():
        rows = df[ROW].to_numpy()[bad]
        report.reject(str(path), spec.kind, rows, "missing or non-numeric coordinates",
                      **_identity(df, spec, source=True).of(bad), field=f"{xcol}/{ycol}")
    # rejected here once, so dropped here (not rejected again as "null geometry" later)
    geom = shapely.points(x[~bad], y[~bad])
    df = df.loc[~bad].drop(columns=[xcol, ycol]).reset_index(drop=True)
    return gpd.GeoDataFrame(df, geometry=geom, crs=None), crs


@dataclass(frozen=True)
class _Identity:
    """What names each input row in the reports: its code (a village) or id (a feature) and
    its name, as text. Read only for the rows a report names (most layers have none)."""

    frame: pd.DataFrame
    code: str | None
    name: str | None

    def of(self, sel: np.ndarray) -> dict[str, np.ndarray | None]:
        """``codes=`` and ``names=`` of the rows ``sel`` picks, for :meth:`Report.reject`/``warn``."""
        def col(c: str | None) -> np.ndarray | None:
            if c is None:
                return None
            return _as_code_string(self.frame[c].iloc[sel]).to_numpy(dtype=object, na_value=None)

        return {"codes": col(self.code), "names": col(self.name)}


def _identity(df: pd.DataFrame, spec: LayerSpec, *, source: bool = False) -> _Identity:
    """The rows' :class:`_Identity`. ``source``: the columns still carry the file's names
    (before the field mapping)."""
    key = "code" if spec.kind in ("villages", "natural_villages") else "id"

    def col(canon: str) -> str | None:
        c = spec.fields.get(canon, canon) if source else canon
        return c if c in df.columns else None

    return _Identity(df, col(key), col("name"))


def _is_geographic(crs: str, path: Path) -> bool:
    try:
        return CRS.from_user_input(crs).is_geographic
    except CRSError as e:
        raise BuqueInputError(str(path), f"unknown CRS {crs!r}: {e}", field="crs") from e


def _map_fields(gdf: gpd.GeoDataFrame, spec: LayerSpec) -> gpd.GeoDataFrame:
    rename = {}
    for canon, src in spec.fields.items():
        if src not in gdf.columns:
            raise BuqueInputError(str(spec.path), f"fields maps '{canon}' to '{src}', which the "
                                  f"file does not have (columns: {', '.join(map(str, gdf.columns))})",
                                  field=src)
        rename[src] = canon
    # a source column already named like a canonical one that is mapped from elsewhere is dropped
    clash = [c for c in rename.values() if c in gdf.columns and c not in rename]
    gdf = gdf.drop(columns=clash).rename(columns=rename)
    return gdf


def _to_wgs84(gdf: gpd.GeoDataFrame, spec: LayerSpec, declared: str | None,
              project_crs: str | None) -> gpd.GeoDataFrame:
    path = str(spec.path)
    chosen = declared or (None if gdf.crs is not None else project_crs)
    if chosen is None and gdf.crs is None:
        raise BuqueInputError(path, f"layer '{spec.kind}' has no CRS and the project sets none; "
                              "add crs = \"EPSG:4490\" (or the right one) to the project or layer",
                              field="crs")
    datum = normalise_datum_name(chosen) if chosen else None
    if datum is not None:
        if gdf.crs is not None and not CRS(gdf.crs).is_geographic:
            raise BuqueInputError(path, f"declared {datum} but the file is projected ({gdf.crs})",
                                  field="crs")
        geoms = transform_geometries_offset(gdf.geometry.to_numpy(), datum)
        return gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index), crs="EPSG:4326")
    if chosen is not None:
        try:
            crs = CRS.from_user_input(chosen)
        except CRSError as e:
            raise BuqueInputError(path, f"unknown CRS {chosen!r}: {e}", field="crs") from e
        gdf = gdf.set_crs(crs, allow_override=True)
    if CRS(gdf.crs).equals(CRS("EPSG:4326")):
        return gdf
    return gdf.to_crs("EPSG:4326")


_FAMILY = {"Point": "Point", "MultiPoint": "Point", "LineString": "LineString",
           "MultiLineString": "LineString", "LinearRing": "LineString", "Polygon": "Polygon",
           "MultiPolygon": "Polygon"}


def _validate_geometry(gdf: gpd.GeoDataFrame, spec: LayerSpec, report: Report) -> gpd.GeoDataFrame:
    """Reject null/empty/out-of-range/wrong-type geometry; repair invalid ones where safe."""
    path, kind = str(spec.path), spec.kind
    geom = gdf.geometry.to_numpy()
    who = _identity(gdf, spec)
    keep = np.ones(len(gdf), dtype=bool)

    def drop(mask: np.ndarray, reason: str) -> None:
        mask = mask & keep
        if mask.any():
            report.reject(path, kind, gdf[ROW].to_numpy()[mask], reason, **who.of(mask),
                          field="geometry")
            keep[mask] = False

    drop(shapely.is_missing(geom), "null geometry")
    drop(shapely.is_empty(geom), "empty geometry")
    xmin, ymin, xmax, ymax = shapely.bounds(geom).T
    with np.errstate(invalid="ignore"):
        out = ~((xmin >= -180) & (xmax <= 180) & (ymin >= -90) & (ymax <= 90))
    drop(out, "coordinates out of range for WGS84 (lon ±180, lat ±90); swapped lon/lat or "
         "wrong CRS?")
    types = shapely.get_type_id(geom)
    names = ["Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString",
             "MultiPolygon", "GeometryCollection"]  # by GEOS type id
    allowed = GEOMETRY_FAMILIES[kind]
    ok_type = np.isin(types, [i for i, n in enumerate(names) if _FAMILY.get(n) in allowed])
    drop(~ok_type, f"geometry type not allowed for {kind} (expected {', '.join(allowed)})")
    # points left are valid (their coordinates passed the range test above, so are finite):
    # only lines and polygons are asked
    check = keep & ~np.isin(types, [names.index("Point"), names.index("MultiPoint")])
    invalid = np.zeros(len(geom), dtype=bool)
    if check.any():
        invalid[check] = ~shapely.is_valid(geom[check])
    if invalid.any():
        fixed = shapely.make_valid(geom[invalid])
        # keep only the part of the original dimension (make_valid may add slivers of lines)
        dim = shapely.get_dimensions(geom[invalid])
        fixed = np.array([_keep_dim(g, d) for g, d in zip(fixed, dim, strict=True)], dtype=object)
        ok = ~shapely.is_empty(fixed) & (shapely.get_dimensions(fixed) == dim)
        idx = np.flatnonzero(invalid)
        geom = geom.copy()
        geom[idx[ok]] = fixed[ok]
        rows = gdf[ROW].to_numpy()
        report.warn(path, kind, rows[idx[ok]], "invalid geometry repaired (make_valid)",
                    **who.of(idx[ok]), field="geometry")
        bad = np.zeros(len(gdf), dtype=bool)
        bad[idx[~ok]] = True
        drop(bad, "invalid geometry that cannot be repaired without changing its type")
        gdf = gdf.set_geometry(gpd.GeoSeries(geom, index=gdf.index, crs=gdf.crs))
    return gdf if keep.all() else gdf.loc[keep]  # _coerce builds a new frame either way


def _keep_dim(g, dim: int):
    """Of a make_valid result, the parts of dimension ``dim`` (repairs are rare: a loop is fine)."""
    if g is None or shapely.get_dimensions(g) == dim and shapely.get_type_id(g) != 7:
        return g
    parts = [p for p in shapely.get_parts(g) if shapely.get_dimensions(p) == dim]
    if not parts:
        return shapely.Point()
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]


def _coerce(gdf: gpd.GeoDataFrame, spec: LayerSpec, report: Report) -> gpd.GeoDataFrame:
    """Cast canonical columns; values that do not parse become null with a warning."""
    path, kind = str(spec.path), spec.kind
    fields = LAYER_FIELDS[kind]
    rows = gdf[ROW].to_numpy()
    who = _identity(gdf, spec)
    out = {}
    for name, typ in fields.items():
        if name not in gdf.columns:
            out[name] = _null_series(typ, gdf.index)
            continue
        col = gdf[name]
        if typ == "string":
            out[name] = _as_code_string(col)
            continue
        if typ == "bool":
            val = _as_bool(col)
        else:
            num = pd.to_numeric(col, errors="coerce")
            if typ == "float" and not pd.api.types.is_numeric_dtype(col):
                # OSM-style "3.5 m", "4,5"
                txt = col.astype("string").str.replace(",", ".", regex=False)
                num = num.astype("Float64").fillna(
                    pd.to_numeric(txt.str.extract(r"(-?\d+(?:\.\d+)?)")[0],
                                  errors="coerce").astype("Float64"))
            if typ == "int":
                frac = num.notna() & (num != num.round())
                num = num.where(~frac)
                val = num.round().astype("Int64")
            else:
                val = num.astype("Float64")
        bad = _unparsed(col, val)
        if bad.any():
            report.warn(path, kind, rows[bad], f"value does not parse as {typ}; left null",
                        **who.of(bad), field=spec.fields.get(name, name))
        out[name] = val
    result = gpd.GeoDataFrame(out, geometry=gdf.geometry.to_numpy(), crs="EPSG:4326",
                              index=gdf.index)
    result[ROW] = gdf[ROW].to_numpy()
    result[FILE] = constant(path, len(result))
    if "id" in fields:
        absent = result["id"].isna().to_numpy()
        if absent.any():  # ids made from the row: "<layer>:<row>"
            gen = pd.Series(rows[absent], index=gdf.index[absent]).astype("string")
            result.loc[absent, "id"] = f"{kind}:" + gen
    return result.reset_index(drop=True)


def constant(value: str, n: int) -> pd.Categorical:
    """A column of ``n`` times ``value``, held as one category (a file's path repeated as text
    over 5 M roads is 200 MB)."""
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[value])


def _unparsed(col: pd.Series, val: pd.Series) -> np.ndarray:
    """Rows with a non-blank source value that did not parse (text only looked at there)."""
    bad = (col.notna() & val.isna()).to_numpy(dtype=bool, na_value=False).copy()
    if bad.any():
        idx = np.flatnonzero(bad)
        bad[idx] = (col.iloc[idx].astype("string").str.strip() != "").to_numpy(bool, na_value=False)
    return bad


def _as_bool(col: pd.Series) -> pd.Series:
    """Booleans from bool, 0/1 numbers (how GPKG/DBF store them) or yes/no-like text."""
    val = pd.Series(pd.NA, index=col.index, dtype="boolean")
    if pd.api.types.is_bool_dtype(col):
        return col.astype("boolean")
    if pd.api.types.is_numeric_dtype(col):
        val[col == 1] = True
        val[col == 0] = False
        return val
    s = col.astype("string").str.strip().str.lower()
    val[s.isin(TRUE_STRINGS).fillna(False)] = True
    val[s.isin(FALSE_STRINGS).fillna(False)] = False
    return val


def _null_series(typ: str, index) -> pd.Series:
    dtype = {"string": "string", "int": "Int64", "float": "Float64", "bool": "boolean"}[typ]
    return pd.Series(pd.NA, index=index, dtype=dtype)


def _as_code_string(col: pd.Series) -> pd.Series:
    """Strings; integral floats (codes read as numbers: 610902001003.0) lose the '.0'."""
    if pd.api.types.is_float_dtype(col):
        integral = col.notna() & (col == col.round())
        s = col.astype("string")
        s[integral] = col[integral].astype("int64").astype("string")
        return s
    s = col.astype("string").str.strip()
    return s.mask(s == "")
