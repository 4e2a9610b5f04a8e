"""Querying a run: which villages, projects and summary rows match a set of filters.

Pure pandas/geopandas, no web imports: the API (``api/``) and the CLI call the same functions.
A :class:`RunData` is a run loaded once (tables, manifest, a :class:`VillageIndex`); filters are
parsed from their text form (as they arrive in a URL or on a command line) by
:meth:`VillageFilter.parse`, which raises :class:`QueryError` naming the offending parameter.

Selection is vectorised: every filter is a boolean mask over precomputed arrays (categorical
codes, status codes per indicator, an STRtree for ``bbox``); text search runs last, on the
villages the other filters kept.

Examples
--------
>>> run = load_run_data("runs/2026-11")                        # doctest: +SKIP
>>> f = VillageFilter.parse(missing="road,power", county="郑福县",
...                         indicators=run.index.indicators)   # doctest: +SKIP
>>> rows = run.index.select(f)           # positions into run.index.properties  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from shapely import STRtree

from buque.geo.archive import RunTables, hash_input, read_manifest, read_run, sha256_file
from buque.geo.lists import n_separators, split_values
from buque.geo.villages import gap_class
from buque.layers.schema import COUNT_COLUMNS, LEVELS, STATUSES

SUMMARY_BY = ("county", "township")
PRIORITIES = (1, 2, 3)
ACTIONS = ("build", "upgrade")
#: status codes in :attr:`VillageIndex.status` (0 = not assessed for that indicator)
STATUS_CODE = {"met": 1, "missing": 2, "unknown": 3}
#: the leading village properties, in output order; indicator columns follow
BASE_PROPERTIES = ("code", "name", "level", "county", "township", "village_code", "population",
                   "households", "poor", "exit_year", "ref_lon", "ref_lat")
MAX_TEXT = 200          # longest text search accepted
MAX_ITEMS = 100         # most values of a parameter that takes known values (indicators, ...)


class QueryError(ValueError):
    """A filter value that cannot be used; ``param`` names the parameter."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


# --------------------------------------------------------------------------- parsing helpers

def _given(value: str | None, param: str) -> tuple[str, ...]:
    """Items of a list parameter that only takes known values; given but empty is an error."""
    items = split_values(value)
    if value is not None and not items:
        raise QueryError(param, "no value given")
    if value is not None and n_separators(value) >= MAX_ITEMS:
        raise QueryError(param, f"at most {MAX_ITEMS} values")
    return items


def choices(value: str | None, param: str, allowed: Sequence[str]) -> tuple[str, ...]:
    """Comma-separated values that must each be one of ``allowed``."""
    items = _given(value, param)
    bad = [s for s in items if s not in allowed]
    if bad:
        raise QueryError(param, f"unknown value(s) {', '.join(map(repr, bad))}; "
                         f"expected one or more of {', '.join(allowed)}")
    return items


def _ints(value: str | None, param: str, lo: int, hi: int) -> tuple[int, ...]:
    out = []
    for s in _given(value, param):
        try:
            n = int(s)
        except ValueError:
            raise QueryError(param, f"{s!r} is not an integer") from None
        if not lo <= n <= hi:
            raise QueryError(param, f"{n} is out of range {lo}..{hi}")
        out.append(n)
    return tuple(out)


