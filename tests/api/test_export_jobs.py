"""Export jobs: POST /exports queues, the job URL tells state, position and progress, the
download is the file; the same request later is the cached job; a restarted server fails the
jobs it left unfinished; old results are cleaned up."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import openpyxl
import pyogrio
import pytest
from conftest import REPO, free_port

from buque.api.jobs import JOB, JobManager, Limits, Task, write_json


def _until_done(client, job: dict, timeout: float = 120) -> tuple[dict, list[dict]]:
    """Poll a job until it is done or failed; the job and every progress seen."""
    seen = [job["progress"]]
    deadline = time.monotonic() + timeout
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        r = client.get(f"/exports/jobs/{job['id']}")
        assert r.status_code == 200
        job = r.json()
        seen.append(job["progress"])
    return job, seen


def test_bundle_job_reports_progress_then_downloads(client, tables) -> None:
    r = client.post("/exports", json={"format": "bundle", "dpi": 72, "lang": "en"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/exports/jobs/{job['id']}"
    assert job["state"] in ("queued", "running") and job["format"] == "bundle"
    job, seen = _until_done(client, job)
    assert job["state"] == "done", job
    fractions = [p["fraction"] for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    href = next(link["href"] for link in job["links"] if link["rel"] == "enclosure")
    d = client.get(href)
    assert d.status_code == 200 and d.headers["content-type"] == "application/zip"
    assert job["result"]["size"] == len(d.content)
    names = zipfile.ZipFile(io.BytesIO(d.content)).namelist()
    assert any(n.endswith("gap-map.pdf") for n in names) and "manifest.json" in names
    # the same request again: the same job, already done in the answer itself (not run again:
    # a new job would be answered queued or running)
    again = client.post("/exports", json={"format": "bundle", "dpi": 72, "lang": "en"})
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    assert again.json()["state"] == "done"
    # so does the GET URL, with the same bytes
    g = client.get("/exports/bundle", params={"dpi": 72, "lang": "en"})
    assert g.status_code == 200 and g.content == d.content


def test_form_post_and_parameters_that_do_not_shape_the_file(client, tables) -> None:
    """A form works like JSON; map-only options do not make a GeoPackage a different job."""
    county = tables.villages["county"].dropna().iloc[0]
    r = client.post("/exports", data={"format": "gpkg", "county": county, "dpi": "300"})
    assert r.status_code in (200, 202), r.text
    job, _ = _until_done(client, r.json())
    same = client.post("/exports", json={"format": "gpkg", "county": county, "paper": "A3"})
    assert same.json()["id"] == job["id"] and same.status_code == 200
    content = client.get(f"/exports/jobs/{job['id']}/download").content
    path = Path(client.app.state.jobs.root) / "check.gpkg"
    path.write_bytes(content)
    layers = [name for name, _ in pyogrio.list_layers(path)]
    v = pyogrio.read_dataframe(path, layer="villages" if "villages" in layers else layers[0])
    want = set(tables.villages.loc[tables.villages["county"] == county, "code"])
    assert set(v["code"]) == want


@pytest.mark.parametrize("body,status", [
    ({"format": "docx"}, 400), ({}, 400), ({"format": "pdf", "dpi": 5000}, 400),
    ({"format": "pdf", "county": "No such county"}, 404),
    ({"format": "pdf", "nosuch": 1}, 400), ({"format": "pdf", "run": "nosuch"}, 404)])
def test_bad_job_requests_are_refused_before_queueing(client, body, status) -> None:
    r = client.post("/exports", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_other_bodies(client) -> None:
    assert client.post("/exports", content=b"format=pdf",
                       headers={"content-type": "text/plain"}).status_code == 415
    assert client.post("/exports", content=b"[1]",
                       headers={"content-type": "application/json"}).status_code == 400
    assert client.get("/exports/jobs/" + "0" * 32).status_code == 404
    assert client.get("/exports/jobs/not-an-id").status_code == 400


def test_ledger_job_matches_the_run(client, tables) -> None:
    r = client.post("/exports", json={"format": "xlsx", "indicator": "water"})
    job, _ = _until_done(client, r.json())
    wb = openpyxl.load_workbook(io.BytesIO(client.get(
        f"/exports/jobs/{job['id']}/download").content), read_only=True)
    rows = list(wb["饮水安全"].iter_rows(values_only=True))
    codes = {r[3] for r in rows[2:] if isinstance(r[0], int | float)}
    v = tables.villages
    assert codes == set(v.loc[v["water"] == "missing", "code"])


# ----------------------------------------------------------------- the manager on its own

class Gate:
    """A task source that blocks until opened, then fails (no export needed)."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.started = threading.Semaphore(0)

    def __call__(self):
        self.started.release()
        self.opened.wait(30)
        raise RuntimeError("gate closed")


def _task(gate: Gate, d: Path) -> Task:
    return Task(job_dir=str(d), run_id="r", fmt="gpkg", options={}, filename="x.gpkg",
                source=gate)


