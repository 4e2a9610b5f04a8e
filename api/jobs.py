"""Export jobs: long exports run apart from the requests that ask for them.

A job is one export of one run with normalised parameters; its id is a hash of both, so the
same request later finds the same job (and, once done, its cached file). Jobs wait in a FIFO
queue; ``workers`` of them run at once, each in a worker process (``spawn``ed, niced, so the
server answers other requests first) or, for runs loaded from PostGIS, a thread of the server.

Each job is a folder of the work area, ``<work>/exports/<id>/``: ``job.json`` (its state,
written by the server that owns it, atomically), ``progress.json`` (fraction and step, written
by the worker as each step starts) and, when done, the result file. A server holds an
exclusive ``flock`` on ``.owners/<instance>.lock`` while it lives; a queued or running job
whose owner holds no lock any more (the server stopped, crashed or restarted) is failed with
that reason when it is next read, and at start-up. Finished jobs unused for ``max_age_s`` are
removed, and the least recently used results beyond ``cache_bytes``.

Only the standard library is imported here (the worker processes import this module); the
export itself is :mod:`geo.report`'s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("buque.jobs")
JOB = "job.json"
PROGRESS = "progress.json"
OWNERS = ".owners"
JOB_ID = re.compile(r"[0-9a-f]{32}")
ACTIVE = ("queued", "running")
PROGRESS_EVERY_S = 0.25  # the worker writes progress.json at most this often within a step


class QueueFull(Exception):
    """The queue holds its most jobs; ``retry_after`` is a guess in seconds."""

    def __init__(self, waiting: int, retry_after: int) -> None:
        self.waiting, self.retry_after = waiting, retry_after
        super().__init__(f"{waiting} export jobs are waiting; try again in {retry_after} s")


def job_key(run_id: str, fmt: str, params: dict[str, Any]) -> str:
    """The job id of an export: a hash of the run id, the format and normalised parameters."""
    text = json.dumps({"v": 1, "run": run_id, "format": fmt, "params": params},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """``data`` as JSON at ``path``, atomically (readers see the old or the new file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------------------ the worker

@dataclass(frozen=True)
class Task:
    """What a worker needs to make one export (picklable when ``source`` is a run path)."""

    job_dir: str
    run_id: str
    fmt: str                      #: an export format of :mod:`geo.report`, or ``bundle``
    options: dict[str, Any]       #: ExportOptions fields but ``fmt``; selection as lists
    filename: str                 #: the download's name (``buque-<run>.<fmt>``)
    source: Any = None            #: a run's folder (str), or a callable giving its ReportData


class _ProgressFile:
    """A :data:`geo.report.progress.Progress` writing ``progress.json``: on each new step, and
    within a step at most every :data:`PROGRESS_EVERY_S`."""

    def __init__(self, path: Path) -> None:
        self.path, self.step, self.at = path, "", 0.0

    def __call__(self, fraction: float, step: str) -> None:
        t = time.monotonic()
        if step == self.step and t - self.at < PROGRESS_EVERY_S and fraction < 1.0:
            return
        self.step, self.at = step, t
        write_json(self.path, {"fraction": round(min(max(fraction, 0.0), 1.0), 4), "step": step,
                               "at": now_iso()})


_loaded: dict[str, Any] = {}
_loaded_lock = threading.Lock()


def _report_data(task: Task) -> Any:
    """The run's report data: from the task's loader, or read from its folder once per worker
    process (the last run read is kept)."""
    if callable(task.source):
        return task.source()
    from buque.geo.report import load_report

    with _loaded_lock:
        if task.run_id not in _loaded:
            _loaded.clear()
            _loaded[task.run_id] = load_report(task.source)
        return _loaded[task.run_id]


def _package(files: list[Path], out: Path, job_dir: Path, filename: str) -> Path:
    """The one file written, moved into ``job_dir`` as ``filename``; several (a shapefile's
    sidecars, per-county bundles) zipped together as ``<stem>.zip``."""
    written = sorted(p for p in out.rglob("*") if p.is_file())
    if len(files) == 1 and written == [files[0]]:
        dest = job_dir / filename
        os.replace(files[0], dest)
        return dest
    dest = job_dir / (Path(filename).stem + ".zip")
    part = out.parent / "result.zip.part"
    with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as z:
        for p in written:
            z.write(p, p.relative_to(out))
    os.replace(part, dest)
    return dest


def run_task(task: Task) -> dict[str, Any]:
    """Make the export of ``task`` in its job folder: ``{"result": ...}`` or ``{"error": ...}``
    (a problem's status, kind and detail; never raises, so nothing unpicklable crosses back)."""
    from buque.geo.report import (
        MEDIA_TYPES,
        ExportError,
        ExportOptions,
        FontError,
        Selection,
        export,
        export_bundle,
    )
    from buque.geo.report.fonts import CJK_PACKAGE
    from buque.geo.report.progress import part

    job_dir = Path(task.job_dir)
    report = _ProgressFile(job_dir / PROGRESS)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=".work-", dir=job_dir))
    try:
        report(0.0, "reading the run")
        o = dict(task.options)
        sel = Selection(*(tuple(o.pop(k, ())) for k in ("county", "township", "indicator")))
        if o.get("basemap"):  # a server's own raster basemap under the HTML map
            o["basemap"] = Path(o["basemap"])
        bundle = task.fmt == "bundle"
        opts = ExportOptions(fmt="pdf" if bundle else task.fmt, selection=sel, **o)
        data = _report_data(task)
        out = tmp / "out"
        out.mkdir()
        if bundle:
            res = export_bundle(data, out, opts, progress=part(report, 0.03, 0.97))
        else:
            res = export(data, out / task.filename, opts, progress=part(report, 0.03, 0.97))
        report(0.97, "packing")
        path = _package(res.files, out, job_dir, task.filename)
        media = ("application/zip" if path.suffix == ".zip"
                 else MEDIA_TYPES.get(task.fmt, "application/octet-stream"))
        report(1.0, "done")
        return {"result": {"filename": path.name, "size": path.stat().st_size,
                           "media_type": media, "notes": res.notes,
                           "seconds": round(time.perf_counter() - t0, 2)}}
    except ExportError as e:
        return {"error": {"status": 404, "kind": "empty-selection", "detail": str(e)}}
    except FontError as e:
        return {"error": {"status": 503, "kind": "no-cjk-font", "detail": str(e),
                          "package": CJK_PACKAGE}}
    except Exception as e:  # a bug or a full disk: the job says so instead of vanishing
        log.exception("export job %s failed", job_dir.name)
        return {"error": {"status": 500, "kind": "export-failed",
                          "detail": f"the export failed: {type(e).__name__}: {e}"}}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _worker_init(nice: int) -> None:
    """In each worker process: a lower priority than the server's, and death with it."""
    with contextlib.suppress(OSError):
        os.nice(nice)
    with contextlib.suppress(Exception):  # Linux: SIGKILL when the server process dies
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# ----------------------------------------------------------------------------- the manager

