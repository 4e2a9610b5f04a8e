"""Response encoders: GeoJSON, JSON rows, CSV (UTF-8 with BOM) and XLSX.

A :class:`FeatureTable` is built once per served collection (at start-up for villages): the
properties as an Arrow table and each geometry pre-encoded as GeoJSON text, so a page is a
``take`` plus a string join, and a county's CSV is Arrow's C++ CSV writer over the rows.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import shapely

from buque.geo.csvsafe import neutralise_table

GEOJSON = "application/geo+json"
JSON = "application/json"
CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BOM = "\ufeff".encode()
EXCEL_MAX_ROWS = 1_048_575


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    """Infinite floats become null (JSON has no infinity)."""
    out = df
    for c in df.columns:
        if pd.api.types.is_float_dtype(df[c].dtype):
            a = df[c].to_numpy(dtype=float, na_value=np.nan)
            if np.isinf(a).any():
                if out is df:
                    out = df.copy()
                out[c] = np.where(np.isinf(a), np.nan, a)
    return out


def to_arrow(df: pd.DataFrame) -> pa.Table:
    df = _clean(df)
    cols = {}
    for c in df.columns:
        s = df[c]
        if s.dtype == object:
            # mixed Python objects (e.g. bools with None) -> let Arrow infer, else text
            try:
                cols[str(c)] = pa.array(s, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                cols[str(c)] = pa.array(s.astype("string"), from_pandas=True)
        else:
            cols[str(c)] = pa.array(s, from_pandas=True)
    return pa.table(cols) if cols else pa.table({"_": pa.array([], pa.null())}).drop(["_"])


def _column_values(s: pd.Series) -> list[Any]:
    if isinstance(s.dtype, np.dtype):
        if s.dtype.kind == "f":
            return [x if math.isfinite(x) else None for x in s.to_numpy().tolist()]
        if s.dtype.kind in "iub":
            return s.to_numpy().tolist()
    out = s.astype(object).where(s.notna(), None).tolist()
    return [_default(x) if isinstance(x, np.generic) else x for x in out]


def rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Records with JSON-ready values (NaN/NA -> None, numpy scalars -> Python)."""
    names = [str(c) for c in df.columns]
    cols = [_column_values(df.iloc[:, i]) for i in range(len(names))]
    return [dict(zip(names, vals, strict=True)) for vals in zip(*cols, strict=True)]


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                      default=_default)


def _default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if o is pd.NA or o is pd.NaT:
        return None
    return str(o)


def _csv_arrow(table: pa.Table, safe: bool = False) -> bytes:
    """CSV with a BOM; text cells that would run as spreadsheet formulas are neutralised
    (unless ``safe``: the table already was)."""
    buf = io.BytesIO()
    buf.write(BOM)
    pacsv.write_csv(table if safe else neutralise_table(table), buf,
                    pacsv.WriteOptions(include_header=True, quoting_style="needed"))
    return buf.getvalue()


def csv_bytes(df: pd.DataFrame) -> bytes:
    """CSV in UTF-8 with a byte-order mark, so Excel opens Chinese text correctly."""
    return _csv_arrow(to_arrow(df))


def _xlsx_cell_values(table: pa.Table) -> list[list[Any]]:
    return [list(r.values()) for r in table.to_pylist()]


