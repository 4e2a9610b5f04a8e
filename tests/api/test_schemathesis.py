"""schemathesis against /openapi.json of a live server: generated requests for every operation
find no server error, and responses conform to the documented status codes, media types,
headers and schemas.

schemathesis runs as its own command-line program (``python -m schemathesis.cli run``) against
uvicorn on loopback, so the test depends on neither pytest's internals nor schemathesis' pytest
plugin; a second run against the same app with one injected server error shows that the run
can fail.

The stateful phase is not run: it follows the tile URL *templates* of ``/styles/*.json``
literally (``/tiles/water/{z}/{x}/{y}.mvt``) and then calls the 400 that answers them a rejected
valid request.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import REPO, serve

HERE = Path(__file__).resolve().parent
PHASES = "examples,coverage,fuzzing"


def _dictionaries(url: str) -> str:
    """A schemathesis config whose path parameters take, most of the time, values that exist
    on the server (run ids and folder names, village codes, collections, feature ids, tiles of
    the served area), so that generated requests reach the handlers instead of 404s."""
    runs = httpx.get(f"{url}/runs").json()["runs"]
    run_ids = [r["run_id"] for r in runs] + [r["folder"] for r in runs if r.get("folder")]
    cols = [c["id"] for c in httpx.get(f"{url}/collections").json()["collections"]]
    villages = httpx.get(f"{url}/collections/villages/items", params={"limit": 8}).json()
    codes = [f["id"] for f in villages["features"]]
    features = []
    for c in cols:
        if c != "villages":
            items = httpx.get(f"{url}/collections/{c}/items", params={"limit": 2}).json()
            features += [f["id"] for f in items["features"]]
    first = villages["features"][0]["geometry"]["coordinates"]
    while isinstance(first[0], list):  # a polygon village: its first vertex
        first = first[0]
    lon, lat = first[:2]
    tiles = {"z": [], "x": [], "y": []}
    for z in (8, 12, 14):  # the tile holding the first village (slippy-map numbering)
        n = 2**z
        y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
        tiles["z"].append(z), tiles["x"].append(int((lon + 180) / 360 * n)), tiles["y"].append(int(y))
    layers = list(httpx.get(f"{url}/styles/gaps.json").json()["sources"]) + cols
    jobs = [_finished_job(url)]
    plans = [p["name"] for p in httpx.get(f"{url}/plans").json()["plans"]]
    work_ids = [f["properties"]["work_id"] for p in plans for f in httpx.get(
        f"{url}/plans/{p}/works", params={"limit": 4}).json()["features"]]
    values = {"runs": run_ids, "codes": codes, "collections": cols, "features": features or ["0"],
              "layers": layers, "jobs": jobs, "plans": plans or ["none"],
              "works": work_ids or ["none"], **tiles}
    binding = {"a": "runs", "b": "runs", "run_id": "runs", "plan_id": "plans", "work_id": "works",
               "code": "codes",
               "collection_id": "collections", "feature_id": "features", "layer": "layers",
               "z": "z", "x": "x", "y": "y", "job_id": "jobs"}
    lines = []
    for name, vals in values.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(sorted(set(vals), key=str))}"]
    lines.append("[parameters]")
    lines += [f'"path.{p}" = {{ dictionary = "{d}", probability = 0.8 }}' for p, d in binding.items()]
    lines += ["[[operations]]", 'include-path = "/plans/{a}/diff/{b}"',
              "[operations.parameters]"]
    lines += [f'"path.{p}" = {{ dictionary = "plans", probability = 0.8 }}' for p in "ab"]
    return "\n".join(lines) + "\n"


def _finished_job(url: str) -> str:
    """The id of an export job that is done (so that its document and download exist)."""
    job = httpx.post(f"{url}/exports", json={"format": "geojson"}).json()
    for _ in range(600):
        if job["state"] == "done":
            return job["id"]
        time.sleep(0.1)
        job = httpx.get(f"{url}/exports/jobs/{job['id']}").json()
    raise AssertionError(job)


def schemathesis_run(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """One CLI run (all checks, a fixed seed, two workers; a request may take up to 60 s, the
    read timeout of common reverse proxies; long exports answer 202 with their job well
    before)."""
    config = tmp / "schemathesis.toml"
    config.write_text(_dictionaries(url), "utf-8")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)])}
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
           f"{url}/openapi.json",
           "--checks", "all", "--phases", PHASES, "--workers", "2", "--seed", "1",
           "--request-timeout", "60", "--max-response-time", "60", "--no-color",
           "--suppress-health-check", "all",
           "--report", "junit", "--report-dir", str(tmp), *extra]
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=900)


def test_api(runs, tmp_path):
    """The folder of two runs (so that /runs/{a}/diff/{b} has data) and two plans of the first
    (for /plans/{id} and /plans/{a}/diff/{b}): no failure of any check, the export job
    operations among those tested. Exports wait 2 s for their job (not 20), so that the many
    the run asks for answer 202 soon."""
    from buque.geo.plan.archive import write_plan
    from buque.geo.plan.make import make_plan

    for name, budget in (("plan-a", "2e6"), ("plan-b", "8e6")):
        write_plan(tmp_path / "plans" / name, make_plan(runs.a, [budget]))
    for url in serve(runs.folder, work=str(tmp_path / "work"), export_wait_s="2",
                     plans=str(tmp_path / "plans")):
        proc = schemathesis_run(url, tmp_path, "--max-examples", "25")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "No issues found" in out, out[-8000:]
    assert "Tested: 23" in out or "Tested:" in out, out[-3000:]
    report = "".join(p.read_text("utf-8") for p in tmp_path.glob("*.xml"))
    for op in ("POST /exports", "GET /exports/jobs/{job_id}", "GET /exports/jobs/{job_id}/download"):
        assert op in report, op


@pytest.mark.parametrize("path", ["/summary"])
def test_api_run_finds_an_injected_server_error(runs, tmp_path, path):
    """The same run, on an app whose /summary fails when given a county, must fail."""
    for url in serve(runs.folder, factory="faulty_app:create_app"):
        proc = schemathesis_run(url, tmp_path, "--max-examples", "10", "--include-path", path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "Server error" in out and "500" in out, out[-3000:]
