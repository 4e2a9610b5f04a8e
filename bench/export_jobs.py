"""Three concurrent bundle export jobs on a county-sized run, and the village list's latency
meanwhile.

    python -m bench.synth /tmp/county --admin 1666 --natural 10000 --roads 12000   # 10 counties
    buque run /tmp/county/project.toml --out /tmp/county-runs/r1
    python -m bench.export_jobs /tmp/county-runs/r1 --write docs/exports-benchmark.md \\
        [--before-repo /path/to/a/checkout/without/jobs]

Starts uvicorn (``BUQUE_DATA=RUN``, a fresh work area, ``BUQUE_EXPORT_WORKERS``) on a free
loopback port. First the village list alone: pages of 100 (``missing=<indicator>&county=
<county>&limit=100``, rotating) sent one after another from one keep-alive client, each timed
until its body is read. Then three bundle jobs with different parameters (so three jobs, not
one cached) are POSTed at once, and the same list requests go on until all three are done; a
second thread polls the jobs. Then the first bundle is asked for again (the cache). With
``--before-repo`` the same three bundles are asked of that checkout's server as three
concurrent ``GET /exports/bundle`` (exports made inside the requests), for comparison.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np

from bench.api_latency import REPO, free_port

BUNDLES = [{"lang": "zh", "paper": "A4"}, {"lang": "en", "paper": "A4"},
           {"lang": "zh", "paper": "A3"}]


def start(run: Path, repo: Path, env: dict[str, str]):
    import subprocess
    import sys

    port = free_port()
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("BUQUE_")},
            "BUQUE_DATA": str(run), "PYTHONPATH": str(repo), **env}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "buque.api.app:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level",
                             "warning"], cwd=repo, env=full)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(url + "/conformance", timeout=2).status_code == 200:
                return proc, url, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("server exited during start-up")
        time.sleep(0.1)


def list_urls(client: httpx.Client):
    summary = client.get("/summary").json()
    counties = sorted({r["county"] for r in summary["rows"] if r["county"]})
    inds = summary["indicators"]
    return lambda i: (f"/collections/villages/items?missing={inds[i % len(inds)]}"
                      f"&county={counties[(i * 7) % len(counties)]}&limit=100")


def timed_lists(client: httpx.Client, url_of, until, n_min: int = 0) -> list[float]:
    """List requests one after another while ``until()`` is false (at least ``n_min``)."""
    times: list[float] = []
    i = 0
    while not until() or len(times) < n_min:
        t0 = time.perf_counter()
        r = client.get(url_of(i))
        _ = r.content
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        i += 1
    return times


def stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"n": len(a), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def with_jobs(url: str) -> dict:
    client = httpx.Client(base_url=url, timeout=120)
    url_of = list_urls(client)
    timed_lists(client, url_of, lambda: True, n_min=20)  # warm up
    alone = timed_lists(client, url_of, lambda: True, n_min=300)
    t0 = time.perf_counter()
    posts = [client.post("/exports", json={"format": "bundle", **b}) for b in BUNDLES]
    post_ms = (time.perf_counter() - t0) * 1000 / len(posts)
    jobs = [p.json() for p in posts]
    assert all(p.status_code == 202 for p in posts), [p.text for p in posts]
    final: dict[str, dict] = {}
    trace: list[tuple[float, list[str]]] = []
    poll_ms: list[float] = []

    def poll() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while len(final) < len(jobs):
                states = []
                for j in jobs:
                    if j["id"] in final:
                        states.append("done")
                        continue
                    t1 = time.perf_counter()
                    doc = c.get(f"/exports/jobs/{j['id']}").json()
                    poll_ms.append((time.perf_counter() - t1) * 1000)
                    states.append(f"{doc['state']} {doc['progress']['fraction']:.0%}")
                    if doc["state"] in ("done", "failed"):
                        final[j["id"]] = {**doc, "wall_s": time.perf_counter() - t0}
                trace.append((time.perf_counter() - t0, states))
                time.sleep(1.0)

    poller = threading.Thread(target=poll)
    poller.start()
    during = timed_lists(client, url_of, lambda: len(final) == len(jobs))
    poller.join()
    results = []
    for j, b in zip(jobs, BUNDLES, strict=True):
        doc = final[j["id"]]
        row = {**b, "state": doc["state"], "wall_s": doc["wall_s"],
               "run_s": _secs(doc["started"], doc["finished"]),
               "queued_s": _secs(doc["created"], doc["started"])}
        if doc["state"] == "done":
            data = client.get(f"/exports/jobs/{j['id']}/download").content
            z = zipfile.ZipFile(io.BytesIO(data))
            row.update(size_mb=len(data) / 1e6, members=len(z.namelist()),
                       valid=z.testzip() is None)
        results.append(row)
    t1 = time.perf_counter()
    again = client.post("/exports", json={"format": "bundle", **BUNDLES[0]})
    cached_ms = (time.perf_counter() - t1) * 1000
    t1 = time.perf_counter()
    got = client.get("/exports/bundle", params=BUNDLES[0])
    cached_get_ms = (time.perf_counter() - t1) * 1000
    return {"alone": stats(alone), "during": stats(during), "jobs": results, "post_ms": post_ms,
            "poll": stats(poll_ms), "cached": {"status": again.status_code, "ms": cached_ms,
                                                "state": again.json()["state"],
                                                "get_status": got.status_code,
                                                "get_ms": cached_get_ms,
                                                "get_mb": len(got.content) / 1e6},
            "trace": trace}


def in_requests(url: str) -> dict:
    """The checkout without jobs: three concurrent GET /exports/bundle made in the requests."""
    client = httpx.Client(base_url=url, timeout=600)
    url_of = list_urls(client)
    timed_lists(client, url_of, lambda: True, n_min=20)
    done: list[dict] = []
    t0 = time.perf_counter()

    def get(b: dict) -> None:
        with httpx.Client(base_url=url, timeout=600) as c:
            r = c.get("/exports/bundle", params=b)
            done.append({**b, "status": r.status_code, "wall_s": time.perf_counter() - t0})

    threads = [threading.Thread(target=get, args=(b,)) for b in BUNDLES]
    for t in threads:
        t.start()
    during = timed_lists(client, url_of, lambda: len(done) == len(BUNDLES))
    for t in threads:
        t.join()
    return {"during": stats(during), "requests": done}


def _secs(a: str | None, b: str | None) -> float:
    if not a or not b:
        return float("nan")
    return (dt.datetime.fromisoformat(b) - dt.datetime.fromisoformat(a)).total_seconds()


def markdown(run: Path, workers: int, res: dict, before: dict | None, meta: dict) -> str:
    a, d = res["alone"], res["during"]
    lines = [
        "# Export jobs on a county-sized run", "",
        f"Measured {meta['date']} with `python -m bench.export_jobs {run} --workers {workers}"
        + (" --before-repo ..." if before else "") + "`: uvicorn (one process) on loopback, "
        f"export jobs in {workers} worker processes (niced), one keep-alive client sending "
        "village-list pages one after another.", "",
        f"- run: {meta['villages']:,} villages in {meta['counties']} counties "
        f"(`{meta['run_id']}`); a bundle is one zip per county (map PDF + PNG, ledger, "
        "GeoPackage) zipped together",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}, Python "
        f"{platform.python_version()}; load average before / after: {meta['load0']} / "
        f"{meta['load1']} (other jobs shared the machine)",
        f"- server start-up: {meta['startup']:.1f} s", "",
        "## The village list (`/collections/villages/items?missing=..&county=..&limit=100`)", "",
        "| while | requests | p50 ms | p95 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|",
        f"| nothing else | {a['n']} | {a['p50']:.1f} | {a['p95']:.1f} | {a['p99']:.1f} | "
        f"{a['max']:.1f} |",
        f"| three bundle jobs run | {d['n']} | {d['p50']:.1f} | {d['p95']:.1f} | "
        f"{d['p99']:.1f} | {d['max']:.1f} |",
    ]
    if before:
        b = before["during"]
        lines.append(f"| three bundles made inside GET requests (before jobs) | {b['n']} | "
                     f"{b['p50']:.1f} | {b['p95']:.1f} | {b['p99']:.1f} | {b['max']:.1f} |")
    verdict = "meets" if d["p95"] < 300 else "does not meet"
    lines += ["", f"Target (issue 16): p95 under 300 ms while three bundle jobs run — "
              f"**{verdict}** it at {d['p95']:.1f} ms.", "",
              "## The jobs", "",
              f"`POST /exports` answered 202 in {res['post_ms']:.1f} ms on average; the job "
              f"documents polled meanwhile took p50 {res['poll']['p50']:.1f} / p95 "
              f"{res['poll']['p95']:.1f} ms.", "",
              "| bundle | state | queued s | ran s | done after s | zip MB | members | valid |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for j in res["jobs"]:
        lines.append(f"| {j['lang']} {j['paper']} | {j['state']} | {j['queued_s']:.0f} | "
                     f"{j['run_s']:.0f} | {j['wall_s']:.1f} | {j.get('size_mb', 0):.1f} | "
                     f"{j.get('members', 0)} | {j.get('valid', False)} |")
    c = res["cached"]
    lines += ["", f"Asked again: `POST /exports` answered {c['status']} (state {c['state']}) in "
              f"{c['ms']:.1f} ms; `GET /exports/bundle` with the same parameters answered "
              f"{c['get_status']} with the {c['get_mb']:.1f} MB zip in {c['get_ms']:.1f} ms."]
    if before:
        lines += ["", "Before jobs, the same three bundles asked as concurrent GET requests "
                  "finished after " + ", ".join(f"{r['wall_s']:.1f} s (HTTP {r['status']})"
                                                for r in sorted(before["requests"],
                                                                key=lambda r: r["wall_s"]))
                  + ": each request held open that long (proxies and clients give up at 60 s)."]
    lines += ["", "Job states as polled (seconds since the POSTs):", "", "```"]
    step = max(1, len(res["trace"]) // 12)
    for t, states in res["trace"][::step]:
        lines.append(f"{t:6.1f}  " + " | ".join(states))
    lines.append("```")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run directory")
    ap.add_argument("--workers", type=int, default=3, help="export workers (default 3: all "
                    "three bundles at once)")
    ap.add_argument("--write", type=Path, default=None, help="write the Markdown report here")
    ap.add_argument("--before-repo", type=Path, default=None,
                    help="also measure a checkout without export jobs")
    a = ap.parse_args(argv)
    from buque.geo.archive import read_manifest, read_villages

    man = read_manifest(a.run)
    v = read_villages(a.run)
    meta = {"date": dt.date.today().isoformat(), "run_id": man["run_id"], "villages": len(v),
            "counties": int(v["county"].nunique()),
            "load0": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="buque-bench-work-") as work:
        proc, url, meta["startup"] = start(a.run, REPO, {"BUQUE_WORK": work,
                                                          "BUQUE_EXPORT_WORKERS": str(a.workers)})
        try:
            res = with_jobs(url)
        finally:
            proc.terminate()
            proc.wait(30)
    before = None
    if a.before_repo:
        proc, url, _ = start(a.run, a.before_repo, {})
        try:
            before = in_requests(url)
        finally:
            proc.terminate()
            proc.wait(30)
    meta["load1"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    md = markdown(a.run, a.workers, res, before, meta)
    print(md)
    if a.write:
        a.write.write_text(md, encoding="utf-8")


if __name__ == "__main__":
    main()
