"""PostGIS as an optional run store: ``publish`` loads a run archive, :class:`PgRunStore` serves it.

Tables live in one schema (``buque`` by default), one row set per run, keyed by ``run_id``:

- ``runs``: ``run_id`` (primary key), ``manifest`` (jsonb, and verbatim as ``manifest_text``),
  ``published_at``, ``tables`` (per table: columns with their pandas dtypes, row count) and
  ``tile_layers`` (per gap-map layer: table, properties, bounds, zoom range);
- ``villages``: every column of ``villages.parquet`` plus ``geom`` (EPSG:4326), ``ref_geom`` (the
  reference point, EPSG:4326), ``tile_geom`` (the point drawn on the map, EPSG:3857), ``minzoom``
  (the zoom from which the file-based tiles draw it, see :func:`geo.tiles.draw_minzoom``) and
  ``tile_rank``;
- ``gaps``, ``projects``, ``summary``, ``rejected``, ``warnings``, ``unlocated``: the archive's
  tables as they are;
- ``layer_<kind>`` (``layer_roads`` ...): each archived input layer, with ``geom``, ``tile_geom``,
  ``minzoom`` and ``tile_rank`` like the villages.

Every table has ``_ord`` (the row's position in the archive). Columns are typed from the pandas
dtypes (boolean, bigint, double precision, text); a later run with new columns (a new
indicator) adds them. Loading is ``COPY ... FROM STDIN`` of whole frames; publishing a run again
deletes and reloads its rows in one transaction, so a failed publish leaves the earlier copy.

Serving: :class:`PgRunStore` has the interface of :class:`api.store.RunStore`. A run's tables
are read back from PostGIS (``COPY ... TO STDOUT``) into the same in-memory
:class:`geo.query.RunData` the file store builds, so every route answers as it does from files,
except two that ask PostGIS on each request: tiles (``ST_AsMVT``, see :class:`PgTiles`) and the
village filters of ``/collections/villages/items`` with their count and page
(:class:`PgVillageSelector`; the page's rows are then encoded from memory by position).
"""

from __future__ import annotations

import io
import json
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from buque.api.store import RunStoreBase, ServedRun
from buque.geo.archive import RunTables, read_manifest
from buque.geo.query import (
    STATUSES,
    ProjectIndex,
    RunData,
    VillageFilter,
    VillageIndex,
    indicator_keys,
    load_run_data,
    search_term,
    search_text,
)
from buque.geo.tiles import BUFFER, EXTENT, TileLayer, draw_minzoom, gap_tile_layers

log = logging.getLogger("buque.api")

NULL = r"\N"
PLAIN = ("gaps", "projects", "summary", "rejected", "warnings", "unlocated")
RESERVED = {"run_id", "_ord", "geom", "ref_geom", "tile_geom", "minzoom", "tile_rank", "_fid",
            "_search"}
KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
COPY_ROWS = 50_000      # rows per COPY chunk (bounds the memory of the CSV text)
MAX_TILE_FEATURES = 4000
POOL_SIZE = 8


class PgStoreError(RuntimeError):
    """A database that cannot be used as a store (bad DSN, no PostGIS, no published runs)."""


# ------------------------------------------------------------------------------ connecting

def connect(dsn: str, autocommit: bool = False):  # noqa: ANN201
    """A psycopg 3 connection, with a one-line error for a DSN that does not work."""
    import psycopg

    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10,
                               application_name="buque")
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise PgStoreError(f"cannot connect to PostgreSQL ({_safe_dsn(dsn)}): {first}") from None


def _safe_dsn(dsn: str) -> str:
    """The DSN without its password."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", re.sub(r"password=\S+", "password=***", dsn))


def ensure_postgis(conn) -> str:  # noqa: ANN001
    """PostGIS's version; creates the extension when it is missing and this role may."""
    import psycopg

    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'").fetchone()
    if row:
        return str(row[0])
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or [""])[0]
        db = conn.info.dbname
        raise PgStoreError(f"PostGIS is not installed in database {db!r} and cannot be created "
                           f"here ({first}); run as a superuser: psql -d {db} -c 'CREATE "
                           "EXTENSION postgis' (Debian: apt-get install postgresql-15-postgis-3)"
                           ) from None
    return str(conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
               .fetchone()[0])


