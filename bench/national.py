"""National-scale benchmark: ``buque run`` on synthetic countries of growing size.

    python -m bench.national [--sizes 10000 100000 1000000 2600000] [--write docs/benchmarks.md]

For each size (natural villages; administrative villages = natural / 5.2, road segments =
2 x natural, the other layers in bench/synth.py's proportions), in increasing order:

1. generate the project IN A STREAM (``python -m bench.synth DIR --stream``): 40 province-like
   blocks over lon 98-122, lat 22-42 (UTM zones 47-51), each made and appended to the
   GeoPackages before the next, so generation memory is that of one block; below 500k
   administrative villages the blocks shrink around their cells' centres (constant density);
2. time ``buque run DIR/project.toml --out RUN`` in a fresh process, through a wrapper process
   that reports wall time and peak RSS (``resource.getrusage(RUSAGE_CHILDREN)``), timestamps the
   CLI's step messages (phase times) and samples the RSS every 0.2 s (peak per phase). The run
   is killed, and the larger sizes skipped, when it exceeds ``--max-rss-gb`` or
   ``--max-minutes``;
3. delete the generated data and the run (unless ``--keep``).

Prints (and with ``--write`` records in docs/benchmarks.md) a table of time and memory against
size, with the time per village, so the growth is visible. Times vary with the machine's load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.docs import code_state, write_section

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = Path(tempfile.gettempdir()) / "buque-national"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000, 2_600_000)
TARGET_S, TARGET_GB = 300.0, 16.0

# The wrapper: runs argv[3:], enforces the limits (argv[1] MiB, argv[2] s), timestamps stderr
# lines, samples RSS; prints one JSON line. getrusage(RUSAGE_CHILDREN) covers only its child.
_MEASURE = r"""
import json, os, resource, subprocess, sys, threading, time

limit_mib, limit_s = float(sys.argv[1]), float(sys.argv[2])
cmd = sys.argv[3:]
t0 = time.perf_counter()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                     env={**os.environ, "COLUMNS": "250"})
lines, samples = [], []
def reader():
    for line in p.stderr:
        lines.append((time.perf_counter() - t0, line.rstrip()))
