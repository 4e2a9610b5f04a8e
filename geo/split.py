"""A local run on two processes: a forked child reads and assesses part of the feature layers.

Most of a run's work holds Python's global interpreter lock (decoding layers into GEOS
geometries and data frames, the engine's glue between numpy, GEOS and k-d tree calls), so
threads add little on top of what :mod:`geo.gaps` already overlaps. A second *process* has its
own lock. :func:`open_split` forks one before any layer is read, when the process is still
small (copy-on-write: nothing is copied), and gives it the heavier half of the feature layers
(greedy by file size; the parent's share counts the village layers). Then:

- the child reads its layers (the same :func:`geo.inputs.load_layers`) while the parent reads
  and prepares the villages and reads the other layers;
- the parent sends what the engine needs of the villages (reference points, which villages
  each indicator applies to, the polygons) with this run's indicators;
- both answer their indicators with the same engine (:func:`geo.gaps.answer_spatial`); the child
  sends back its :class:`geo.gaps.Answer` s (the evidence ids reduced to those referenced), its
  layers' input records and report, and then writes its layers' archived copies into a staging
  folder beside the run, which :func:`geo.archive.write_run` moves into the archive.

The archive is the same file for file as one process writes: the answers come from the same
code on the same data, the input records and rejected/warning rows are put back in the
project's layer order (``tests/test_split.py`` compares the two archives table by table). A
layer group that rules read together (a network distance along ``roads``) stays in one process;
layers derived from an OSM extract stay in the parent. An error in the child (a bad file) is
raised in the parent with the child's traceback as a note; with bad files on both sides, the
one earliest in the project is raised, as one process would. The child is stopped when the
parent fails, and ends with it when the parent is killed (:func:`die_with_parent`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from buque.geo.archive import sidecars, write_geoparquet
from buque.geo.gaps import Answer, answer_spatial, answers_of, evidence_classes
from buque.geo.inputs import archived_layers
from buque.geo.metric import bands_of
from buque.geo.rules import rule_of
from buque.geo.rules.band import prebuild
from buque.geo.rules.base import Result
from buque.layers.errors import BuqueInputError, Report
from buque.layers.indicator import Indicator
from buque.layers.profile import Profile
from buque.layers.project import Project
from buque.layers.schema import VILLAGE_LAYERS

#: by default a run splits when its layer files hold this much or more (below, the fork and the
#: transfers cost more than they save) ...
SPLIT_MIN_BYTES = 16 << 20
#: ... and at most this much: above, the two processes together hold too much (at national
#: size, 1.2 GB of GeoPackages: 8.3 GiB against 7.3 GiB in one process, over the 8 GiB a
#: national run may take, for 70.9 s against 82.2 s; see docs/processes.md)
SPLIT_MAX_BYTES = 256 << 20

Load = Callable[[Project, Report], tuple[dict[str, Any], list[dict[str, Any]]]]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in sidecars(path) if p.exists())


def share_of(project: Project, profile: Profile) -> tuple[tuple[str, ...], frozenset[str]]:
    """The child's layers (project order) and the indicators it answers (possibly none).

    Layers that one spatial indicator reads together form a group; a group goes to the child
    only when all its layers are files of the project. Groups are dealt largest first to the
    lighter side, the parent starting with the village layers (and an OSM extract)."""
    kinds = [k for k in project.layers if k not in VILLAGE_LAYERS]
    group = {k: {k} for k in kinds}
    reads = {}
    for ind in profile.indicators.values():
        if not rule_of(ind).spatial:
            continue
        reads[ind.key] = set(rule_of(ind).reads(ind))
        joined = set().union(*(group.get(k, {k}) for k in reads[ind.key]))
        for k in joined:
            group[k] = joined
    groups = {frozenset(g) for g in group.values()}
    parent = sum(_size(project.layers[k].path) for k in project.layers if k in VILLAGE_LAYERS)
    if project.osm is not None:
        parent += _size(project.osm.path)
    movable = []
    for g in groups:
        if g <= set(kinds):
            movable.append((sum(_size(project.layers[k].path) for k in g), sorted(g)))
        else:  # reads a layer the project does not give as a file: it stays
            parent += sum(_size(project.layers[k].path) for k in g if k in project.layers)
    child: set[str] = set()
    load = 0
    for size, g in sorted(movable, reverse=True):
        if load < parent:
            child.update(g)
            load += size
        else:
            parent += size
    keys = frozenset(key for key, r in reads.items() if r <= child)
    return tuple(k for k in kinds if k in child), keys


def can_fork(fork_safe: bool = False) -> bool:
    """Whether this process may fork a child here: a POSIX fork, two or more CPUs, and no other
    thread running (a thread holding a lock at the fork leaves it held in the child) unless the
    caller vouches for its threads (``fork_safe``)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cpus or 1) >= 2 and (fork_safe or threading.active_count() == 1)