def _check_schema(schema: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", schema or ""):
        raise PgStoreError(f"schema {schema!r}: use letters, digits and underscores")
    return schema


def _ident(*names: str):  # noqa: ANN202
    from psycopg import sql

    return sql.Identifier(*names)


# ------------------------------------------------------------------------------ types

def sql_type(dtype: Any) -> str:
    """The column type for a pandas dtype."""
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(dtype):
        return "double precision"
    return "text"


def _restore(values: pd.Series, dtype: str) -> pd.Series:
    """A column read back as text (nulls NaN) in its recorded pandas dtype."""
    kind = sql_type(pd.api.types.pandas_dtype(dtype)) if dtype != "geometry" else "text"
    if kind == "boolean":
        b = values.map({"t": True, "f": False}).astype("boolean")
        return b.astype(dtype) if dtype == "boolean" or not b.isna().any() else b
    if kind in ("bigint", "double precision"):
        num = pd.to_numeric(values, errors="raise")
        if dtype.startswith(("int", "uint")) and num.isna().any():
            return num.astype("Int64")
        return num.astype(dtype)
    if dtype == "object":
        return values.astype(object)
    return values.astype(dtype)


def _hex_wkb(geoms: np.ndarray, srid: int) -> np.ndarray:
    """Hex EWKB text of each geometry (None for missing), for COPY into a geometry column."""
    out = np.full(len(geoms), None, dtype=object)
    ok = ~shapely.is_missing(geoms)
    if ok.any():
        out[ok] = shapely.to_wkb(shapely.set_srid(geoms[ok], srid), hex=True, include_srid=True)
    return out


# ------------------------------------------------------------------------------ publishing

@dataclass
class TableSpec:
    """One table to load: its frame's columns (name, pandas dtype) and extra geometry columns."""

    name: str
    frame: pd.DataFrame
    columns: list[tuple[str, str]]
    geometry_name: str | None = None
    extra: dict[str, str] | None = None  # column -> SQL type of derived columns


def _spec(name: str, df: pd.DataFrame) -> TableSpec:
    geom_name = df.geometry.name if isinstance(df, gpd.GeoDataFrame) else None
    cols = [(str(c), "geometry" if c == geom_name else str(df[c].dtype)) for c in df.columns]
    clash = sorted({c for c, _ in cols if c != geom_name} & RESERVED)
    if clash:
        raise PgStoreError(f"{name}: column(s) {', '.join(clash)} clash with the store's own")
    return TableSpec(name=name, frame=df, columns=cols, geometry_name=geom_name)


def _tile_frame(layer: TileLayer) -> pd.DataFrame:
    """The derived tile columns of a gap-map layer: Mercator geometry, minzoom, rank."""
    return pd.DataFrame({"tile_geom": _hex_wkb(layer.geoms, 3857),
                         "minzoom": draw_minzoom(layer), "tile_rank": layer.rank})


def _ddl(conn, schema: str) -> None:  # noqa: ANN001
    from psycopg import sql

    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(_ident(schema)))
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (run_id text PRIMARY KEY, manifest jsonb NOT NULL, "
        "manifest_text text NOT NULL, published_at timestamptz NOT NULL DEFAULT now(), "
        "tables jsonb NOT NULL, tile_layers jsonb NOT NULL)").format(_ident(schema, "runs")))


