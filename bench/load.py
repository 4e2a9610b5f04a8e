"""Load under many users: ``buque serve --workers 1`` vs ``--workers 2`` under ``wrk`` on loopback.

    python -m bench.synth /tmp/buque-province                        # once: the province
    buque run /tmp/buque-province/project.toml --out /tmp/prov/run1
    python -m bench.load /tmp/prov/run1 --write docs/load-benchmark.md

Starts both servers (``python -m buque.cli serve RUN --workers N``) side by side on free ports,
waits until every worker has loaded the run (its CPU time stops growing), then runs ``wrk``
against them in alternation, scenario by scenario, ``--rounds`` times, so that load from other
jobs on a shared machine falls on both alike. Scenarios cycle through many distinct URLs (a Lua
script): the village list (GeoJSON pages of 100 deficient villages, rotating counties,
indicators and offsets) and vector tiles (villages and roads at z11 and z14 where villages are).
Reported: requests/s (median over rounds), latency percentiles of the median round, errors
(socket errors plus non-2xx/3xx answers; must be 0), and the 2-worker/1-worker ratio.
Needs ``wrk`` (Debian: ``apt-get install -y wrk``); installs nothing itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bench:load:begin -->", "<!-- bench:load:end -->"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(run: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUQUE_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen([sys.executable, "-m", "buque.cli", "serve", str(run), "--port",
                             str(port), "--workers", str(workers)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def wait_loaded(proc: subprocess.Popen, url: str, workers: int, t0: float,
                timeout: float = 900) -> float:
    """Seconds from ``t0`` until the server answers and each of its worker processes is idle
    (has loaded the run)."""
    while True:
        try:
            if httpx.get(url + "/conformance", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() - t0 > timeout:
            raise SystemExit(f"server {url} did not start")
        time.sleep(0.5)
    me = psutil.Process(proc.pid)
    last: dict[int, float] = {}
    while time.monotonic() - t0 < timeout:
        procs = [me] if workers == 1 else [
            p for p in me.children(recursive=True) if "multiprocessing" in " ".join(p.cmdline())]
        cpu = {p.pid: sum(p.cpu_times()[:2]) for p in procs}
        if len(procs) >= workers and last and all(abs(cpu[k] - last.get(k, -1)) < 0.05
                                                  for k in cpu):
            return time.monotonic() - t0
        last = cpu
        time.sleep(2)
    raise SystemExit(f"server {url} still busy after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def tile_of(lon: np.ndarray, lat: np.ndarray, z: int) -> np.ndarray:
    n = 2 ** z
    x = np.floor((lon + 180) / 360 * n).astype(int)
    y = np.floor((1 - np.arcsinh(np.tan(np.radians(lat))) / math.pi) / 2 * n).astype(int)
    return np.unique(np.column_stack([x, y]), axis=0)


def scenarios(run: Path, n: int = 400, seed: int = 0) -> dict[str, list[str]]:
    """URL paths per scenario, drawn with a fixed seed."""
    import pandas as pd

    from buque.geo.archive import read_manifest

    rng = np.random.default_rng(seed)
    v = pd.read_parquet(run / "villages.parquet", columns=["county", "ref_lon", "ref_lat"])
    man = read_manifest(run)
    inds = [k for k in ("road", "water", "power", "clinic", "broadband")
            if k in man.get("indicators", ["road", "water", "power", "clinic", "broadband"])]
    counties = sorted(v["county"].dropna().astype(str).unique())
    lists = []
    for i in range(n):
        c = counties[rng.integers(len(counties))]
        ind = inds[i % len(inds)]
        lists.append(f"/collections/villages/items?county={quote(c)}&missing={ind}&limit=100"
                     f"&offset={int(rng.integers(0, 3)) * 100}&f=json")
    tiles = []
    lon, lat = v["ref_lon"].to_numpy(float), v["ref_lat"].to_numpy(float)
    for z in (11, 14):
        xy = tile_of(lon, lat, z)
        pick = xy[rng.choice(len(xy), size=min(n // 4, len(xy)), replace=False)]
        for layer in ("villages", "roads"):
            tiles += [f"/tiles/{layer}/{z}/{x}/{y}.mvt" for x, y in pick]
    rng.shuffle(tiles)
    return {"village list": lists, "tiles": tiles}


LUA = """local paths = {%s}
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], {["Accept-Encoding"] = "gzip"})
end
"""


def wrk(url: str, paths: list[str], seconds: int, conns: int, threads: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % ", ".join('"' + p.replace('"', '\\"') + '"' for p in paths))
        script = f.name
    try:
        done = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency",
                               "--timeout", "30s", "-s", script, url], capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise SystemExit(f"wrk failed on {url}: {done.stdout}{done.stderr}")
        out = done.stdout
    finally:
        os.unlink(script)
    return parse_wrk(out)


def _ms(s: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", s)
    assert m, s
    return float(m[1]) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m[2]]


def parse_wrk(out: str) -> dict[str, float]:
    r: dict[str, float] = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
                           "requests": float(re.search(r"(\d+) requests in", out)[1])}
    for p in ("50", "90", "99"):
        r[f"p{p}"] = _ms(re.search(rf"^\s+{p}(?:\.000)?%\s+(\S+)", out, re.M)[1])
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["errors"] = (sum(int(g) for g in sock.groups()) if sock else 0) + \
        (int(non2xx[1]) if non2xx else 0)
    return r


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run directory (of the synthetic province)")
    ap.add_argument("--seconds", type=int, default=15, help="wrk duration per measurement")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--write", type=Path, help="update this markdown file between markers")
    a = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    paths = scenarios(a.run)
    servers = {}
    try:
        started = {}
        for w in (1, 2):
            started[w] = time.monotonic()
            servers[w] = start(a.run, w)
        load_s = {w: wait_loaded(p, u, w, started[w]) for w, (p, u) in servers.items()}
        for ps in paths.values():  # warm every worker's tile cache (and the lists)
            for _, u in servers.values():
                wrk(u, ps, 2 * a.seconds, a.connections, a.threads)
        res: dict[tuple[str, int], list[dict[str, float]]] = {}
        for rnd in range(a.rounds):
            for name, ps in paths.items():
                order = (1, 2) if rnd % 2 == 0 else (2, 1)
                for w in order:
                    r = wrk(servers[w][1], ps, a.seconds, a.connections, a.threads)
                    res.setdefault((name, w), []).append(r)
                    print(f"round {rnd + 1} {name:12s} workers={w}: {r['rps']:8.1f} req/s "
                          f"p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms errors {r['errors']:.0f}",
                          flush=True)
    finally:
        for p, _ in servers.values():
            stop(p)
    md = report(res, paths, a, load_s)
    print(md)
    if a.write:
        text = a.write.read_text(encoding="utf-8") if a.write.exists() else f"{BEGIN}\n{END}\n"
        if BEGIN not in text:
            text += f"\n{BEGIN}\n{END}\n"
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        a.write.write_text(f"{head}{BEGIN}\n{md}\n{END}{tail}", encoding="utf-8")


def report(res, paths, a, load_s) -> str:
    lines = [f"Measured {dt.date.today():%Y-%m-%d} on {platform.machine()}, "
             f"{os.cpu_count()} logical CPUs shared with other jobs (a noisy machine: read the "
             f"ratio, not the absolute figures); Python {platform.python_version()}. "
             f"`wrk -t{a.threads} -c{a.connections} -d{a.seconds}s`, {a.rounds} rounds "
             "alternating between the two servers (both running, each warmed first); median "
             "round shown. Start-up until every worker had loaded the run (both servers "
             f"starting at once): {load_s[1]:.0f} s (1 worker), {load_s[2]:.0f} s "
             f"(2 workers). Load average at the end: {os.getloadavg()[0]:.1f}.", "",
             "| scenario | distinct URLs | workers | req/s | p50 ms | p90 ms | p99 ms | "
             "requests | errors | req/s ratio 2:1 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, ps in paths.items():
        med = {}
        for w in (1, 2):
            rs = sorted(res[(name, w)], key=lambda r: r["rps"])
            med[w] = rs[len(rs) // 2]
            errors = sum(r["errors"] for r in res[(name, w)])
            reqs = sum(r["requests"] for r in res[(name, w)])
            rps = {k: statistics.median(r["rps"] for r in res[(name, k)]) for k in (1, 2)}
            ratio = f"{rps[2] / rps[1]:.2f}" if w == 2 else ""
            m = med[w]
            lines.append(f"| {name} | {len(ps)} | {w} | {m['rps']:.0f} | {m['p50']:.1f} | "
                         f"{m['p90']:.1f} | {m['p99']:.1f} | {reqs:.0f} | {errors:.0f} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