@dataclass
class Limits:
    workers: int = 2
    queue: int = 20
    max_age_s: float = 7 * 24 * 3600.0
    cache_bytes: float = 2 * 1024**3
    processes: bool = True
    nice: int = 10


@dataclass
class _Pending:
    task: Task
    done: threading.Event = field(default_factory=threading.Event)


class JobManager:
    """The export jobs of one server process: a FIFO queue, ``limits.workers`` dispatcher
    threads each running one job at a time, job state in files under ``root``."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root, self.limits = Path(root), limits
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / OWNERS).mkdir(exist_ok=True)
        self.instance = uuid.uuid4().hex
        self._lock_path = self.root / OWNERS / f"{self.instance}.lock"
        self._owner = open(self._lock_path, "w")  # noqa: SIM115 (held for the manager's life)
        fcntl.flock(self._owner, fcntl.LOCK_EX)
        self._cv = threading.Condition()
        self._queue: deque[str] = deque()
        self._pending: dict[str, _Pending] = {}
        self._running: set[str] = set()
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._closed = False
        self._seq = 0
        self.recover()
        self.cleanup()
        self._threads = [threading.Thread(target=self._dispatch, name=f"buque-export-{i}",
                                          daemon=True) for i in range(limits.workers)]
        for t in self._threads:
            t.start()

    # ---- reading
    def path(self, job_id: str) -> Path:
        if not JOB_ID.fullmatch(job_id):
            raise KeyError(job_id)
        return self.root / job_id

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job's document (state, position, progress, error, result), or None."""
        try:
            d = self.path(job_id)
        except KeyError:
            return None
        job = read_json(d / JOB)
        if job is None:
            return None
        if job["state"] in ACTIVE and not self._alive(job.get("owner", "")):
            job = self._orphaned(d, job)
        if job["state"] == "done" and not (d / job["result"]["filename"]).is_file():
            return None  # removed by a cleanup (of this or another server)
        job["position"] = self._position(job) if job["state"] == "queued" else None
        if job["state"] == "running":
            job["progress"] = read_json(d / PROGRESS) or {"fraction": 0.0, "step": "starting"}
        elif job["state"] == "done":
            job["progress"] = {"fraction": 1.0, "step": "done"}
        else:
            job["progress"] = {"fraction": 0.0, "step": job["state"]}
        job["progress"].pop("at", None)
        return job

    def result(self, job: dict[str, Any]) -> Path:
        """The result file of a done job, marked as used now (for the cleanup)."""
        p = self.root / job["id"] / job["result"]["filename"]
        with contextlib.suppress(OSError):
            os.utime(p)
        return p

    def _position(self, job: dict[str, Any]) -> int | None:
        """1 for the next job to start. Counted in this server's queue, or for another
        server's job from the job files (the queued jobs of its owner submitted before it)."""
        with self._cv:
            if job["id"] in self._queue:
                return list(self._queue).index(job["id"]) + 1
            if job["id"] in self._pending:
                return 1  # taken off the queue this instant
        ahead = 0
        for d in self.root.iterdir():
            other = read_json(d / JOB) if JOB_ID.fullmatch(d.name) else None
            if (other and other["state"] == "queued" and other.get("owner") == job.get("owner")
                    and other.get("seq", 0) < job.get("seq", 0)):
                ahead += 1
        return ahead + 1

    def waiting(self) -> int:
        with self._cv:
            return len(self._queue)

    # ---- owners
    def _alive(self, owner: str) -> bool:
        """Whether the server ``owner`` still holds its lock."""
        if owner == self.instance:
            return not self._closed
        if not JOB_ID.fullmatch(owner or ""):
            return False
        p = self.root / OWNERS / f"{owner}.lock"
        try:
            f = open(p)  # noqa: SIM115
        except OSError:
            return False
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            with contextlib.suppress(OSError):
                p.unlink()
            return False

    def _orphaned(self, d: Path, job: dict[str, Any]) -> dict[str, Any]:
        """Fail a job whose server went away before finishing it."""
        was = job["state"]
        job.update(state="failed", finished=now_iso(), error={
            "status": 503, "kind": "server-restarted",
            "detail": f"the server stopped or restarted while this job was {was}; "
                      "its work is lost: ask for the export again (POST /exports)"})
        with contextlib.suppress(OSError):
            write_json(d / JOB, job)
        return job

    def recover(self) -> int:
        """At start-up: fail every unfinished job of servers that are gone. Their number."""
        n = 0
        for d in self.root.iterdir():
            job = read_json(d / JOB) if JOB_ID.fullmatch(d.name) else None
            if job and job["state"] in ACTIVE and not self._alive(job.get("owner", "")):
                self._orphaned(d, job)
                n += 1
        if n:
            log.warning("%d export job(s) left unfinished by a stopped server marked failed", n)
        return n

    # ---- submitting
    def submit(self, job_id: str, make_task: Callable[[Path], Task], meta: dict[str, Any]
               ) -> dict[str, Any]:
        """The job ``job_id``: as it is when done (cached) or under way, else (new, failed,
        or its result removed) queued anew with the task ``make_task(folder)``."""
        with self._cv:
            job = self.get(job_id)
            if job is not None and job["state"] in ("done", *ACTIVE):
                if job["state"] == "done":
                    self.result(job)
                return job
            if self._closed:
                raise QueueFull(len(self._queue), 5)
            if len(self._queue) >= self.limits.queue:
                raise QueueFull(len(self._queue), self._retry_after())
            d = self.path(job_id)
            if d.exists():
                shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            self._seq += 1
            job = {"id": job_id, "state": "queued", **meta, "created": now_iso(),
                   "started": None, "finished": None, "owner": self.instance,
                   "seq": time.time_ns() + self._seq, "error": None, "result": None}
            write_json(d / JOB, job)
            self._pending[job_id] = _Pending(make_task(d))
            self._queue.append(job_id)
            self._cv.notify()
        return self.get(job_id) or job

    def _retry_after(self) -> int:
        return max(5, int(10 * len(self._queue) / self.limits.workers))

    def wait(self, job_id: str, timeout: float) -> bool:
        """Wait up to ``timeout`` s for this server's job ``job_id`` to finish (False if not
        this server's, or not finished in time)."""
        with self._cv:
            p = self._pending.get(job_id)
        return p.done.wait(timeout) if p is not None else False

    # ---- running
    def _dispatch(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                job_id = self._queue.popleft()
                pending = self._pending[job_id]
                self._running.add(job_id)
                self._update(job_id, state="running", started=now_iso())
            try:
                out = self._run(pending.task)
            except BrokenProcessPool:
                self._reset_pool()
                out = {"error": {"status": 500, "kind": "export-failed", "detail":
                                 "the export's worker process died (out of memory?)"}}
            except Exception as e:  # noqa: BLE001 (the job records it)
                log.exception("export job %s", job_id)
                out = {"error": {"status": 500, "kind": "export-failed",
                                 "detail": f"{type(e).__name__}: {e}"}}
            with self._cv:
                if not self._closed:
                    if "result" in out:
                        self._update(job_id, state="done", finished=now_iso(),
                                     result=out["result"])
                    else:
                        self._update(job_id, state="failed", finished=now_iso(),
                                     error=out["error"])
                self._running.discard(job_id)
                self._pending.pop(job_id, None)
            pending.done.set()
            with contextlib.suppress(OSError):
                self.cleanup()

    def _run(self, task: Task) -> dict[str, Any]:
        if not self.limits.processes or callable(task.source):
            return run_task(task)
        return self._process_pool().submit(run_task, task).result()

    def _process_pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        with self._pool_lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.limits.workers,
                                                 mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_worker_init,
                                                 initargs=(self.limits.nice,))
            return self._pool

    def _reset_pool(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _update(self, job_id: str, **changes: Any) -> None:
        d = self.root / job_id
        job = read_json(d / JOB)
        if job is None or job.get("owner") != self.instance:
            return
        job.update(changes)
        write_json(d / JOB, job)

    # ---- cleaning up
    def cleanup(self) -> list[str]:
        """Remove finished jobs unused for ``max_age_s``, then the least recently used done
        results while they take more than ``cache_bytes`` (the newest is always kept). The
        ids removed."""
        now, removed, done = time.time(), [], []
        for d in self.root.iterdir():
            if not JOB_ID.fullmatch(d.name):
                continue
            job = read_json(d / JOB)
            if job is not None and job["state"] in ACTIVE:
                continue
            files = [p for p in d.iterdir() if p.is_file()]
            try:
                used = max((p.stat().st_mtime for p in files), default=d.stat().st_mtime)
            except OSError:
                continue
            if now - used > self.limits.max_age_s or job is None and now - used > 3600:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d.name)
            elif job is not None and job["state"] == "done":
                done.append((used, sum(p.stat().st_size for p in files), d))
        total = sum(size for _, size, _ in done)
        for _used, size, d in sorted(done)[:-1]:  # oldest use first, never the newest
            if total <= self.limits.cache_bytes:
                break
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
            total -= size
        return removed

    def close(self) -> None:
        """Stop: jobs queued or running here are failed (they would be at the next start),
        worker processes ended, the owner lock released."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            unfinished = list(self._queue) + list(self._running)
            self._queue.clear()
            self._cv.notify_all()
        for job_id in unfinished:
            d = self.root / job_id
            job = read_json(d / JOB)
            if job is not None and job["state"] in ACTIVE:
                job["owner"] = ""
                self._orphaned(d, job)
        with self._cv:
            for p in self._pending.values():
                p.done.set()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            for proc in list(getattr(pool, "_processes", {}).values()):  # no public kill
                with contextlib.suppress(Exception):
                    proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(OSError):
            self._lock_path.unlink()
        self._owner.close()


def work_area(data: Path, work: Path | None) -> Path:
    """Where export jobs live: ``work``, else ``.buque-work`` in the data folder (beside the
    run when ``data`` is one run), else (not writable) one in the temporary folder."""
    if work is not None:
        return Path(work)
    data = Path(data).resolve()
    base = data.parent if (data / "manifest.json").is_file() else data
    area = base / ".buque-work"
    try:
        area.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=area, prefix=".probe-")  # noqa: SIM115
        probe.close()
        return area
    except OSError:
        tag = hashlib.sha256(str(data).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"buque-work-{tag}"