def _ensure_table(conn, schema: str, spec: TableSpec, tiles: bool) -> None:  # noqa: ANN001
    """Create the table (and its indexes) or add columns a new run brings."""
    from psycopg import sql

    t = _ident(schema, spec.name)
    base = ["run_id text NOT NULL", "_ord bigint NOT NULL"]
    if spec.geometry_name:
        base.append("geom geometry(Geometry, 4326)")
    if tiles:
        base += ["tile_geom geometry(Geometry, 3857)", "minzoom integer", "tile_rank double precision"]
    if spec.name == "villages":
        base += ["ref_geom geometry(Point, 4326)", "_search text", "gap_class text"]
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(t, sql.SQL(", ".join(base))))
    if spec.name == "villages":  # a store published before villages were searched in SQL
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS _search text").format(t))
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS gap_class text").format(t))
    have = dict(conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s", (schema, spec.name)).fetchall())
    for col, dtype in spec.columns:
        if col == spec.geometry_name:
            continue
        want = sql_type(pd.api.types.pandas_dtype(dtype))
        if col not in have:
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} " + want).format(t, _ident(col)))
        elif have[col] != want:
            raise PgStoreError(f"{spec.name}.{col}: the store has it as {have[col]}, this run "
                               f"as {want}; publish into another --schema")
    idx = [("run_id", "_ord")]
    for cols in (("code",), ("county", "township"), ("village_code", "indicator"),
                 ("county", "indicator"), ("id",)):
        if all(c in dict(spec.columns) for c in cols):
            idx.append(("run_id", *cols))
    if spec.name == "villages":  # the village filters (see PgVillageSelector)
        names = [c for c, _ in spec.columns]
        idx += [("run_id", c) for c in ("level", "poor", "exit_year") if c in names]
        idx += [("run_id", k) for k in indicator_keys(pd.DataFrame(columns=names))]
    for cols in idx:
        name = f"{spec.name}_{'_'.join(c.strip('_') for c in cols)}_idx"
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            _ident(name[:63]), t, sql.SQL(", ").join(_ident(c) for c in cols)))
    gist = (["geom"] if spec.geometry_name else []) + (["tile_geom"] if tiles else [])
    gist += ["ref_geom"] if spec.name == "villages" else []
    for g in gist:
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gist ({})").format(
            _ident(f"{spec.name}_{g}_gist"[:63]), t, _ident(g)))
    if spec.name == "villages":
        _trigram_index(conn, schema)


def _trigram_index(conn, schema: str) -> None:  # noqa: ANN001
    """A trigram index for the text search (``q``) where ``pg_trgm`` is or can be installed;
    without it the search still runs in SQL, scanning the run's villages."""
    import psycopg
    from psycopg import sql

    try:
        with conn.transaction():  # a savepoint: a role that may not create it loses nothing
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (_search "
                                 "gin_trgm_ops)").format(_ident("villages_search_trgm"),
                                                         _ident(schema, "villages")))
    except psycopg.Error as e:
        log.info("no trigram index for the village search: %s",
                 (str(e).strip().splitlines() or [""])[0])


def _copy_frame(conn, schema: str, spec: TableSpec, run_id: str,  # noqa: ANN001
                extra: pd.DataFrame | None) -> int:
    """COPY one frame (with run id, row order and derived columns) into its table."""
    from psycopg import sql

    df = spec.frame
    n = len(df)
    out = pd.DataFrame({"run_id": np.full(n, run_id, dtype=object), "_ord": np.arange(n)})
    for col, _ in spec.columns:
        if col == spec.geometry_name:
            out["geom"] = _hex_wkb(df.geometry.to_numpy(), 4326)
        else:
            out[col] = df[col].reset_index(drop=True)
    if extra is not None:
        for c in extra.columns:
            out[c] = extra[c].to_numpy()
    out = out.reset_index(drop=True)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, NULL {})").format(
        _ident(schema, spec.name), sql.SQL(", ").join(_ident(c) for c in out.columns),
        sql.Literal(NULL))
    with conn.cursor() as cur, cur.copy(stmt) as cp:
        for start in range(0, max(n, 1), COPY_ROWS):
            chunk = out.iloc[start:start + COPY_ROWS]
            if len(chunk):
                cp.write(chunk.to_csv(index=False, header=False, na_rep=NULL))
    return n


def _prepare(run: Path, say: Callable[[str], None]) -> tuple[str, dict[str, Any],
                                                              list[tuple[TableSpec, Any]],
                                                              list[Any], list[Any]]:
    """Read a run and lay out its tables (with the tile columns) for loading."""
    say(f"reading {run}")
    manifest = read_manifest(run)
    data = load_run_data(run)
    tables = data.tables
    run_id = str(manifest.get("run_id") or run.name)
    inputs = {k: tables.layers[k] for k in tables.layers if KIND_RE.match(k)}
    say("computing tile zooms")
    tile_layers = gap_tile_layers(tables.villages, inputs, data.indicators)

    specs: list[tuple[TableSpec, pd.DataFrame | None]] = []
    v = tables.villages
    vt = _tile_frame(tile_layers["villages"])
    vt["ref_geom"] = _hex_wkb(shapely.points(v["ref_lon"].to_numpy(float),
                                             v["ref_lat"].to_numpy(float)), 4326)
    vt["_search"] = search_text(data.index.properties)
    vt["gap_class"] = tile_layers["villages"].props["gap_class"].to_numpy()  # a tile property
    specs.append((_spec("villages", v), vt))
    for name in PLAIN:
        specs.append((_spec(name, getattr(tables, name)), None))
    for kind, gdf in inputs.items():
        specs.append((_spec(f"layer_{kind}", gdf), _tile_frame(tile_layers[kind])))

    meta_tiles = []  # lists: jsonb keeps the order of arrays, not of object keys
    for name, lyr in tile_layers.items():
        meta_tiles.append({
            "name": name, "table": "villages" if name == "villages" else f"layer_{name}",
            "properties": [[str(c), str(lyr.props[c].dtype)] for c in lyr.props.columns],
            "bounds": [None if not np.isfinite(b) else b for b in lyr.bounds_lonlat],
            "minzoom": lyr.minzoom, "maxzoom": lyr.maxzoom})
    meta_tables = [{"name": s.name, "columns": s.columns, "rows": len(s.frame),
                    "geometry": s.geometry_name, "extra": [] if x is None else list(x.columns)}
                   for s, x in specs]

    return run_id, manifest, specs, meta_tables, meta_tiles


