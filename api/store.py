"""The runs being served, loaded once: manifests at start-up, tables on first use (or preloaded).

Run ids come from the manifests; a request names a run only by id, which is looked up in this
registry, so no request text ever becomes a file-system path.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from shapely import STRtree

from api.encoders import FeatureTable, RowTable
from geo.archive import list_runs, read_manifest
from geo.diff import diff_gaps
from geo.query import RunData, load_run_data

log = logging.getLogger("buque.api")
DIFF_CACHE = 8


class UnknownRun(KeyError):
    pass


@dataclass
class ServedRun:
    """A loaded run and its encoders."""

    data: RunData
    villages: FeatureTable
    projects: RowTable
    _inputs: dict[str, tuple[FeatureTable, STRtree]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def run_id(self) -> str:
        return self.data.run_id

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


class RunStore:
    """Runs of a folder (or one run), oldest first; the newest is served by default."""

    def __init__(self, data: Path, preload: str = "newest") -> None:
        data = Path(data)
        if not data.exists():
            raise FileNotFoundError(f"{data}: no such run or folder")
        self.data = data
        self.paths: OrderedDict[str, Path] = OrderedDict()
        self.manifests: dict[str, dict[str, Any]] = {}
        for p in list_runs(data):
            m = read_manifest(p)
            rid = str(m.get("run_id") or p.name)
            if rid in self.paths:
                log.warning("%s: run id %s already served from %s; skipped", p, rid, self.paths[rid])
                continue
            self.paths[rid] = p
            self.manifests[rid] = m
        self._runs: dict[str, ServedRun] = {}
        self._locks = {rid: threading.Lock() for rid in self.paths}
        self._diffs: OrderedDict[tuple[str, str], pd.DataFrame] = OrderedDict()
        self._diff_lock = threading.Lock()
        for rid in (list(self.paths) if preload == "all" else list(self.paths)[-1:]):
            self.get(rid)

    @property
    def ids(self) -> list[str]:
        return list(self.paths)

    @property
    def newest(self) -> str | None:
        return next(reversed(self.paths), None)

    def resolve(self, run_id: str | None) -> str:
        if run_id == "latest" and "latest" not in self.paths:
            run_id = None
        if run_id is None:
            if self.newest is None:
                raise UnknownRun(f"{self.data.name or self.data}: no runs to serve")
            return self.newest
        if run_id not in self.paths:
            raise UnknownRun(run_id)
        return run_id

    def get(self, run_id: str | None = None) -> ServedRun:
        rid = self.resolve(run_id)
        run = self._runs.get(rid)
        if run is not None:
            return run
        with self._locks[rid]:
            if rid not in self._runs:
                data = load_run_data(self.paths[rid])
                data.run_id = rid
                self._runs[rid] = ServedRun(
                    data=data, projects=RowTable(data.projects),
                    villages=FeatureTable(data.index.properties, data.index.geometry,
                                          id_column="code"))
                log.info("loaded run %s (%d villages)", rid, data.index.n)
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
