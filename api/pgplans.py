"""Plans in PostGIS: ``buque publish PLAN`` loads a plan archive beside the runs, and
:class:`PgPlanStore` serves them (``/plans`` ... when the API serves ``--postgres``).

Tables in the store's schema, keyed by ``plan_id`` with ``_ord`` (the row's position in the
archive):

- ``plans``: ``plan_id`` (primary key), ``name`` (unique: the name ``/plans/{name}`` answers
  to, by default the plan folder's), ``run_id``, ``meta`` (plan.json as jsonb, and verbatim as
  ``meta_text``), ``published_at``, ``tables`` (per table: columns with their pandas dtypes);
- ``plan_works`` (every column of works.parquet, ``geom`` EPSG:4326, GiST-indexed),
  ``plan_work_villages`` and ``plan_phases``.

Publishing a plan again deletes and reloads its rows in one transaction. Served plans are read
back (``COPY ... TO STDOUT``) into the same :class:`geo.plan.make.Plan` the archive gives, once
per publication, so every plan endpoint answers as it does from files.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely

from buque.api.pgstore import (
    NULL,
    PgStoreError,
    Pool,
    _check_schema,
    _hex_wkb,
    _ident,
    _restore,
    connect,
    ensure_postgis,
    sql_type,
)
from buque.geo.plan.archive import read_plan
from buque.geo.plan.make import Plan

TABLES = {"works": "plan_works", "work_villages": "plan_work_villages", "phases": "plan_phases"}


def _columns(df: pd.DataFrame) -> list[list[str]]:
    geom = df.geometry.name if isinstance(df, gpd.GeoDataFrame) else None
    return [[str(c), "geometry" if c == geom else str(df[c].dtype)] for c in df.columns]


def _ddl(conn, schema: str, plan: Plan) -> None:  # noqa: ANN001
    from psycopg import sql

    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(_ident(schema)))
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (plan_id text PRIMARY KEY, name text NOT NULL UNIQUE, "
        "run_id text, meta jsonb NOT NULL, meta_text text NOT NULL, published_at timestamptz "
        "NOT NULL DEFAULT now(), tables jsonb NOT NULL)").format(_ident(schema, "plans")))
    for attr, table in TABLES.items():
        df = getattr(plan, attr)
        t = _ident(schema, table)
        base = "plan_id text NOT NULL, _ord bigint NOT NULL"
        if attr == "works":
            base += ", geom geometry(Geometry, 4326)"
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (" + base + ")").format(t))
        have = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s", (schema, table)).fetchall())
        for col, dtype in _columns(df):
            if dtype == "geometry":
                continue
            want = sql_type(pd.api.types.pandas_dtype(dtype))
            if col not in have:
                conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} " + want).format(
                    t, _ident(col)))
            elif have[col] != want:
                raise PgStoreError(f"{table}.{col}: the store has it as {have[col]}, this plan "
                                   f"as {want}; publish into another --schema")
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (plan_id, _ord)").format(
            _ident(f"{table}_plan_ord_idx"), t))
    conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gist (geom)").format(
        _ident("plan_works_geom_gist"), _ident(schema, "plan_works")))


def _copy(conn, schema: str, table: str, df: pd.DataFrame, plan_id: str) -> int:  # noqa: ANN001
    from psycopg import sql

    out = pd.DataFrame({"plan_id": [plan_id] * len(df), "_ord": range(len(df))})
    geom = df.geometry.name if isinstance(df, gpd.GeoDataFrame) else None
    for c in df.columns:
        out["geom" if c == geom else c] = (_hex_wkb(df.geometry.to_numpy(), 4326) if c == geom
                                           else df[c].reset_index(drop=True))
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, NULL {})").format(
        _ident(schema, table), sql.SQL(", ").join(_ident(c) for c in out.columns),
        sql.Literal(NULL))
    with conn.cursor() as cur, cur.copy(stmt) as cp:
        if len(out):
            cp.write(out.to_csv(index=False, header=False, na_rep=NULL))
    return len(out)


def publish_plan(path: str | Path, dsn: str, schema: str = "buque",
                 name: str | None = None) -> dict[str, Any]:
    """Load a plan archive into PostGIS under ``name`` (default: its folder's name); an earlier
    copy of the same plan id or name is replaced in one transaction."""
    import psycopg
    from psycopg import sql

    path = Path(path)
    _check_schema(schema)
    conn = connect(dsn)
    try:
        version = ensure_postgis(conn)
        conn.commit()
        plan = read_plan(path)
        plan_id = str(plan.meta["plan_id"])
        name = name or path.resolve().name
        counts: dict[str, int] = {}
        with conn.transaction():
            _ddl(conn, schema, plan)
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{schema}/plans",))
            old = [r[0] for r in conn.execute(sql.SQL(
                "SELECT plan_id FROM {} WHERE plan_id = %s OR name = %s").format(
                    _ident(schema, "plans")), (plan_id, name)).fetchall()]
            for table in (*TABLES.values(), "plans"):
                conn.execute(sql.SQL("DELETE FROM {} WHERE plan_id = ANY(%s)").format(
                    _ident(schema, table)), (old,))
            meta_tables = []
            for attr, table in TABLES.items():
                df = getattr(plan, attr)
                counts[table] = _copy(conn, schema, table, df, plan_id)
                meta_tables.append({"name": table, "attr": attr, "columns": _columns(df)})
            text = json.dumps(plan.meta, ensure_ascii=False)
            conn.execute(sql.SQL(
                "INSERT INTO {} (plan_id, name, run_id, meta, meta_text, tables) "
                "VALUES (%s, %s, %s, %s::jsonb, %s, %s::jsonb)").format(_ident(schema, "plans")),
                (plan_id, name, plan.meta.get("run", {}).get("run_id"), text, text,
                 json.dumps(meta_tables)))
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise PgStoreError(f"publishing plan {path} failed (the store is unchanged): {first}"
                           ) from None
    finally:
        conn.close()
    return {"plan_id": plan_id, "name": name, "schema": schema, "postgis": version,
            "rows": counts}


def _read(conn, schema: str, table: str, plan_id: str, columns: list[list[str]]  # noqa: ANN001
          ) -> pd.DataFrame:
    """One plan table back in its archive's dtypes (the geometry from hex EWKB)."""
    from psycopg import sql

    sel = [sql.SQL("encode(ST_AsEWKB(geom), 'hex')") if d == "geometry" else _ident(c)
           for c, d in columns]
    stmt = sql.SQL("COPY (SELECT {} FROM {} WHERE plan_id = {} ORDER BY _ord) TO STDOUT "
                   "(FORMAT csv, HEADER false, NULL {})").format(
        sql.SQL(", ").join(sel), _ident(schema, table), sql.Literal(plan_id), sql.Literal(NULL))
    buf = io.BytesIO()
    with conn.cursor() as cur, cur.copy(stmt) as cp:
        for chunk in cp:
            buf.write(chunk)
    buf.seek(0)
    names = [c for c, _ in columns]
    raw = (pd.read_csv(buf, header=None, names=names, dtype=str, keep_default_na=False,
                       na_values=[NULL]) if buf.getbuffer().nbytes else
           pd.DataFrame({c: pd.Series(dtype=str) for c in names}))
    out = {}
    geom = None
    for c, d in columns:
        if d == "geometry":
            geom = c
            out[c] = shapely.from_wkb(raw[c].where(raw[c].notna(), None).to_numpy())
        else:
            out[c] = _restore(raw[c], d)
    df = pd.DataFrame(out)
    return gpd.GeoDataFrame(df, geometry=geom, crs="EPSG:4326") if geom else df


class PgPlanStore:
    """The plans published into a schema: names and their plan.json, each plan read back once
    per publication."""

    def __init__(self, dsn: str, schema: str = "buque", pool: Pool | None = None) -> None:
        self.schema = _check_schema(schema)
        self.pool = pool or Pool(dsn, size=2)
        self._cache: dict[tuple[str, Any], Plan] = {}
        self._lock = threading.Lock()

    def _rows(self) -> list[tuple]:
        from psycopg import sql

        with self.pool.connection() as conn:
            if conn.execute("SELECT to_regclass(%s)", (f'"{self.schema}".plans',)
                            ).fetchone()[0] is None:
                return []
            return conn.execute(sql.SQL(
                "SELECT name, plan_id, published_at, tables FROM {} ORDER BY name").format(
                    _ident(self.schema, "plans"))).fetchall()

    def names(self) -> list[str]:
        return [str(r[0]) for r in self._rows()]

    def get(self, key: str) -> Plan | None:
        """A plan by name or plan id (None when not published)."""
        from psycopg import sql

        row = next((r for r in self._rows() if key in (r[0], r[1])), None)
        if row is None:
            return None
        name, plan_id, published, tables = row
        with self._lock:
            hit = self._cache.get((plan_id, published))
            if hit is not None:
                return hit
            with self.pool.connection() as conn:
                meta = json.loads(conn.execute(sql.SQL(
                    "SELECT meta_text FROM {} WHERE plan_id = %s").format(
                        _ident(self.schema, "plans")), (plan_id,)).fetchone()[0])
                got = {t["attr"]: _read(conn, self.schema, t["name"], plan_id, t["columns"])
                       for t in tables}
            plan = Plan(meta=meta, **got)
            self._cache = {k: v for k, v in self._cache.items() if k[0] != plan_id}
            self._cache[(plan_id, published)] = plan
            return plan