def publish(run: str | Path, dsn: str, schema: str = "buque",
            step: Callable[[str], None] | None = None,
            fault: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Load a run archive into PostGIS; an earlier copy of the same run is replaced atomically.

    ``step`` is told what is being loaded; ``fault`` is called with each table's name before it
    is loaded (tests raise there to check that a failed publish changes nothing). Returns the
    run id and rows per table.
    """
    from psycopg import sql

    say = step or (lambda _msg: None)
    run = Path(run)
    _check_schema(schema)
    conn = connect(dsn)  # first: a bad DSN or a missing PostGIS fails before any work
    try:
        version = ensure_postgis(conn)
        conn.commit()
        run_id, manifest, specs, meta_tables, meta_tiles = _prepare(run, say)
    except BaseException:
        conn.close()
        raise
    import psycopg

    try:
        counts: dict[str, int] = {}
        with conn.transaction():
            _ddl(conn, schema)
            # one publisher of a run at a time; readers keep seeing the old rows until commit
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{schema}/{run_id}",))
            for spec, extra in specs:
                _ensure_table(conn, schema, spec, tiles=extra is not None and "minzoom" in extra)
            for spec, _ in specs:
                _delete(conn, schema, spec.name, run_id)
            for spec, extra in specs:
                if fault:
                    fault(spec.name)
                say(f"loading {spec.name} ({len(spec.frame):,} rows)")
                counts[spec.name] = _copy_frame(conn, schema, spec, run_id, extra)
            _drop_stale(conn, schema, run_id, {s.name for s, _ in specs})
            if fault:
                fault("runs")
            conn.execute(sql.SQL(
                "INSERT INTO {} (run_id, manifest, manifest_text, tables, tile_layers) "
                "VALUES (%s, %s::jsonb, %s, %s::jsonb, %s::jsonb) ON CONFLICT (run_id) DO UPDATE "
                "SET manifest = EXCLUDED.manifest, manifest_text = EXCLUDED.manifest_text, "
                "published_at = now(), tables = EXCLUDED.tables, "
                "tile_layers = EXCLUDED.tile_layers").format(_ident(schema, "runs")),
                (run_id, json.dumps(manifest, default=str), json.dumps(manifest, default=str,
                                                                        ensure_ascii=False),
                 json.dumps(meta_tables), json.dumps(meta_tiles)))
        say("analyzing")
        conn.autocommit = True
        for spec, _ in specs:
            conn.execute(sql.SQL("ANALYZE {}").format(_ident(schema, spec.name)))
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise PgStoreError(f"publishing run {run_id} failed (the store is unchanged): {first}"
                           ) from None
    finally:
        conn.close()
    return {"run_id": run_id, "schema": schema, "postgis": version, "rows": counts}


def _delete(conn, schema: str, table: str, run_id: str) -> None:  # noqa: ANN001
    from psycopg import sql

    conn.execute(sql.SQL("DELETE FROM {} WHERE run_id = %s").format(_ident(schema, table)),
                 (run_id,))


def _drop_stale(conn, schema: str, run_id: str, keep: set[str]) -> None:  # noqa: ANN001
    """Rows of this run in layer tables the new copy no longer has."""
    from psycopg import sql

    row = conn.execute(sql.SQL("SELECT tables FROM {} WHERE run_id = %s").format(
        _ident(schema, "runs")), (run_id,)).fetchone()
    for name in ({t["name"] for t in row[0]} - keep) if row else ():
        if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            _delete(conn, schema, name, run_id)


# ------------------------------------------------------------------------------ serving

class Pool:
    """A few autocommit connections shared by request threads (no extra dependency)."""

    def __init__(self, dsn: str, size: int = POOL_SIZE) -> None:
        self.dsn = dsn
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        import psycopg

        with self._slots:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = connect(self.dsn, autocommit=True)
            try:
                yield conn
            except BaseException:
                conn.close()
                raise
            if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.close()
            else:
                self._idle.put(conn)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


@dataclass
class TileMeta:
    """What TileJSON and the style need of a layer served from PostGIS (as a TileLayer has)."""

    name: str
    table: str
    props: pd.DataFrame            # no rows: the property columns and their dtypes
    bounds_lonlat: tuple[float, float, float, float]
    minzoom: int
    maxzoom: int


class PgTiles:
    """A run's gap-map tiles rendered by PostGIS: ``ST_AsMVT`` over ``ST_AsMVTGeom`` with the
    file-based tiles' extent (4096) and buffer (64), features drawn from their ``minzoom``, at
    most 4000 per tile (highest ``tile_rank`` first)."""

    def __init__(self, pool: Pool, schema: str, run_id: str, meta: list[dict[str, Any]]) -> None:
        from psycopg import sql

        self.pool, self.run_id = pool, run_id
        self.meta: dict[str, TileMeta] = {}
        self._sql: dict[str, Any] = {}
        for m in meta:
            name = m["name"]
            props = pd.DataFrame({c: pd.Series(dtype=d) for c, d in m["properties"]})
            b = tuple(float("nan") if x is None else float(x) for x in m["bounds"])
            self.meta[name] = TileMeta(name, m["table"], props, b, int(m["minzoom"]),
                                       int(m["maxzoom"]))
            cols = sql.SQL("").join(sql.SQL(", {}").format(_ident(c)) for c in props.columns)
            names = sql.SQL("").join(sql.SQL(", q.{}").format(_ident(c)) for c in props.columns)
            self._sql[name] = sql.SQL(
                "SELECT ST_AsMVT(t, {name}, {extent}, '_mvt_geom', '_mvt_id') FROM ("
                " SELECT q._mvt_id, q._mvt_geom{names} FROM (SELECT _ord AS _mvt_id, tile_rank AS _mvt_rank,"
                "  ST_AsMVTGeom(tile_geom, ST_TileEnvelope(%(z)s, %(x)s, %(y)s), {extent}, {buffer},"
                "  true) AS _mvt_geom{cols} FROM {table}"
                "  WHERE run_id = %(run)s AND minzoom <= %(z)s AND tile_geom && ST_TileEnvelope("
                "  %(z)s, %(x)s, %(y)s, margin => {margin})) q"
                " WHERE _mvt_geom IS NOT NULL ORDER BY _mvt_rank DESC, _mvt_id LIMIT {cap}) t"
            ).format(name=sql.Literal(name), names=names, extent=sql.Literal(EXTENT),
                     buffer=sql.Literal(BUFFER), cols=cols, table=_ident(schema, m["table"]),
                     margin=sql.Literal(BUFFER / EXTENT), cap=sql.Literal(MAX_TILE_FEATURES))

    def layers(self) -> dict[str, TileMeta]:
        return self.meta

    def render(self, layer: str, z: int, x: int, y: int) -> bytes:
        """The MVT bytes of one tile (b"" when no feature falls in it)."""
        m = self.meta[layer]
        if not m.minzoom <= z <= m.maxzoom:
            return b""
        with self.pool.connection() as conn:
            row = conn.execute(self._sql[layer], {"z": z, "x": x, "y": y,
                                                  "run": self.run_id}).fetchone()
        return bytes(row[0]) if row and row[0] else b""


def _read_table(conn, schema: str, name: str, run_id: str, meta: dict[str, Any]  # noqa: ANN001
                ) -> pd.DataFrame:
    """One table of a run read back with ``COPY ... TO STDOUT`` in its recorded dtypes."""
    from psycopg import sql

    cols: list[tuple[str, str]] = [tuple(c) for c in meta["columns"]]  # type: ignore[misc]
    geom = meta.get("geometry")
    select = [_ident("geom") if c == geom else _ident(c) for c, _ in cols]
    stmt = sql.SQL("COPY (SELECT {} FROM {} WHERE run_id = {} ORDER BY _ord) TO STDOUT "
                   "(FORMAT csv, NULL {})").format(
        sql.SQL(", ").join(select) if select else sql.SQL("1"), _ident(schema, name),
        sql.Literal(run_id), sql.Literal(NULL))
    buf = io.BytesIO()
    with conn.cursor() as cur, cur.copy(stmt) as cp:
        for block in cp:
            buf.write(block)
    names = [c for c, _ in cols]
    if buf.tell() == 0:
        raw = pd.DataFrame({c: pd.Series([], dtype=object) for c in names})
    else:
        buf.seek(0)
        raw = pd.read_csv(buf, header=None, names=names, dtype=str, keep_default_na=False,
                          na_values=[NULL], encoding="utf-8")
    out = {}
    for c, dtype in cols:
        if c == geom:
            hexes = raw[c].to_numpy(dtype=object)
            g = np.full(len(hexes), None, dtype=object)
            ok = pd.notna(hexes)
            if ok.any():
                g[ok] = shapely.from_wkb(hexes[ok].astype(str))
            out[c] = gpd.GeoSeries(g, crs="EPSG:4326")
        else:
            out[c] = _restore(raw[c], dtype)
    df = pd.DataFrame(out, columns=names)
    if geom:
        return gpd.GeoDataFrame(df, geometry=geom, crs="EPSG:4326")
    return df


def _like_pattern(q: str) -> str:
    """A LIKE pattern (escape ``\\``) matching text that contains ``q`` literally."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", q) + "%"