def test_queue_is_fifo_with_positions_and_bounded(tmp_path) -> None:
    gate = Gate()
    m = JobManager(tmp_path, Limits(workers=1, queue=2, processes=False))
    try:
        ids = [f"{i:032x}" for i in range(1, 4)]
        m.submit(ids[0], lambda d: _task(gate, d), {"format": "gpkg", "run_id": "r"})
        assert gate.started.acquire(timeout=10)
        for i in ids[1:]:
            m.submit(i, lambda d: _task(gate, d), {"format": "gpkg", "run_id": "r"})
        states = [m.get(i) for i in ids]
        assert [s["state"] for s in states] == ["running", "queued", "queued"]
        assert [s["position"] for s in states] == [None, 1, 2]
        from buque.api.jobs import QueueFull

        with pytest.raises(QueueFull):
            m.submit(f"{9:032x}", lambda d: _task(gate, d), {})
        gate.opened.set()
        for i in ids:  # they run one after the other, in order
            assert m.wait(i, 20) or m.get(i)["state"] == "failed"
        jobs = [m.get(i) for i in ids]
        assert [j["state"] for j in jobs] == ["failed"] * 3
        assert "gate closed" in jobs[0]["error"]["detail"]
        starts = [j["started"] for j in jobs]
        assert starts == sorted(starts)
    finally:
        m.close()


def test_a_second_manager_does_not_touch_live_jobs_but_fails_orphans(tmp_path) -> None:
    gate = Gate()
    a = JobManager(tmp_path, Limits(workers=1, processes=False))
    job_id = "a" * 32
    try:
        a.submit(job_id, lambda d: _task(gate, d), {"format": "gpkg", "run_id": "r"})
        assert gate.started.acquire(timeout=10)
        b = JobManager(tmp_path, Limits(workers=1, processes=False))  # e.g. a second worker
        assert b.get(job_id)["state"] == "running"  # a still holds its lock
        a._owner.close()  # a dies without a word (its flock goes with its descriptor)
        a._closed = True
        job = b.get(job_id)
        assert job["state"] == "failed" and job["error"]["kind"] == "server-restarted"
        assert "restarted" in job["error"]["detail"]
        b.close()
    finally:
        gate.opened.set()


def test_cleanup_by_age_then_least_recently_used(tmp_path) -> None:
    m = JobManager(tmp_path, Limits(workers=1, processes=False, max_age_s=3600,
                                    cache_bytes=2500))
    try:
        now = time.time()
        ages = {"1": 7200, "2": 300, "3": 200, "4": 100}  # seconds since last use
        for n, age in ages.items():
            d = tmp_path / (n * 32)
            d.mkdir()
            write_json(d / JOB, {"id": n * 32, "state": "done",
                                 "result": {"filename": "f.bin"}})
            (d / "f.bin").write_bytes(b"x" * 1000)
            for p in d.iterdir():
                os.utime(p, (now - age, now - age))
        removed = m.cleanup()
        # "1" is too old; of 3 000 bytes left, the least recently used ("2") goes for 2 500
        assert sorted(removed) == ["1" * 32, "2" * 32]
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
            "3" * 32, "4" * 32]
    finally:
        m.close()


# --------------------------------------------------------------------- a real restart

def _start(data: Path, factory: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    full = {**os.environ, "BUQUE_DATA": str(data), **env,
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests" / "api")])}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", factory, "--factory", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            cwd=REPO, env=full, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/conformance", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
        time.sleep(0.2)


@pytest.mark.parametrize("stop", ["kill", "terminate"])
def test_a_job_left_running_is_failed_after_a_restart(demo_run, tmp_path, stop) -> None:
    """The server is killed (or stopped) while a job runs; the next server on the same data
    says the job failed, and why; asking again queues it anew."""
    work = {"BUQUE_WORK": str(tmp_path / "work")}
    proc, url = _start(demo_run, "slow_exports_app:create_app", work)
    try:
        job = httpx.post(f"{url}/exports", json={"format": "bundle", "dpi": 72}).json()
        deadline = time.monotonic() + 30
        while job["state"] != "running" or job["progress"]["fraction"] == 0:
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
            job = httpx.get(f"{url}/exports/jobs/{job['id']}").json()
        assert job["progress"]["step"].endswith("blocked on purpose")
    finally:
        proc.send_signal(signal.SIGKILL if stop == "kill" else signal.SIGTERM)
        proc.wait(30)
    proc, url = _start(demo_run, "buque.api.app:create_app", work)
    try:
        r = httpx.get(f"{url}/exports/jobs/{job['id']}")
        assert r.status_code == 200
        after = r.json()
        assert after["state"] == "failed", after
        assert after["error"]["kind"] == "server-restarted"
        assert "stopped or restarted while this job was running" in after["error"]["detail"]
        again = httpx.post(f"{url}/exports", json={"format": "bundle", "dpi": 72})
        assert again.status_code == 202 and again.json()["id"] == job["id"]
        assert again.json()["state"] in ("queued", "running")
    finally:
        proc.terminate()
        proc.wait(30)
    saved = json.loads((tmp_path / "work" / "exports" / job["id"] / JOB).read_text())
    assert saved["id"] == job["id"]
