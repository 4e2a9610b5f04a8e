"""The runs being served, loaded once: manifests at start-up, tables on first use (or preloaded).

Run ids come from the manifests; a request names a run only by id, which is looked up in this
registry, so no request text ever becomes a file-system path. The registry looks for new,
replaced and removed runs at most every :data:`REFRESH_S` seconds (a run written or published
while the server runs is served without a restart).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from shapely import STRtree

from buque.api.encoders import FeatureTable, RowTable
from buque.geo.archive import list_runs, read_manifest
from buque.geo.diff import diff_gaps
from buque.geo.query import RunData, VillageSelector, load_run_data

log = logging.getLogger("buque.api")
DIFF_CACHE = 8
REFRESH_S = 5.0  # how often requests may trigger a look for new or removed runs


class UnknownRun(KeyError):
    pass


@dataclass
class ServedRun:
    """A loaded run and its encoders.

    ``tiles`` is a tile source that renders the run's gap-map tiles itself (the PostGIS store's
    :class:`api.pgstore.PgTiles`); ``None`` means in-process tiles from :mod:`geo.tiles`.
    ``origin`` says where the run was loaded from (``files`` or ``postgres``). ``selector``
    picks the villages of a request (:class:`geo.query.VillageSelector`; the PostGIS store's
    selects in SQL); ``None`` means the in-memory :class:`geo.query.VillageIndex`.
    """

    data: RunData
    villages: FeatureTable
    projects: RowTable
    tiles: Any = None
    origin: str = "files"
    selector: VillageSelector | None = None
    _inputs: dict[str, tuple[FeatureTable, STRtree]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, data: RunData, **kw: Any) -> ServedRun:
        """A run with the encoders of its villages and remedy list."""
        return cls(data=data, projects=RowTable(data.projects),
                   villages=FeatureTable(data.index.properties, data.index.geometry,
                                         id_column="code"), **kw)

    @property
    def run_id(self) -> str:
        return self.data.run_id

    @property
    def village_selector(self) -> VillageSelector:
        """What selects and counts the villages of a request."""
        return self.selector if self.selector is not None else self.data.index

    def input_layer(self, kind: str) -> tuple[FeatureTable, STRtree]:
        """An input layer's encoder and spatial index, built on first use."""
        with self._lock:
            if kind not in self._inputs:
                gdf = self.data.input_layer(kind)
                props = gdf.drop(columns=[gdf.geometry.name])
                geoms = gdf.geometry.to_numpy()
                self._inputs[kind] = (FeatureTable(props, geoms, id_column="id"), STRtree(geoms))
            return self._inputs[kind]

    def input_table(self, kind: str) -> FeatureTable:
        return self.input_layer(kind)[0]