class PgVillageSelector:
    """The village filters, their count and the page of matches, in SQL (see
    :class:`geo.query.VillageSelector`): the same answers as :meth:`geo.query.VillageIndex.select`,
    as row positions (``_ord``). Values are bound parameters; only column names, checked
    against the run's published columns, are composed into the statements."""

    #: the pandas dtypes' SQL types this selector's comparisons assume, per filtered column
    TYPES = {"code": "text", "name": "text", "county": "text", "township": "text",
             "level": "text", "poor": "boolean", "exit_year": "bigint"}

    def __init__(self, pool: Pool, schema: str, run_id: str, columns: dict[str, str]) -> None:
        self.pool, self.run_id = pool, run_id
        self.table = _ident(schema, "villages")
        self.columns = {c: sql_type(pd.api.types.pandas_dtype(d)) for c, d in columns.items()
                        if d != "geometry"}
        self.indicators = indicator_keys(pd.DataFrame(columns=list(columns)))

    @classmethod
    def for_run(cls, pool: Pool, schema: str, run_id: str, meta: dict[str, Any]
                ) -> PgVillageSelector | None:
        """A selector for a run's published villages, or ``None`` where SQL could answer
        differently from memory (published before ``_search`` existed, or a filtered column of
        another type than these comparisons assume)."""
        columns = {str(c): str(d) for c, d in meta["columns"]}
        sel = cls(pool, schema, run_id, columns)
        want = {**cls.TYPES, **{k: "text" for k in sel.indicators}}
        odd = sorted(c for c, t in want.items() if c in sel.columns and sel.columns[c] != t)
        if "_search" not in meta.get("extra", ()) or odd or not meta.get("geometry"):
            log.warning("run %s: village filters answered in memory (%s)", run_id,
                        f"column types {odd}" if odd else "published by an earlier version")
            return None
        return sel

    def where(self, f: VillageFilter) -> tuple[Any, list[Any]]:
        """The WHERE clause of ``f`` and its parameters."""
        from psycopg import sql

        conds: list[Any] = [sql.SQL("run_id = %s")]
        args: list[Any] = [self.run_id]
        false = sql.SQL("false")

        def isin(col: str, values: list[Any]) -> None:
            if col not in self.columns:
                conds.append(false)
                return
            conds.append(sql.SQL("{} = ANY(%s)").format(_ident(col)))
            args.append(values)

        def any_status(keys: Sequence[str], statuses: Sequence[str]) -> None:
            keys = [k for k in dict.fromkeys(keys) if k in self.indicators]
            if not keys:
                conds.append(false)
                return
            conds.append(sql.SQL("({})").format(sql.SQL(" OR ").join(
                sql.SQL("{} = ANY(%s)").format(_ident(k)) for k in keys)))
            args.extend([list(statuses)] * len(keys))

        if f.county:
            isin("county", list(f.county))
        if f.township:
            isin("township", list(f.township))
        if f.level:
            isin("level", list(f.level))
        if f.poor is not None:
            isin("poor", [f.poor])
        if f.exit_year:
            isin("exit_year", list(f.exit_year))
        if f.missing:
            any_status(f.missing, ["missing"])
        if f.missing_any:
            any_status(self.indicators, ["missing"])
        if f.met:
            any_status(f.met, ["met"])
        if f.indicator or f.status:
            any_status(f.indicator or self.indicators, f.status or STATUSES)
        if f.code:
            isin("code", list(f.code))
        if f.bbox:
            conds.append(sql.SQL("({})").format(sql.SQL(" OR ").join(
                sql.SQL("ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))")
                for _ in f.bbox)))
            args.extend(float(x) for box in f.bbox for x in box)
        if f.q:
            conds.append(sql.SQL("_search LIKE %s ESCAPE '\\'"))
            args.append(_like_pattern(search_term(f.q)))
        return sql.SQL(" AND ").join(conds), args

    def select_window(self, f: VillageFilter, window: Callable[[int], slice]
                      ) -> tuple[int, np.ndarray]:
        """The number of villages matching ``f`` and the positions of ``window(number)`` of
        them in archive order: a count and a ``LIMIT``/``OFFSET`` page, in one read-only
        snapshot."""
        from psycopg import sql

        where, args = self.where(f)
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            n = int(conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                self.table, where), args).fetchone()[0])
            sl = window(n)
            start, stop = sl.indices(n)[:2]
            if stop <= start:
                return n, np.array([], dtype=np.int64)
            rows = conn.execute(sql.SQL("SELECT _ord FROM {} WHERE {} ORDER BY _ord "
                                        "LIMIT %s OFFSET %s").format(self.table, where),
                                [*args, stop - start, start]).fetchall()
        return n, np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