def xlsx_bytes(sheets: Mapping[str, pd.DataFrame | pa.Table]) -> bytes:
    """A workbook with one sheet per table (openpyxl, write-only streaming)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    for name, t in sheets.items():
        table = t if isinstance(t, pa.Table) else to_arrow(t)
        ws = wb.create_sheet(title=str(name)[:31])
        ws.freeze_panes = "A2"
        widths = [max(8, min(40, len(c) + 2)) for c in table.column_names]
        for i, w in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = w
        ws.append(list(table.column_names))
        for values in _xlsx_cell_values(table):
            out: list[Any] = []
            for v in values:
                if isinstance(v, str):
                    v = ILLEGAL_CHARACTERS_RE.sub("", v)
                    if v.startswith("="):  # text, never a formula
                        cell = WriteOnlyCell(ws, value=v)
                        cell.data_type = "s"
                        v = cell
                elif isinstance(v, float) and not math.isfinite(v):
                    v = None
                out.append(v)
            ws.append(out)
    if not wb.worksheets:
        wb.create_sheet("empty")
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


class RowTable:
    """A table converted to Arrow once; slices are served by row positions."""

    def __init__(self, properties: pd.DataFrame) -> None:
        self.properties = properties.reset_index(drop=True)
        self.columns = [str(c) for c in self.properties.columns]
        self.table = to_arrow(self.properties)
        self.schema = {str(f.name): f.type for f in self.table.schema}
        self._csv_table: pa.Table | None = None

    def __len__(self) -> int:
        return len(self.properties)

    def take(self, idx: np.ndarray) -> pa.Table:
        return self.table.take(pa.array(idx, type=pa.int64()))

    def rows(self, idx: np.ndarray) -> list[dict[str, Any]]:
        return self.take(idx).to_pylist()

    def csv(self, idx: np.ndarray) -> bytes:
        if self._csv_table is None:  # neutralised once, on the first CSV download
            self._csv_table = neutralise_table(self.table)
        return _csv_arrow(self._csv_table.take(pa.array(idx, type=pa.int64())), safe=True)

    def xlsx(self, idx: np.ndarray, sheet: str, extra: Mapping[str, pd.DataFrame] = {}) -> bytes:
        return xlsx_bytes({sheet: self.take(idx), **extra})


_CONTROL = "[\\x00-\\x1f]"


def _join(*parts: Any) -> pa.Array:
    """Element-wise concatenation of string arrays and literal strings (as large strings)."""
    args = [pa.scalar(x, pa.large_string()) if isinstance(x, str) else x.cast(pa.large_string())
            for x in parts]
    return pc.binary_join_element_wise(*args, pa.scalar("", pa.large_string()))


def json_values(arr: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Each value of an Arrow column as JSON text (``null`` for nulls), vectorised.

    Numbers use Arrow's shortest round-trip formatting (non-finite floats become ``null``);
    strings are quoted with ``\\`` and ``"`` escaped, and the rare values holding control
    characters are encoded by :func:`json.dumps` instead.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_boolean(t):
        out = pc.if_else(arr, pa.scalar("true", pa.large_string()),
                         pa.scalar("false", pa.large_string()))
    elif pa.types.is_integer(t):
        out = pc.cast(arr, pa.large_string())
    elif pa.types.is_floating(t):
        finite = pc.is_finite(arr)
        out = pc.if_else(finite, pc.cast(arr, pa.large_string()),
                         pa.scalar(None, pa.large_string()))
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        arr = arr.cast(pa.large_string())
        esc = pc.replace_substring(pc.replace_substring(arr, "\\", "\\\\"), '"', '\\"')
        out = _join('"', esc, '"')
        ctrl = pc.fill_null(pc.match_substring_regex(arr, _CONTROL), False)
        if pc.any(ctrl).as_py():
            pos = np.flatnonzero(ctrl.to_numpy(zero_copy_only=False))
            fixed = [dumps(arr[int(i)].as_py()) for i in pos]
            out = pc.replace_with_mask(out, ctrl, pa.array(fixed, pa.large_string()))
    elif pa.types.is_null(t):
        out = pa.array([None] * len(arr), pa.large_string())
    else:
        out = pa.array([None if v is None else dumps(v) for v in arr.to_pylist()],
                       pa.large_string())
    return pc.fill_null(out.cast(pa.large_string()), "null")


def json_objects(table: pa.Table) -> pa.Array:
    """One JSON object per row of ``table`` (``{"col":value,...}``), vectorised."""
    if table.num_columns == 0:
        return pa.array(["{}"] * table.num_rows, pa.large_string())
    parts: list[Any] = []
    for i, name in enumerate(table.column_names):
        parts.append(("{" if i == 0 else ",") + dumps(str(name)) + ":")
        parts.append(json_values(table.column(i)))
    parts.append("}")
    return _join(*parts)


class FeatureTable(RowTable):
    """A collection's features, encoded once: each feature's GeoJSON text is built at start-up
    (vectorised), so a page is a take and a join."""

    def __init__(self, properties: pd.DataFrame, geometry: np.ndarray, *,
                 id_column: str | None = None) -> None:
        super().__init__(properties)
        n = len(self.properties)
        geo = shapely.to_geojson(np.asarray(geometry, dtype=object)) if n else np.array([], dtype=object)
        geo_arr = pa.array(["null" if g is None else g for g in geo], pa.large_string())
        if id_column and id_column in self.table.column_names:
            ids = self.table.column(id_column)
            if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
                ids = pc.cast(ids, pa.large_string())
            head = pc.if_else(pc.is_null(ids), pa.scalar('{"type":"Feature",', pa.large_string()),
                              _join('{"type":"Feature","id":', json_values(ids), ","))
        else:
            head = _join('{"type":"Feature","id":', pa.array(np.arange(1, n + 1)), ",")
        feats = _join(head, '"geometry":', geo_arr, ',"properties":', json_objects(self.table),
                      "}")
        self.feature_json = np.array(feats.to_pylist(), dtype=object)

    def features(self, idx: np.ndarray) -> str:
        """``"{feature},{feature},..."`` for the rows at ``idx``."""
        return ",".join(self.feature_json[idx].tolist())

    def feature(self, pos: int) -> str:
        return self.features(np.array([pos]))

    def collection(self, idx: np.ndarray, meta: dict[str, Any]) -> bytes:
        """A GeoJSON FeatureCollection with OGC members (numberMatched, links, ...) in ``meta``."""
        head = dumps({"type": "FeatureCollection", **meta})[:-1]
        return (head + ',"features":[' + self.features(idx) + "]}").encode()

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema types of the properties (for /schema and /queryables)."""
        return {name: {"type": json_type(t)} for name, t in self.schema.items()}


def json_type(t: pa.DataType) -> str | list[str]:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    return "string"


def table_json(df: pd.DataFrame, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    return rows(df if columns is None else df[list(columns)])
