"""Planning benchmark: ``buque plan`` side by side with ``buque run`` on the same province, and
``GET /whatif`` latency.

    python -m bench.plan [--data /tmp/buque-province] [--reps 3] [--budget-share 0.3]

Generates the province (``python -m bench.synth DIR``) if absent; runs ``buque run`` and then
``buque plan`` in fresh processes in alternating order (wall time, median of ``--reps``); times
``/whatif`` in-process (TestClient, the run loaded once) over a mix of parameter sets; prints the
acceptance figures (funded cost vs budget, planned line km vs the per-village straight lines).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _timed(*args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "buque.cli", *args], env=env, capture_output=True,
                       text=True)
    if p.returncode:
        raise SystemExit(p.stderr)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default="/tmp/buque-province")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--budget-share", type=float, default=0.3)
    ap.add_argument("--whatif-requests", type=int, default=50)
    a = ap.parse_args(argv)
    data = Path(a.data)
    if not (data / "project.toml").is_file():
        subprocess.run([sys.executable, "-m", "bench.synth", str(data)], check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    work = Path(tempfile.mkdtemp(prefix="buque-plan-bench-"))
    run = work / "runs" / "run"
    _timed("run", str(data / "project.toml"), "--out", str(run))
    full_dir = work / "plans" / "full"
    _timed("plan", str(run), "--out", str(full_dir))
    full = json.loads((full_dir / "plan.json").read_text())["totals"]["cost"]
    budget = f"{full * a.budget_share:.0f}"
    t_run, t_plan = [], []
    for i in range(a.reps):
        jobs = [("run", lambda: t_run.append(_timed("run", str(data / "project.toml"), "--out",
                                                     str(work / "runs" / "again")))),
                ("plan", lambda: t_plan.append(_timed("plan", str(run), "--budget", budget,
                                                      "--out", str(work / "plans" / "b"))))]
        for _, job in (jobs if i % 2 == 0 else jobs[::-1]):
            job()
    meta = json.loads((work / "plans" / "b" / "plan.json").read_text())
    from fastapi.testclient import TestClient

    from buque.api.app import create_app
    from buque.api.settings import Settings

    sets = [[], ["water.threshold_m=1000"], ["water.threshold_m=1000", "road.unit_cost=800000"],
            ["power.threshold_m=300", "county.x=1.4"], ["road.threshold_m=1000"]]
    lat = []
    with TestClient(create_app(Settings(data=work / "runs" / "run"))) as c:
        c.get("/whatif")  # builds the run's arrays once
        for i in range(a.whatif_requests):
            q = "&".join(f"set={s}" for s in sets[i % len(sets)])
            t0 = time.perf_counter()
            r = c.get(f"/whatif?{q}")
            lat.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text
    import pandas as pd

    g = pd.read_parquet(run / "gaps.parquet")
    w = pd.read_parquet(work / "plans" / "b" / "works.parquet")
    print(f"province: {g['village_code'].nunique():,} villages assessed, "
          f"{(g['status'] == 'missing').sum():,} missing pairs")
    print(f"buque run  : median {statistics.median(t_run):.2f} s  ({', '.join(f'{x:.2f}' for x in t_run)})")
    print(f"buque plan : median {statistics.median(t_plan):.2f} s  ({', '.join(f'{x:.2f}' for x in t_plan)})")
    lat.sort()
    print(f"/whatif    : median {statistics.median(lat):.1f} ms, p95 {lat[int(0.95 * len(lat)) - 1]:.1f} ms, "
          f"max {lat[-1]:.1f} ms over {len(lat)} requests")
    t = meta["totals"]
    print(f"budget {float(budget):,.0f} CNY, funded {t['funded_cost']:,.0f} CNY "
          f"({t['funded_works']:,} of {t['works']:,} works), full plan {full:,.0f} CNY")
    for ind in ("power", "water", "road"):
        gi = g[(g["indicator"] == ind) & (g["status"] == "missing")]
        km = w.loc[(w["indicator"] == ind) & (w["action"] == "extend"), "line_m"].sum() / 1000
        print(f"{ind}: planned {km:,.1f} km vs per-village straight lines "
              f"{gi['distance_m'].sum() / 1000:,.1f} km (ratio {km / (gi['distance_m'].sum() / 1000):.3f})")


if __name__ == "__main__":
    main()