class PgRunStore(RunStoreBase):
    """Runs published into PostGIS (``buque publish``), with :class:`api.store.RunStore`'s
    interface: run ids oldest first, the newest served by default."""

    def __init__(self, dsn: str, schema: str = "buque", preload: str = "newest") -> None:

        self.dsn, self.schema = dsn, _check_schema(schema)
        self.pool = Pool(dsn)
        with self.pool.connection() as conn:
            ok = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".runs',)).fetchone()[0]
            if ok is None:
                raise PgStoreError(f"no Buque runs in schema {schema!r} of "
                                   f"{_safe_dsn(dsn)}: publish one with "
                                   f"buque publish RUN --postgres DSN --schema {schema}")
        super().__init__(label=f"{schema} at {_safe_dsn(dsn)}", manifests=self._scan())
        self._preload(preload)

    def _scan(self) -> dict[str, dict[str, Any]]:
        """The published runs, oldest first (a run published again gets a new ``published_at``)."""
        from psycopg import sql

        with self.pool.connection() as conn:
            rows = conn.execute(sql.SQL(
                "SELECT run_id, manifest_text, tables, tile_layers, published_at FROM {} "
                "ORDER BY manifest->>'created', run_id").format(
                    _ident(self.schema, "runs"))).fetchall()
        self._meta = {str(r[0]): (r[2], r[3]) for r in rows}
        self._published = {str(r[0]): r[4] for r in rows}
        return {str(r[0]): json.loads(r[1]) for r in rows}

    def _version(self, rid: str) -> object:
        return self._published.get(rid)

    def _load(self, rid: str) -> ServedRun:
        tables_meta, tiles_meta = self._meta[rid]
        with self.pool.connection() as conn:
            got = {m["name"]: _read_table(conn, self.schema, m["name"], rid, m)
                   for m in tables_meta}
        layers = {n[len("layer_"):]: got[n] for n in got if n.startswith("layer_")}
        tables = RunTables(villages=got["villages"], layers=layers,
                           **{n: got[n] for n in PLAIN})
        manifest = self.manifests[rid]
        data = RunData(run_id=rid, path=Path(f"postgresql:{self.schema}") / rid, manifest=manifest,
                       tables=tables, index=VillageIndex(tables.villages),
                       project_index=ProjectIndex(tables.projects))
        vmeta = next(m for m in tables_meta if m["name"] == "villages")
        return ServedRun.of(data, tiles=PgTiles(self.pool, self.schema, rid, tiles_meta),
                            origin="postgres",
                            selector=PgVillageSelector.for_run(self.pool, self.schema, rid, vmeta))

    def close(self) -> None:
        self.pool.close()