th = threading.Thread(target=reader, daemon=True); th.start()
def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for row in f:
                if row.startswith("VmRSS:"):
                    return int(row.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0
killed = None
while p.poll() is None:
    t = time.perf_counter() - t0
    m = rss_mib(p.pid)
    samples.append((t, m))
    if m > limit_mib:
        killed = f"RSS {m:.0f} MiB over the limit {limit_mib:.0f} MiB"
    elif t > limit_s:
        killed = f"wall {t:.0f} s over the limit {limit_s:.0f} s"
    if killed:
        p.kill(); p.wait(); break
    time.sleep(0.2)
wall = time.perf_counter() - t0
th.join(5)
print(json.dumps({"wall": wall, "rc": p.returncode, "killed": killed,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "lines": lines, "samples": samples}))
"""

# CLI step messages that start each phase (geo.run.run_project's ``step`` calls)
PHASES = [("read", "reading "), ("villages", "preparing villages"), ("assess", "assessing "),
          ("tables+write", "remedies, rates, archive"), ("exit", "run written to ")]


def measure(cmd: list[str], limit_mib: float, limit_s: float) -> dict:
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(limit_mib), str(limit_s), *cmd],
                         capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise RuntimeError(f"wrapper failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def phases(res: dict) -> dict[str, dict[str, float]]:
    """Start, duration and peak sampled RSS of each phase, from the timestamped step lines."""
    starts: dict[str, float] = {"start-up": 0.0}
    for name, prefix in PHASES:
        for t, line in res["lines"]:
            text = line.split("] ", 1)[-1].strip()
            if text.startswith(prefix) or line.strip().startswith(prefix):
                starts[name] = t
                break
    names = list(starts)
    out = {}
    for i, name in enumerate(names):
        end = starts[names[i + 1]] if i + 1 < len(names) else res["wall"]
        inside = [m for t, m in res["samples"] if starts[name] <= t <= end]
        before = [m for t, m in res["samples"] if t <= end]
        peak = max(inside) if inside else (before[-1] if before else 0.0)
        out[name] = {"start": starts[name], "seconds": end - starts[name], "peak_mib": peak}
    return out


def generate(data: Path, natural: int, seed: int) -> dict:
    admin = max(40, round(natural / 5.2))
    cmd = [sys.executable, "-m", "bench.synth", str(data), "--stream", "--admin", str(admin),
           "--natural", str(natural), "--roads", str(2 * natural), "--seed", str(seed)]
    print("  $ " + " ".join(cmd[1:]), flush=True)
    res = measure(cmd, 18 * 1024, 3600)
    if res["rc"]:
        raise RuntimeError("generation failed:\n" + "\n".join(x for _, x in res["lines"][-20:]))
    import pyogrio

    counts = {p.stem: int(pyogrio.read_info(p)["features"]) for p in sorted(data.glob("*.gpkg"))}
    size = sum(p.stat().st_size for p in data.glob("*.gpkg"))
    return {"admin": admin, "wall": res["wall"], "maxrss_mib": res["maxrss_mib"],
            "counts": counts, "bytes": size}


def bench_size(root: Path, natural: int, seed: int, limit_mib: float, limit_s: float,
               keep: bool) -> dict:
    data = root / f"n{natural}"
    run = root / f"run-n{natural}"
    shutil.rmtree(run, ignore_errors=True)
    try:
        print(f"size {natural:,} natural villages: generating …", flush=True)
        gen = generate(data, natural, seed)
        print(f"  generated {sum(gen['counts'].values()):,} features "
              f"({gen['bytes'] / 1e6:,.0f} MB) in {gen['wall']:.1f} s, peak "
              f"{gen['maxrss_mib']:,.0f} MiB", flush=True)
        print(f"  disk: {_df(root)}", flush=True)
        cmd = [sys.executable, "-m", "buque.cli", "run", str(data / "project.toml"), "--out",
               str(run)]
        print("  $ buque run " + " ".join(cmd[4:]), flush=True)
        res = measure(cmd, limit_mib, limit_s)
        ph = phases(res)
        row = {"natural": natural, "gen": gen, "wall": res["wall"], "rc": res["rc"],
               "killed": res["killed"], "maxrss_mib": res["maxrss_mib"], "phases": ph}
        if res["rc"] == 0 and (run / "manifest.json").is_file():
            m = json.loads((run / "manifest.json").read_text())
            row["assessed"] = m["counts"]["assessed"]
            row["metric_crs"] = m["metric_crs"]
            row["run_bytes"] = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
        elif not res["killed"]:
            row["error"] = "\n".join(x for _, x in res["lines"][-30:])
        status = res["killed"] or ("ok" if res["rc"] == 0 else f"exit {res['rc']}")
        print(f"  buque run: {res['wall']:.1f} s, peak RSS {res['maxrss_mib']:,.0f} MiB ({status})")
        for name, p in ph.items():
            print(f"    {name:13s} {p['seconds']:8.1f} s   peak {p['peak_mib']:8,.0f} MiB")
        if row.get("error"):
            print(row["error"])
        return row
    finally:
        if not keep:
            shutil.rmtree(run, ignore_errors=True)
            shutil.rmtree(data, ignore_errors=True)


def _df(path: Path) -> str:
    u = shutil.disk_usage(path)
    return f"{u.free / 1e9:.0f} GB free of {u.total / 1e9:.0f} GB"


def table(rows: list[dict], skipped: list[int], cmdline: str) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} with `{cmdline}`; {platform.machine()}, "
        f"{os.cpu_count()} cores, {_mem_gb():.0f} GB RAM, shared with other jobs (load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end); Python "
        f"{platform.python_version()}; code: {code_state()}.",
        "",
        "Synthetic country: 40 province-like blocks over lon 98–122°, lat 22–42° (Buque measures "
        "it in UTM zones 47–51), generated in a stream (`python -m bench.synth DIR --stream`, "
        "one block in memory at a time) into GeoPackages; administrative villages = natural / "
        "5.2, road segments = 2 × natural, the other layers in `bench/synth.py`'s proportions. "
        "Below 500k administrative villages the blocks shrink around their centres, so density "
        "and the met/missing mix stay the same at every size. `buque run` in a fresh process; "
        "wall time and peak RSS from `getrusage(RUSAGE_CHILDREN)` in a wrapper process; phase "
        "times from the CLI's timestamped step messages.",
        "",
        "| natural villages | admin villages | road segments | all features | buque run wall (s) "
        "| µs per village | peak RSS (GiB) | KiB per village | start-up / read / villages / "
        "assess / tables+write (s) | generation (s, peak MiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        c = r["gen"]["counts"]
        nv = c.get("villages", 0) + c.get("natural_villages", 0)
        ph = r["phases"]
        steps = " / ".join(f"{ph[k]['seconds']:.1f}" if k in ph else "–"
                           for k in ("start-up", "read", "villages", "assess", "tables+write"))
        wall = f"{r['wall']:.1f}" + ("" if r["rc"] == 0 else f" ({r['killed'] or 'failed'})")
        lines.append(
            f"| {r['natural']:,} | {c.get('villages', 0):,} | {c.get('roads', 0):,} | "
            f"{sum(c.values()):,} | {wall} | {r['wall'] / nv * 1e6:.1f} | "
            f"{r['maxrss_mib'] / 1024:.2f} | {r['maxrss_mib'] * 1024 / nv:.1f} | {steps} | "
            f"{r['gen']['wall']:.0f}, {r['gen']['maxrss_mib']:,.0f} |")
    if skipped:
        lines += ["", "Not run (a smaller size exceeded a limit): "
                  + ", ".join(f"{s:,}" for s in skipped) + " natural villages."]
    full = [r for r in rows if r["natural"] >= 2_600_000 and r["rc"] == 0]
    lines.append("")
    if full:
        r = full[-1]
        ok_t, ok_m = r["wall"] < TARGET_S, r["maxrss_mib"] / 1024 < TARGET_GB
        lines.append(f"Target (issue 6): 2.6 M natural / 500k administrative villages / ≥5 M road "
                     f"segments under {TARGET_S / 60:.0f} minutes and {TARGET_GB:.0f} GB peak — "
                     f"{r['wall']:.0f} s ({'met' if ok_t else '**missed**'}), "
                     f"{r['maxrss_mib'] / 1024:.1f} GiB ({'met' if ok_m else '**missed**'}).")
    elif any(r["natural"] >= 2_600_000 for r in rows) or any(s >= 2_600_000 for s in skipped):
        lines.append("Target (issue 6): 2.6 M natural villages under 5 minutes and 16 GB — "
                     "**not reached** (the full size did not complete; see above).")
    else:
        lines.append("Target (issue 6): not measured (the sizes run stop below 2.6 M natural "
                     "villages).")
    return "\n".join(lines)


def _mem_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 0.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                    help="natural villages per size, run in increasing order "
                         "(default 10000 100000 1000000 2600000)")
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                    help=f"folder for generated data and runs (default {DEFAULT_ROOT})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-rss-gb", type=float, default=18.0,
                    help="kill a run above this RSS and skip larger sizes (default 18)")
    ap.add_argument("--max-minutes", type=float, default=15.0,
                    help="kill a run after this long and skip larger sizes (default 15)")
    ap.add_argument("--keep", action="store_true", help="keep generated data and runs")
    ap.add_argument("--write", type=Path, default=None, help="update this Markdown file")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    a = ap.parse_args(argv)
    a.root.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    sizes = sorted(a.sizes)
    skipped: list[int] = []
    for i, n in enumerate(sizes):
        row = bench_size(a.root, n, a.seed, a.max_rss_gb * 1024, a.max_minutes * 60, a.keep)
        rows.append(row)
        if row["rc"] != 0:
            skipped = sizes[i + 1:]
            print(f"stopping: size {n:,} did not complete ({row.get('killed') or 'failed'})")
            break
    cmdline = "python -m bench.national " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(rows, skipped, cmdline.strip())
    print()
    print(text)
    if a.json:
        slim = [{k: v for k, v in r.items()} for r in rows]
        a.json.write_text(json.dumps(slim, indent=1))
    if a.write:
        write_section(a.write, "national", "National: `buque run` against size", text)
    if not a.keep:
        with contextlib.suppress(OSError):
            a.root.rmdir()


if __name__ == "__main__":
    main()