def parse_bool(value: str | bool | None, param: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("true", "1", "yes", "t", "y"):
        return True
    if s in ("false", "0", "no", "f", "n"):
        return False
    raise QueryError(param, f"{value!r} is not a boolean (true or false)")


Box = tuple[float, float, float, float]


def parse_bbox(value: str | None, param: str = "bbox") -> tuple[Box, ...]:
    """An OGC ``bbox`` (CRS84: minlon,minlat,maxlon,maxlat, or 6 numbers with heights).

    Returns one box, or two when the box crosses the antimeridian (minlon > maxlon).
    Coordinates beyond the world (|lon| > 180, |lat| > 90) are clipped to it; a minimum
    latitude above the maximum is an error.
    """
    if value is None or not str(value).strip():
        return ()
    parts = [s.strip() for s in str(value).split(",")]
    if len(parts) not in (4, 6):
        raise QueryError(param, "expected 4 numbers (minlon,minlat,maxlon,maxlat) or 6 with heights")
    try:
        nums = [float(s) for s in parts]
    except ValueError:
        raise QueryError(param, "all values must be numbers") from None
    if not all(math.isfinite(x) for x in nums):
        raise QueryError(param, "values must be finite numbers")
    x0, y0, x1, y1 = (nums[0], nums[1], nums[3], nums[4]) if len(nums) == 6 else nums
    if len(nums) == 6 and nums[2] > nums[5]:
        raise QueryError(param, "minimum height is above maximum height")
    if y0 > y1:
        raise QueryError(param, "minimum latitude is above maximum latitude")
    x0, x1 = (min(max(x, -180.0), 180.0) for x in (x0, x1))
    y0, y1 = (min(max(y, -90.0), 90.0) for y in (y0, y1))
    if x0 > x1:  # crosses the antimeridian
        return ((x0, y0, 180.0, y1), (-180.0, y0, x1, y1))
    return ((x0, y0, x1, y1),)


# --------------------------------------------------------------------------- village filter

@dataclass(frozen=True)
class VillageFilter:
    """Village filters; every given filter must hold (AND), values within one are any-of (OR).

    ``missing``/``met``: any of these indicators has that status. ``indicator`` + ``status``:
    any of the indicators has any of the statuses (``indicator`` alone: assessed for any of
    them; ``status`` alone: any indicator). ``q``: case-insensitive substring of name or code.
    ``missing_any``: the village misses at least one indicator (``missing=any``).
    """

    missing: tuple[str, ...] = ()
    missing_any: bool = False
    met: tuple[str, ...] = ()
    county: tuple[str, ...] = ()
    township: tuple[str, ...] = ()
    level: tuple[str, ...] = ()
    poor: bool | None = None
    exit_year: tuple[int, ...] = ()
    indicator: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    q: str | None = None
    code: tuple[str, ...] = ()
    bbox: tuple[Box, ...] = ()

    @classmethod
    def parse(cls, *, indicators: Sequence[str], missing: str | None = None,
              met: str | None = None, county: str | None = None, township: str | None = None,
              level: str | None = None, poor: str | bool | None = None,
              exit_year: str | int | None = None, indicator: str | None = None,
              status: str | None = None, q: str | None = None, code: str | None = None,
              bbox: str | None = None) -> VillageFilter:
        """Validate filter values given as text; indicator keys must be among ``indicators``."""
        keys = tuple(indicators)
        miss_raw = _given(missing, "missing")
        missing_any = "any" in miss_raw and "any" not in keys
        miss = tuple(k for k in miss_raw if not (missing_any and k == "any"))
        if q is not None:
            q = q.strip()
            if len(q) > MAX_TEXT:
                raise QueryError("q", f"at most {MAX_TEXT} characters")
        return cls(
            missing=choices(",".join(miss) or None, "missing", keys), missing_any=missing_any,
            met=choices(met, "met", keys),
            county=split_values(county), township=split_values(township),
            level=choices(level, "level", LEVELS), poor=parse_bool(poor, "poor"),
            exit_year=_ints(None if exit_year is None else str(exit_year), "exit_year", 1900, 2200),
            indicator=choices(indicator, "indicator", keys),
            status=choices(status, "status", STATUSES), q=q or None,
            code=split_values(code), bbox=parse_bbox(bbox))

    @property
    def is_empty(self) -> bool:
        return self == VillageFilter()


def _codes(values: pd.Series) -> tuple[np.ndarray, dict[str, int]]:
    """Integer codes (-1 = null) and the value -> code lookup of a text column."""
    cat = pd.Categorical(values.astype("object").where(values.notna(), None))
    return (np.asarray(cat.codes, dtype=np.int32),
            {str(c): i for i, c in enumerate(cat.categories)})


def indicator_keys(villages: pd.DataFrame) -> list[str]:
    """Indicator keys of a run's village table: columns ``k`` with a ``k_distance_m`` beside."""
    return [c[: -len("_distance_m")] for c in villages.columns
            if c.endswith("_distance_m") and c[: -len("_distance_m")] in villages.columns]


def village_properties(villages: pd.DataFrame, indicators: Sequence[str]) -> pd.DataFrame:
    """The properties served for each village, with clean dtypes, in a fixed column order.

    ``code``, ``name``, ``level``, ``county``, ``township``, ``village_code`` (the parent
    administrative village of a natural village), ``population``, ``households``, ``poor``,
    ``exit_year``, ``ref_lon``/``ref_lat`` (the reference point distances are measured from),
    then per indicator its status and ``<key>_distance_m``, then ``n_missing``, ``missing`` and
    ``gap_class`` (:func:`geo.villages.gap_class`).
    """
    v = villages
    n = len(v)

    def text(col: str) -> pd.Series:
        if col not in v:
            return pd.Series([None] * n, index=v.index, dtype="string")
        return v[col].astype("string")

    def integer(col: str) -> pd.Series:
        if col not in v:
            return pd.Series(pd.NA, index=v.index, dtype="Int64")
        return pd.to_numeric(v[col], errors="coerce").round().astype("Int64")

    def number(col: str) -> pd.Series:
        if col not in v:
            return pd.Series(np.nan, index=v.index, dtype="float64")
        return pd.to_numeric(v[col], errors="coerce").astype("float64")

    poor = v["poor"] if "poor" in v else pd.Series(pd.NA, index=v.index)
    if poor.dtype == object or pd.api.types.is_string_dtype(poor):
        poor = poor.map(lambda x: parse_bool(x, "poor") if isinstance(x, str) else x)
    out: dict[str, pd.Series] = {
        "code": text("code"), "name": text("name"), "level": text("level"),
        "county": text("county"), "township": text("township"),
        "village_code": text("village_code"),
        "population": integer("population"), "households": integer("households"),
        "poor": pd.array(poor.astype("object").where(poor.notna(), None), dtype="boolean"),
        "exit_year": integer("exit_year"),
        "ref_lon": number("ref_lon"), "ref_lat": number("ref_lat"),
    }
    for k in indicators:
        out[k] = text(k)
        out[f"{k}_distance_m"] = number(f"{k}_distance_m")
    status = np.column_stack([(out[k] == "missing").fillna(False).to_numpy(bool)
                              for k in indicators]) if indicators else np.zeros((n, 0), bool)
    out["n_missing"] = pd.Series(status.sum(axis=1), index=v.index, dtype="int64")
    out["missing"] = text("missing").fillna("")
    out["gap_class"] = pd.Series(gap_class(v, indicators), index=v.index)
    return pd.DataFrame(out).reset_index(drop=True)


def search_text(properties: pd.DataFrame) -> list[str]:
    """What ``q`` searches in, per village: ``"name\x1fcode"`` lower-cased (the name may be
    missing); ``properties`` as :func:`village_properties` returns them."""
    return [f"{n}\x1f{c}".lower() for n, c in zip(
        properties["name"].fillna("").astype(str), properties["code"].astype(str), strict=True)]


def search_term(q: str) -> str:
    """``q`` as it is looked for in :func:`search_text` (lower-cased, no separators)."""
    return q.lower().replace("\n", " ").replace("\x1f", " ")


class VillageSelector(Protocol):
    """What the villages route asks of a run: how many villages match, and which of them (row
    positions, ascending) fall in the window of the matches it serves.
    :class:`VillageIndex` answers in memory; the PostGIS store answers in SQL."""

    def select_window(self, f: VillageFilter, window: Callable[[int], slice]
                      ) -> tuple[int, np.ndarray]:
        """``(number matched, positions of window(number matched))``."""
        ...


class VillageIndex:
    """One run's villages with everything filtering needs, built once (vectorised).

    ``properties`` holds the served columns (see :func:`village_properties`); ``geometry`` the
    EPSG:4326 geometries in the same order; :meth:`select` returns ascending row positions.
    """

    def __init__(self, villages: gpd.GeoDataFrame) -> None:
        v = villages.reset_index(drop=True)
        self.indicators: list[str] = indicator_keys(v)
        self.properties = village_properties(v, self.indicators)
        self.geometry: np.ndarray = v.geometry.to_numpy() if len(v) else np.array([], dtype=object)
        self.tree = STRtree(self.geometry)
        self.n = len(v)
        self._county, self._county_ix = _codes(self.properties["county"])
        self._township, self._township_ix = _codes(self.properties["township"])
        self._level, self._level_ix = _codes(self.properties["level"])
        self.status: dict[str, np.ndarray] = {}
        for k in self.indicators:
            s = self.properties[k].astype("object")
            codes = np.zeros(self.n, dtype=np.int8)
            for name, c in STATUS_CODE.items():
                codes[(s == name).to_numpy(bool)] = c
            self.status[k] = codes
        p = self.properties["poor"]
        self._poor = np.where(p.isna().to_numpy(), -1, p.fillna(False).to_numpy(bool).astype(np.int8))
        self._exit_year = self.properties["exit_year"].to_numpy(dtype=float, na_value=np.nan)
        # text search: "name\x1fcode" per village, lower-cased, as one string (rows split by
        # newlines) for fast str.count/finditer, and as an Arrow array for per-row matching
        parts = search_text(self.properties)
        self._text = "\n".join(parts)
        self._starts = np.cumsum([0] + [len(x) + 1 for x in parts])[:-1]
        self._text_arrow = pa.array(parts, type=pa.large_string())
        self._pos = pd.Index(self.properties["code"].astype("object"))
        if len(self.geometry):
            b = shapely.total_bounds(self.geometry)
            self.bounds: tuple[float, ...] | None = tuple(float(x) for x in b)
        else:
            self.bounds = None

    def position(self, code: str) -> int | None:
        """Row position of a village code, or ``None``."""
        try:
            pos = self._pos.get_loc(code)
        except KeyError:
            return None
        return int(pos) if isinstance(pos, (int, np.integer)) else None

    def select(self, f: VillageFilter) -> np.ndarray:
        """Ascending row positions of the villages matching ``f``."""
        m = np.ones(self.n, dtype=bool)

        def isin(codes: np.ndarray, lookup: dict[str, int], values: Iterable[str]) -> np.ndarray:
            wanted = [lookup[x] for x in values if x in lookup]
            return np.isin(codes, wanted) if wanted else np.zeros(self.n, dtype=bool)

        if f.county:
            m &= isin(self._county, self._county_ix, f.county)
        if f.township:
            m &= isin(self._township, self._township_ix, f.township)
        if f.level:
            m &= isin(self._level, self._level_ix, f.level)
        if f.poor is not None:
            m &= self._poor == int(f.poor)
        if f.exit_year:
            m &= np.isin(self._exit_year, np.array(f.exit_year, dtype=float))
        if f.missing:
            m &= self._any_status(f.missing, (STATUS_CODE["missing"],))
        if f.missing_any:
            m &= self._any_status(self.indicators, (STATUS_CODE["missing"],))
        if f.met:
            m &= self._any_status(f.met, (STATUS_CODE["met"],))
        if f.indicator or f.status:
            keys = f.indicator or tuple(self.indicators)
            wanted = tuple(STATUS_CODE[s] for s in f.status) or tuple(STATUS_CODE.values())
            m &= self._any_status(keys, wanted)
        if f.code:
            m &= self._pos.isin(f.code)
        if f.bbox:
            hit = np.zeros(self.n, dtype=bool)
            for box in f.bbox:
                hit[self.tree.query(shapely.box(*box), predicate="intersects")] = True
            m &= hit
        idx = np.flatnonzero(m)
        if f.q and len(idx):
            idx = self._search(idx, f.q)
        return idx

    def select_window(self, f: VillageFilter, window: Callable[[int], slice]
                      ) -> tuple[int, np.ndarray]:
        """:meth:`select`, counted and cut to ``window(count)`` (see :class:`VillageSelector`)."""
        idx = self.select(f)
        return len(idx), idx[window(len(idx))]

    def _search(self, idx: np.ndarray, q: str) -> np.ndarray:
        """Rows of ``idx`` whose name or code contains ``q`` (case-insensitive)."""
        q = search_term(q)
        # few candidates, or a pattern found nearly everywhere: match the candidate rows
        if len(idx) < self.n // 4 or self._text.count(q) > 20_000:
            hit = pc.match_substring(self._text_arrow.take(pa.array(idx)), q)
            return idx[hit.to_numpy(zero_copy_only=False).astype(bool)]
        pos = np.fromiter((m.start() for m in re.finditer(re.escape(q), self._text)),
                          dtype=np.int64)
        rows = np.unique(np.searchsorted(self._starts, pos, side="right") - 1)
        return np.intersect1d(idx, rows, assume_unique=True)

    def _any_status(self, keys: Iterable[str], codes: tuple[int, ...]) -> np.ndarray:
        m = np.zeros(self.n, dtype=bool)
        for k in keys:
            if k in self.status:
                m |= np.isin(self.status[k], codes)
        return m


# --------------------------------------------------------------------------- projects

PROJECT_INT = ("rank", "priority", "exit_year", "population", "households")


def normalise_projects(projects: pd.DataFrame) -> pd.DataFrame:
    """The remedy list with stable dtypes (``poor`` boolean, counts nullable integers)."""
    p = projects.copy()
    for c in PROJECT_INT:
        if c in p:
            p[c] = pd.to_numeric(p[c], errors="coerce").round().astype("Int64")
    if "poor" in p:
        poor = p["poor"].astype("object")
        poor = poor.map(lambda x: parse_bool(x, "poor") if isinstance(x, str) else x)
        p["poor"] = pd.array(poor.where(pd.notna(poor), None), dtype="boolean")
    for c in ("village_code", "name", "level", "county", "township", "indicator", "action",
              "item", "unit", "quantity_basis", "deadline"):
        if c in p:
            p[c] = p[c].astype("string")
    return p.reset_index(drop=True)


@dataclass(frozen=True)
class ProjectFilter:
    county: tuple[str, ...] = ()
    township: tuple[str, ...] = ()
    indicator: tuple[str, ...] = ()
    priority: tuple[int, ...] = ()
    level: tuple[str, ...] = ()
    action: tuple[str, ...] = ()
    village: tuple[str, ...] = ()

    @classmethod
    def parse(cls, *, indicators: Sequence[str], county: str | None = None,
              township: str | None = None, indicator: str | None = None,
              priority: str | int | None = None, level: str | None = None,
              action: str | None = None, village: str | None = None) -> ProjectFilter:
        return cls(county=split_values(county), township=split_values(township),
                   indicator=choices(indicator, "indicator", tuple(indicators)),
                   priority=_ints(None if priority is None else str(priority), "priority", 1, 3),
                   level=choices(level, "level", LEVELS), action=choices(action, "action", ACTIONS),
                   village=split_values(village))


PROJECT_KEYS = ("county", "township", "indicator", "level", "action", "unit", "village_code")


class ProjectIndex:
    """The remedy list with precomputed codes, so that selecting and totalling rows takes
    numpy masks and ``np.bincount`` instead of pandas operations per request.

    ``table`` is the normalised list (see :func:`normalise_projects`) in rank order.
    """

    def __init__(self, projects: pd.DataFrame) -> None:
        self.table = normalise_projects(projects)
        self.n = len(self.table)
        self._codes: dict[str, np.ndarray] = {}
        self._lookup: dict[str, dict[str, int]] = {}
        self._labels: dict[str, np.ndarray] = {}
        for col in PROJECT_KEYS:
            values = self.table[col] if col in self.table else pd.Series([None] * self.n,
                                                                          dtype="string")
            codes, lookup = _codes(values)
            self._codes[col], self._lookup[col] = codes, lookup
            labels = np.empty(len(lookup) + 1, dtype=object)
            labels[0] = None                                # code -1 (null) -> label None
            for label, c in lookup.items():
                labels[c + 1] = label
            self._labels[col] = labels

        def num(col: str) -> np.ndarray:
            if col not in self.table:
                return np.full(self.n, np.nan)
            return pd.to_numeric(self.table[col], errors="coerce").to_numpy(float, na_value=np.nan)

        self._priority = num("priority")
        self._quantity = np.nan_to_num(num("quantity"))
        self._cost = np.nan_to_num(num("cost"))

    def select(self, f: ProjectFilter) -> np.ndarray:
        """Ascending row positions (rank order) of the rows matching ``f``."""
        m = np.ones(self.n, dtype=bool)
        for col, values in (("county", f.county), ("township", f.township),
                            ("indicator", f.indicator), ("level", f.level),
                            ("action", f.action), ("village_code", f.village)):
            if values:
                wanted = [self._lookup[col][v] for v in values if v in self._lookup[col]]
                m &= np.isin(self._codes[col], wanted) if wanted else False
        if f.priority:
            m &= np.isin(self._priority, np.array(f.priority, dtype=float))
        return np.flatnonzero(m)

    def group(self, idx: np.ndarray, keys: Sequence[str], quantity: bool = True) -> pd.DataFrame:
        """Per group of ``keys`` among rows ``idx`` (first-seen order): rows, distinct villages,
        quantity (optional) and cost."""
        keys = list(keys)
        cols = [*keys, "rows", "villages", *(["quantity"] if quantity else []), "cost"]
        if len(idx) == 0:
            return pd.DataFrame({c: [] for c in cols})
        combo = np.zeros(len(idx), dtype=np.int64)      # mixed-radix key of the code tuple
        for k in keys:
            combo = combo * len(self._labels[k]) + (self._codes[k][idx] + 1)
        first, inv = np.unique(combo, return_index=True, return_inverse=True)[1:]
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        gid = rank[inv.ravel()]
        n = len(order)
        rep = idx[first[order]]                           # one row per group, first seen
        out: dict[str, Any] = {k: self._labels[k][self._codes[k][rep] + 1] for k in keys}
        out["rows"] = np.bincount(gid, minlength=n).astype("int64")
        vc = self._codes["village_code"][idx].astype(np.int64) + 1
        width = int(vc.max()) + 1
        pairs = np.unique(gid.astype(np.int64) * width + vc)
        out["villages"] = np.bincount(pairs // width, minlength=n).astype("int64")
        if quantity:
            out["quantity"] = np.round(np.bincount(gid, self._quantity[idx], minlength=n), 3)
        out["cost"] = np.round(np.bincount(gid, self._cost[idx], minlength=n), 2)
        return pd.DataFrame(out, columns=cols)

    def totals(self, idx: np.ndarray) -> dict[str, pd.DataFrame]:
        """``by_indicator``: rows, villages, quantity and cost per (indicator, action, unit);
        ``by_county``: the same per (county, indicator, unit), by county name;
        ``by_county_total``: rows, villages and cost per county; ``total``: one row."""
        by_county = self.group(idx, ["county", "indicator", "unit"])
        county_total = self.group(idx, ["county"], quantity=False)
        if len(idx):
            by_county = by_county.sort_values("county", kind="stable", na_position="last")
            county_total = county_total.sort_values("county", kind="stable", na_position="last")
        villages = len(np.unique(self._codes["village_code"][idx])) if len(idx) else 0
        total = pd.DataFrame({"rows": [len(idx)], "villages": [villages],
                              "cost": [round(float(self._cost[idx].sum()), 2)]})
        return {"by_indicator": self.group(idx, ["indicator", "action", "unit"]),
                "by_county": by_county.reset_index(drop=True),
                "by_county_total": county_total.reset_index(drop=True), "total": total}


def filter_projects(projects: pd.DataFrame, f: ProjectFilter) -> pd.DataFrame:
    """Rows of the remedy list matching every given filter, in rank order."""
    ix = ProjectIndex(projects)
    return ix.table.iloc[ix.select(f)]


def project_totals(projects: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Totals of a (filtered) remedy list (see :meth:`ProjectIndex.totals`)."""
    ix = ProjectIndex(projects)
    return ix.totals(np.arange(ix.n))


# --------------------------------------------------------------------------- summary

SUMMARY_NUMS = (*COUNT_COLUMNS, "shortfall")


def summary_rows(summary: pd.DataFrame, by: str = "county", *, county: Sequence[str] = (),
                 township: Sequence[str] = (), indicator: Sequence[str] = ()) -> pd.DataFrame:
    """Rows of a run's summary at one level (``by``), filtered by place and indicator.

    Each row: assessed, met, missing, unknown, rate (met / assessed), target, shortfall
    (villages still to fix to reach the target), meets_target and deadline.
    """
    if by not in SUMMARY_BY:
        raise QueryError("by", f"expected one of {', '.join(SUMMARY_BY)}")
    s = summary
    if "scope" in s:
        m = np.array(s["scope"] == ("county" if by == "county" else "township"), dtype=bool)
    else:  # runs written before the scope column: county rows have an empty township
        town = s["township"].fillna("").astype(str)
        m = np.array((town == "") if by == "county" else (town != ""), dtype=bool)
    for col, values in (("county", county), ("township", township), ("indicator", indicator)):
        if values:
            m &= s[col].isin(list(values)).fillna(False).to_numpy(bool)
    out = s.loc[m].drop(columns=["scope"], errors="ignore").copy()
    if by == "county":
        out = out.drop(columns=["township"])
    return out.reset_index(drop=True)


def summary_total(rows: pd.DataFrame, order: Sequence[str] = ()) -> pd.DataFrame:
    """Totals per indicator over summary rows that partition the villages (one level).

    ``shortfall`` is recomputed from the summed counts and the target (not summed), so it is
    the number of villages still to fix for the whole selection to reach the target.
    """
    if rows.empty:
        return pd.DataFrame(columns=["indicator", *SUMMARY_NUMS[:4], "rate", "target",
                                     "shortfall", "meets_target", "deadline"])
    g = rows.groupby("indicator", sort=False)
    t = g[list(SUMMARY_NUMS[:4])].sum()
    t["target"] = g["target"].first()
    t["deadline"] = g["deadline"].first()
    t = t.reset_index()
    t["rate"] = np.round(t["met"] / t["assessed"].where(t["assessed"] > 0), 4)
    need = np.ceil(t["target"] * t["assessed"] - 1e-9).astype(int)
    t["shortfall"] = np.maximum(need - t["met"], 0).astype("int64")
    t["meets_target"] = t["shortfall"] == 0
    if order:
        rank = {k: i for i, k in enumerate(order)}
        t = t.sort_values("indicator", key=lambda s: s.map(rank), kind="stable")
    return t[["indicator", *COUNT_COLUMNS, "rate", "target",
              "shortfall", "meets_target", "deadline"]].reset_index(drop=True)


# --------------------------------------------------------------------------- runs

@dataclass
class RunData:
    """A run loaded once for querying: its tables, manifest and village index."""

    run_id: str
    path: Path
    manifest: dict[str, Any]
    tables: RunTables
    index: VillageIndex
    project_index: ProjectIndex
    _inputs: dict[str, gpd.GeoDataFrame] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def indicators(self) -> list[str]:
        return self.index.indicators

    @property
    def projects(self) -> pd.DataFrame:
        return self.project_index.table

    @property
    def gaps(self) -> pd.DataFrame:
        return self.tables.gaps

    @property
    def summary(self) -> pd.DataFrame:
        return self.tables.summary

    def input_layers(self) -> list[str]:
        """Kinds of the run's feature layers (roads, power, ...): those archived with the run,
        else (older runs) the non-village inputs named in its manifest."""
        if self.tables.layers:
            return list(self.tables.layers)
        return input_layer_kinds(self.manifest)

    def input_layer(self, kind: str) -> gpd.GeoDataFrame:
        """One of the run's feature layers: the copy archived with the run, or for older runs
        re-read from its source once and cached.

        Raises :class:`InputChanged` when a source to re-read no longer has the hash recorded
        in the manifest (the layer served must be the layer the run assessed).
        """
        if kind in self.tables.layers:
            return self.tables.layers[kind]
        with self._lock:
            if kind not in self._inputs:
                self._inputs[kind] = load_input_layer(self.manifest, kind)
            return self._inputs[kind]


def load_run_data(path: str | Path) -> RunData:
    """Read a run directory and build its indexes."""
    path = Path(path)
    manifest = read_manifest(path)
    tables = read_run(path)
    return RunData(run_id=str(manifest.get("run_id") or path.name), path=path, manifest=manifest,
                   tables=tables, index=VillageIndex(tables.villages),
                   project_index=ProjectIndex(tables.projects))


class InputChanged(RuntimeError):
    """A run's input file is gone or differs from the one the run read."""


VILLAGE_INPUTS = ("villages", "natural_villages", "official")


def input_layer_kinds(manifest: dict[str, Any]) -> list[str]:
    return [str(i["layer"]) for i in manifest.get("inputs", [])
            if i.get("layer") not in VILLAGE_INPUTS]


def load_input_layer(manifest: dict[str, Any], kind: str) -> gpd.GeoDataFrame:
    """Re-read a run's input layer through the same readers the run used (canonical fields).

    The project file and the source are taken from the manifest (never from a request); the
    source's SHA-256 must still match the manifest's.
    """
    from buque.layers.errors import BuqueInputError, Report
    from buque.layers.osm import derive_layers
    from buque.layers.project import load_project
    from buque.layers.readers import FILE, ROW, read_layer

    entry = next((i for i in manifest.get("inputs", []) if i.get("layer") == kind), None)
    if entry is None or kind in VILLAGE_INPUTS:
        raise KeyError(kind)
    try:
        project = load_project(manifest["project"]["path"])
        if entry.get("source") == "osm":
            if project.osm is None:
                raise InputChanged(f"{kind}: the project no longer names an OSM extract")
            if sha256_file(project.osm.path) != entry.get("sha256"):
                raise InputChanged(f"{kind}: {project.osm.path.name} changed since the run")
            gdf = derive_layers(project.osm, [kind], Report())[kind]
        else:
            spec = project.layers.get(kind)
            if spec is None:
                raise InputChanged(f"{kind}: the project no longer names this layer")
            if hash_input(spec.path) != entry.get("sha256"):
                raise InputChanged(f"{kind}: {spec.path.name} changed since the run")
            gdf = read_layer(spec, project.crs, Report())
    except (OSError, BuqueInputError, KeyError) as e:
        raise InputChanged(f"{kind}: the run's input can no longer be read ({e})") from e
    gdf = gdf.drop(columns=[c for c in (ROW, FILE) if c in gdf]).reset_index(drop=True)
    return gdf