def open_split(project: Project, profile: Profile, load: Load, out: Path,
               processes: int | None = None, fork_safe: bool = False) -> Split | None:
    """A started :class:`Split`, or None when the run stays in one process.

    ``processes``: 1 never splits; 2 splits whenever the layers and the platform allow;
    None splits when the layer files hold between :data:`SPLIT_MIN_BYTES` and
    :data:`SPLIT_MAX_BYTES` as well."""
    if processes is not None and processes not in (1, 2):
        raise ValueError(f"processes must be 1, 2 or None (automatic), got {processes!r}")
    if processes == 1 or not can_fork(fork_safe or processes == 2):
        return None
    kinds, keys = share_of(project, profile)
    if not kinds:
        return None
    if processes is None and not (SPLIT_MIN_BYTES <= sum(_size(s.path) for s in
                                                        project.layers.values()) <= SPLIT_MAX_BYTES):
        return None
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.layers-", dir=out.parent))
    return Split(project, profile, kinds, keys, load, staging)


class Split:
    """The forked child and its channel; :class:`geo.gaps.Elsewhere` for :func:`geo.gaps.assess`."""

    def __init__(self, project: Project, profile: Profile, kinds: tuple[str, ...],
                 keys: frozenset[str], load: Load, staging: Path) -> None:
        self.kinds, self.keys, self.staging = kinds, keys, staging
        self.inputs: list[dict[str, Any]] = []
        self.report = Report()
        self._paths = {str(spec.path): k for k, spec in project.layers.items()}
        self._order = list(project.layers)
        self._read = False  # the child's "layers read" message taken
        self._sender: threading.Thread | None = None
        self._send_error: BaseException | None = None
        ctx = multiprocessing.get_context("fork")
        self._conn, theirs = ctx.Pipe()
        self._proc = ctx.Process(target=_child, name="buque-layers", daemon=True,
                                 args=(theirs, project, profile, kinds, load, staging,
                                       os.getpid()))
        self._proc.start()
        theirs.close()

    def parent_project(self, project: Project) -> Project:
        """The project without the child's layers: what this process reads."""
        return replace(project, layers={k: s for k, s in project.layers.items()
                                        if k not in self.kinds})

    def start(self, inds: list[Indicator], masks: dict[str, np.ndarray], lonlat: np.ndarray,
              vgeom: np.ndarray, is_poly: np.ndarray) -> None:
        """Send the villages and indicators (from a thread: the child takes them only when its
        layers are read, and this process goes on meanwhile)."""
        if self._conn.poll():  # the child read its layers, or failed: say so now
            self._layers_read()
        msg = (inds, masks, lonlat, is_poly, shapely.to_wkb(vgeom[is_poly]))

        def send() -> None:
            try:
                self._conn.send(msg)
            except BaseException as e:  # noqa: BLE001 (raised by answers())
                self._send_error = e

        self._sender = threading.Thread(target=send, name="buque-send", daemon=True)
        self._sender.start()

    def _layers_read(self) -> None:
        """Wait until the child has read its layers (raising its error if it could not)."""
        if not self._read:
            self._receive("its layers")
            self._read = True

    def raise_first(self, err: BuqueInputError) -> None:
        """Raise the error one process would have raised instead of ``err`` (this process's
        reading error): the child's, when the child's bad layer comes earlier in the project.
        Waits for the child's reading only when one of its layers comes before ``err``'s."""
        pos = {k: n for n, k in enumerate(self._order)}
        mine = pos.get(self._paths.get(err.path, ""), len(pos))
        if not any(pos[k] < mine for k in self.kinds):
            return
        try:
            self._layers_read()
        except BuqueInputError as theirs:
            if pos.get(self._paths.get(theirs.path, ""), len(pos)) < mine:
                raise theirs from None
        except Exception:  # noqa: BLE001 - the child's other failures: this error stands
            pass

    def answers(self) -> dict[str, Answer]:
        self._layers_read()
        answers, self.inputs, self.report = self._receive("answers")
        if self._sender is not None:
            self._sender.join()
        return answers

    def files(self) -> dict[str, Path]:
        """The archived layers the child wrote, by kind (waiting for them)."""
        (files,) = self._receive("archived layers")
        return files

    def merge_into(self, inputs: list[dict[str, Any]], report: Report, mark: tuple[int, int, int],
                   order: list[str]) -> None:
        """Put the child's input records and report rows among this process's reading ones
        (the first ``mark`` = inputs, rejected, warnings), in project layer order."""
        pos = {k: n for n, k in enumerate(order)}
        n_in, n_rej, n_warn = mark
        inputs[:n_in] = sorted([*inputs[:n_in], *self.inputs],
                               key=lambda i: pos.get(i["layer"], len(pos)))

        def layer_of(df: pd.DataFrame) -> int:
            return pos.get(df["layer"].iat[0] if len(df) else "", len(pos))

        report.rejected[:n_rej] = sorted([*report.rejected[:n_rej], *self.report.rejected],
                                         key=layer_of)
        report.warnings[:n_warn] = sorted([*report.warnings[:n_warn], *self.report.warnings],
                                          key=layer_of)

    def _receive(self, what: str) -> tuple[Any, ...]:
        try:
            msg = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(5)
            if self._send_error is not None:
                raise self._send_error from None
            raise RuntimeError(f"the run's second process ended (exit code "
                               f"{self._proc.exitcode}) before sending {what}") from None
        if msg[0] == "error":
            _, kind, detail, where = msg
            if kind == "input":
                path, message, row, fld = detail
                err: Exception = BuqueInputError(path, message, row=row, field=fld)
            else:
                err = RuntimeError(detail)
            err.add_note(where)
            raise err
        return msg[1:]

    def close(self) -> None:
        """Stop the child if it still runs, and remove the staging folder."""
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join(5)
        self._conn.close()
        shutil.rmtree(self.staging, ignore_errors=True)


