"""API fixtures: a real run of the bundled demo, a second run derived from it, app clients and
a live server (uvicorn in a subprocess on a free port) for real GIS clients."""

from __future__ import annotations

import copy
import datetime as dt
import os
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

with warnings.catch_warnings():
    # starlette's TestClient warns (StarletteDeprecationWarning) that it prefers httpx2 over
    # httpx; either works here
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

from buque.api.app import create_app
from buque.api.settings import Settings
from buque.geo.archive import read_manifest, read_run, write_run

REPO = Path(__file__).resolve().parents[2]
DEMO_TOML = REPO / "layers" / "demo" / "andorra.toml"


@dataclass
class Runs:
    """Two runs in one folder: ``a`` (the real demo run) and ``b`` (derived, one day later)."""

    folder: Path
    a: Path
    b: Path
    a_id: str
    b_id: str
    #: indicator -> change -> village codes, as made when deriving b from a
    expected: dict[str, dict[str, set[str]]]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The bundled demo (real OpenStreetMap data of Andorra), run once per session."""
    from buque.geo.run import run_project

    out = tmp_path_factory.mktemp("api-runs") / "runs" / "a"
    run_project(DEMO_TOML, out)
    return out


@pytest.fixture(scope="session")
def runs(demo_run: Path) -> Runs:
    """A folder with the demo run and a second run derived from it with known changes.

    b: one village's road met -> missing (regressed); two villages' water missing -> met
    (fixed); one clinic unknown -> missing (changed); one village no longer in b (removed).
    b's village table is updated to match its gaps.
    """
    tables = read_run(demo_run)
    man = read_manifest(demo_run)
    g = tables.gaps.copy()
    expected: dict[str, dict[str, set[str]]] = {}

    def pick(ind: str, status: str, n: int) -> list[str]:
        codes = g.loc[(g["indicator"] == ind) & (g["status"] == status), "village_code"]
        codes = sorted(codes.astype(str))
        assert len(codes) >= n, (ind, status)
        return codes[:n]

    def setstatus(ind: str, codes: list[str], status: str) -> None:
        m = (g["indicator"] == ind) & g["village_code"].isin(codes)
        g.loc[m, "status"] = status

    regressed = pick("road", "met", 1)
    fixed = pick("water", "missing", 2)
    changed = pick("clinic", "unknown", 1)
    setstatus("road", regressed, "missing")
    setstatus("water", fixed, "met")
    setstatus("clinic", changed, "missing")
    # a village assessed only in a: drop its rows from b
    gone = sorted(set(g["village_code"].astype(str)) - set(regressed + fixed + changed))[0]
    removed = g.loc[g["village_code"] == gone, "indicator"].astype(str).tolist()
    g = g.loc[g["village_code"] != gone].reset_index(drop=True)
    for ind in {"road", "water", "power", "clinic", "broadband"}:
        expected[ind] = {c: set() for c in ("fixed", "regressed", "newly_assessed", "removed",
                                            "changed")}
    expected["road"]["regressed"] = set(regressed)
    expected["water"]["fixed"] = set(fixed)
    expected["clinic"]["changed"] = set(changed)
    for ind in removed:
        expected[ind]["removed"].add(gone)

    v = tables.villages.loc[tables.villages["code"] != gone].reset_index(drop=True)
    status = g.pivot(index="village_code", columns="indicator", values="status")
    keys = [k for k in ("road", "water", "power", "clinic", "broadband") if k in v]
    for k in keys:
        v[k] = v["code"].map(status[k]).astype("string")
    miss = pd.DataFrame({k: (v[k] == "missing").fillna(False) for k in keys})
    v["n_missing"] = miss.sum(axis=1).astype("int64")
    v["missing"] = miss.apply(lambda r: ",".join(k for k in keys if r[k]), axis=1)
    tables.villages = v
    b_dir = demo_run.parent / "b"
    created = dt.datetime.fromisoformat(man["created"]) + dt.timedelta(days=1)
    man_b = copy.deepcopy(man)
    man_b["created"] = created.isoformat(timespec="seconds")
    man_b["run_id"] = f"{created:%Y%m%dT%H%M%SZ}-derived"
    tables.gaps = g
    write_run(b_dir, tables, man_b)
    return Runs(folder=demo_run.parent, a=demo_run, b=b_dir, a_id=man["run_id"],
                b_id=man_b["run_id"], expected=expected)


@pytest.fixture(scope="session")
def tables(demo_run: Path):
    return read_run(demo_run)


@pytest.fixture(scope="session")
def client(demo_run: Path):
    """The app on the demo run (lifespan run once for the session)."""
    with TestClient(create_app(Settings(data=demo_run))) as c:
        yield c


@pytest.fixture(scope="session")
def folder_client(runs: Runs):
    with TestClient(create_app(Settings(data=runs.folder))) as c:
        yield c


@pytest.fixture(scope="session")
def make_client():
    """``make_client(data, **settings)``: a TestClient on a fresh app (use it with ``with``)."""
    def make(data: Path, **settings) -> TestClient:
        return TestClient(create_app(Settings(data=data, **settings)))
    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Live:
    url: str
    max_limit: int


def serve(data: Path, factory: str = "buque.api.app:create_app", **env: str):
    """``uvicorn FACTORY --factory`` on a free loopback port, configured through BUQUE_
    environment variables; yields the base URL and stops the server afterwards. The server's
    output goes to a file (a pipe nobody reads would stall it once full) shown if it fails."""
    import tempfile

    port = free_port()
    full = {**os.environ, "BUQUE_DATA": str(data), **{f"BUQUE_{k.upper()}": v for k, v in env.items()}}
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(REPO / "tests"),
                                                        str(REPO / "tests" / "api"),
                                                        full.get("PYTHONPATH")]))
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", factory, "--factory", "--host",
                                 "127.0.0.1", "--port", str(port), "--log-level", "warning",
                                 "--ws", "none"], cwd=REPO, env=full, stdout=log,
                                stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/conformance", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.seek(0)
                raise RuntimeError(f"server did not start:\n{log.read().decode(errors='replace')}")
            time.sleep(0.2)
        try:
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def live(demo_run: Path):
    """The demo run served with a small page cap (7), so that clients must page."""
    for url in serve(demo_run, max_limit="7", default_limit="5"):
        yield Live(url=url, max_limit=7)


@pytest.fixture(scope="session")
def live_keyed(demo_run: Path):
    """The demo run served with API keys (viewer: v-key, office: o-key)."""
    yield from serve(demo_run, api_keys='{"v-key": "viewer", "o-key": "office"}',
                     max_limit="20")



@pytest.fixture(scope="session")
def hostile_live(hostile_run: Path):
    """The hostile run (tests/hostile_world.py) served by uvicorn."""
    yield from serve(hostile_run)