class RunStoreBase:
    """Runs by id, oldest first; the newest is served by default. Subclasses load one run
    (:meth:`_load`): :class:`RunStore` from run archives, :class:`api.pgstore.PgRunStore` from
    PostGIS. Loaded runs are kept; diffs between two runs are cached."""

    def __init__(self, label: str, manifests: dict[str, dict[str, Any]]) -> None:
        self.label = label
        self.manifests = manifests
        #: other names of a run (its folder name) -> run id; set by :meth:`_scan`
        self.names: dict[str, str] = getattr(self, "names", {})
        self._runs: dict[str, ServedRun] = {}
        self._locks = {rid: threading.Lock() for rid in manifests}
        self._diffs: OrderedDict[tuple[str, str], pd.DataFrame] = OrderedDict()
        self._diff_lock = threading.Lock()
        self._scan_lock = threading.Lock()
        self._scanned = time.monotonic()
        self._versions = {rid: self._version(rid) for rid in manifests}

    def _scan(self) -> dict[str, dict[str, Any]]:
        """The runs there are now, oldest first (subclasses look again at their source)."""
        return self.manifests

    def _version(self, rid: str) -> object:
        """What changes when a run id is written again (a re-run into the same place)."""
        return None

    def refresh(self, every: float | None = None) -> None:
        """Look for new, replaced and removed runs, unless the last look is less than ``every``
        seconds old (default :data:`REFRESH_S`)."""
        every = REFRESH_S if every is None else every
        if time.monotonic() - self._scanned < every:
            return
        with self._scan_lock:
            if time.monotonic() - self._scanned < every:
                return
            self._scanned = time.monotonic()
            try:
                found = self._scan()
                versions = {rid: self._version(rid) for rid in found}
            except Exception as e:  # noqa: BLE001 - a failed look keeps serving what was there
                log.warning("%s: could not look for new runs: %s", self.label, e)
                return
            changed = [rid for rid in found if rid in self._versions
                       and versions[rid] != self._versions[rid]]
            gone = [rid for rid in self.manifests if rid not in found]
            for rid in [*gone, *changed]:  # loaded copies are dropped, reloaded on next use
                self._runs.pop(rid, None)
            if gone or changed:
                with self._diff_lock:
                    self._diffs.clear()
            for rid in found:
                self._locks.setdefault(rid, threading.Lock())
            new = [rid for rid in found if rid not in self.manifests]
            self._versions = versions
            self.manifests = found
            if new or gone or changed:
                log.info("%s: runs added %s, removed %s, replaced %s", self.label, new, gone,
                         changed)

    def _preload(self, preload: str) -> None:
        for rid in (self.ids if preload == "all" else self.ids[-1:]):
            self.get(rid)

    def _load(self, rid: str) -> ServedRun:
        raise NotImplementedError

    @property
    def ids(self) -> list[str]:
        return list(self.manifests)

    @property
    def newest(self) -> str | None:
        return next(reversed(self.manifests), None)

    def folder(self, rid: str) -> str | None:
        """The name a run is also known by (its folder), if any."""
        return next((n for n, r in self.names.items() if r == rid), None)

    def resolve(self, run_id: str | None) -> str:
        """The run id of ``run_id``: a run id, a run's folder name, ``latest`` or None (the
        newest)."""
        unknown = (run_id not in (None, "latest") and run_id not in self.manifests
                   and run_id not in self.names)
        # an unknown id looks again sooner: at most once a second
        self.refresh(every=min(1.0, REFRESH_S) if unknown else None)
        if run_id == "latest" and "latest" not in self.manifests:
            run_id = None
        if run_id is None:
            if self.newest is None:
                raise UnknownRun(f"{self.label}: no runs to serve")
            return self.newest
        if run_id not in self.manifests:
            if run_id in self.names:
                return self.names[run_id]
            raise UnknownRun(run_id)
        return run_id

    def get(self, run_id: str | None = None) -> ServedRun:
        rid = self.resolve(run_id)
        run = self._runs.get(rid)
        if run is not None:
            return run
        with self._locks[rid]:
            if rid not in self._runs:
                self._runs[rid] = self._load(rid)
                log.info("loaded run %s (%d villages)", rid, self._runs[rid].data.index.n)
            return self._runs[rid]

    def diff(self, a: str, b: str) -> pd.DataFrame:
        a, b = self.resolve(a), self.resolve(b)
        with self._diff_lock:
            if (a, b) in self._diffs:
                self._diffs.move_to_end((a, b))
                return self._diffs[(a, b)]
        d = diff_gaps(self.get(a).data.gaps, self.get(b).data.gaps)
        with self._diff_lock:
            self._diffs[(a, b)] = d
            while len(self._diffs) > DIFF_CACHE:
                self._diffs.popitem(last=False)
        return d

    def close(self) -> None:
        """Release what the store holds open (database connections)."""


class RunStore(RunStoreBase):
    """Runs of a folder (or one run) of run archives."""

    def __init__(self, data: Path, preload: str = "newest") -> None:
        data = Path(data)
        if not data.exists():
            raise FileNotFoundError(f"{data}: no such run or folder")
        self.data = data
        self.paths: OrderedDict[str, Path] = OrderedDict()
        super().__init__(label=data.name or str(data), manifests=self._scan())
        self._preload(preload)

    def _scan(self) -> dict[str, dict[str, Any]]:
        paths: OrderedDict[str, Path] = OrderedDict()
        manifests: dict[str, dict[str, Any]] = {}
        names: dict[str, str] = {}
        for p in list_runs(self.data):
            m = read_manifest(p)
            rid = str(m.get("run_id") or p.name)
            if rid in paths:
                log.warning("%s: run id %s already served from %s; skipped", p, rid, paths[rid])
                continue
            paths[rid] = p
            manifests[rid] = m
            names[p.name] = rid
        # a folder named like another run's id names that run, not its own
        self.names = {n: r for n, r in names.items() if n not in manifests}
        self.paths = paths
        return manifests

    def _version(self, rid: str) -> object:
        p = self.paths.get(rid)
        return (str(p), (p / "manifest.json").stat().st_mtime_ns) if p is not None else None

    def _load(self, rid: str) -> ServedRun:
        data = load_run_data(self.paths[rid])
        data.run_id = rid
        return ServedRun.of(data)