#: Linux's prctl option that sends the calling process a signal when its parent ends
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` ends, even by SIGKILL (Linux; elsewhere a no-op: the
    child then notices at its next message, when the pipe is closed). Without it the child of a
    killed run would assess on for up to a minute at national size, holding gigabytes. (Linux
    sends the signal when the parent's *thread* that forked ends: :func:`open_split` is called
    by the thread that runs the whole run.)"""
    name = ctypes.util.find_library("c")
    try:
        prctl = ctypes.CDLL(name, use_errno=True).prctl if name else None
    except (OSError, AttributeError):
        prctl = None
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent ended before the signal was asked for
        os._exit(1)


def _compact(answers: dict[str, Answer], inds: list[Indicator]) -> None:
    """Per layer, only the ids the answers reference, their positions renumbered (at national
    size a layer's ids are millions of strings; a few are evidence)."""
    for layer in {i.layer for i in inds}:
        mine = [answers[i.key] for i in inds if i.layer == layer and answers[i.key].ids is not None]
        if not mine:
            continue
        res: list[Result] = [a.res for a in mine]
        used = np.unique(np.concatenate([x[x >= 0] for r in res for x in (r.evid, r.cand)]))
        ids = mine[0].ids.iloc[used].reset_index(drop=True)  # type: ignore[union-attr]
        for a in mine:
            for name in ("evid", "cand"):
                x = getattr(a.res, name)
                setattr(a.res, name, np.where(x >= 0, np.searchsorted(used, x), -1))
            a.ids = ids


def _child(conn: Any, project: Project, profile: Profile, kinds: tuple[str, ...], load: Load,
           staging: Path, parent: int) -> None:
    """The child: read ``kinds``, answer the indicators it is sent, write the archived copies."""
    die_with_parent(parent)
    try:
        report = Report()
        layers, inputs = load(replace(project, layers={k: project.layers[k] for k in kinds},
                                      osm=None), report)
        conn.send(("read",))
        built = prebuild(layers, conn.poll)  # while the villages are prepared
        msg = conn.recv()
        inds, masks, lonlat, is_poly, wkb = msg
        del msg
        vgeom = np.full(len(lonlat), None, dtype=object)
        vgeom[is_poly] = shapely.from_wkb(wkb)
        prof = replace(profile, indicators={i.key: i for i in inds})
        classes = evidence_classes(layers, prof)
        results = {i.key: Result(len(lonlat)) for i in inds}
        answer_spatial(inds, masks, results, layers, classes, lonlat, vgeom, is_poly,
                       bands_of(lonlat[:, 0], lonlat[:, 1]), built=built)
        del built
        answers = answers_of(inds, masks, results, layers)
        _compact(answers, inds)
        conn.send(("answers", answers, inputs, report))
        del answers
        files = {}
        for kind, gdf in archived_layers(layers, prof, classes).items():
            files[kind] = staging / f"{kind}.parquet"
            write_geoparquet(gdf, files[kind])
        conn.send(("files", files))
    except BaseException as e:  # noqa: BLE001 - every failure goes to the parent
        # as plain data: an exception's own pickling may fail (its causes; hooks such as
        # tblib's, which Dask installs, that rebuild them differently)
        where = f"in the run's second process:\n{traceback.format_exc()}"
        if isinstance(e, BuqueInputError):
            conn.send(("error", "input", (e.path, e.message, e.row, e.field), where))
        else:
            conn.send(("error", "other", f"{type(e).__name__}: {e}", where))
    finally:
        conn.close()
