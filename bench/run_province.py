"""Province-scale benchmark: ``buque run`` side by side with the naive GeoPandas approach.

    python -m bench.run_province [--data DIR] [--reps 3] [--write docs/benchmarks.md]

Generates the synthetic province if DIR has none (bench/synth.py), then, alternating the order
in every repetition so both see the same machine state:

1. end to end, each in a fresh process: ``buque run`` (read, assess, remedies, rates, write the
   whole archive) vs two naive GeoPandas baselines: *minimal* (``python -m bench.naive``: read,
   one ``sjoin_nearest`` per indicator, met/missing; writes nothing) and *like for like*
   (``--full``: also the bounded joins that tell unknown and upgrade cases, remedies, rates,
   and the same outputs written with geopandas/pandas defaults);
2. the engine alone, in one process on layers already in memory: ``geo.gaps.assess`` vs
   ``naive_assess`` and ``naive_assess_full`` (all include projecting to metres).

Reports medians, peak RSS (of each fresh process) and the ratios. Times vary with the machine's
load: compare ratios from one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.docs import write_section

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(tempfile.gettempdir()) / "buque-province"

_MEASURE = """
import resource, subprocess, sys, time

t = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - t
if r.returncode:
    sys.stderr.write(r.stderr); sys.exit(r.returncode)
print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measure(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of ``cmd`` run in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.split()
    return float(out[0]), float(out[1]) / 1024


def end_to_end(data: Path, reps: int) -> dict[str, list[tuple[float, float]]]:
    project = data / "project.toml"
    res: dict[str, list[tuple[float, float]]] = {"buque": [], "naive": [], "naive_full": [],
                                                 "imports": []}
    with tempfile.TemporaryDirectory() as tmp:
        cmds = {"buque": [sys.executable, "-m", "buque.cli", "run", str(project), "--out",
                          str(Path(tmp) / "run")],
                "naive": [sys.executable, "-m", "bench.naive", str(data)],
                "naive_full": [sys.executable, "-m", "bench.naive", str(data), "--full",
                               str(Path(tmp) / "naive")],
                # what of Buque's time is the interpreter starting and importing its modules
                "imports": [sys.executable, "-c", "import buque.cli, buque.geo.run"]}
        names = list(cmds)
        for r in range(reps):
            for name in names[r % len(names):] + names[:r % len(names)]:
                res[name].append(measure(cmds[name]))
                print(f"  end-to-end {name:10s} rep {r + 1}: {res[name][-1][0]:.2f} s, "
                      f"{res[name][-1][1]:.0f} MiB", flush=True)
    return res


def engine(data: Path, reps: int) -> dict[str, list[float]]:
    from bench.naive import naive_assess, naive_assess_full, read_layers
    from buque.geo.gaps import assess
    from buque.geo.run import load_layers, prepare_villages
    from buque.layers.errors import Report
    from buque.layers.profile import load_profile
    from buque.layers.project import load_project
    from buque.layers.schema import VILLAGE_LAYERS

    project = load_project(data / "project.toml")
    profile = load_profile(project.standard)
    report = Report()
    layers, _ = load_layers(project, report)
    villages = prepare_villages(layers, report)
    features = {k: g for k, g in layers.items() if k not in VILLAGE_LAYERS}
    naive_layers = read_layers(data)
    runs = {"buque": lambda: assess(villages, features, profile),
            "naive": lambda: naive_assess(naive_layers),
            "naive_full": lambda: naive_assess_full(naive_layers)}
    res: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for r in range(reps):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            runs[name]()
            res[name].append(time.perf_counter() - t)
            print(f"  engine     {name:10s} rep {r + 1}: {res[name][-1]:.2f} s", flush=True)
    return res


def counts(data: Path) -> dict[str, int]:
    import pyogrio

    return {p.stem: int(pyogrio.read_info(p)["features"]) for p in sorted(data.glob("*.gpkg"))}


def table(e2e: dict, eng: dict, n: dict[str, int]) -> str:
    med = statistics.median
    wall = {k: med(w for w, _ in v) for k, v in e2e.items()}
    rss = {k: max(m for _, m in v) for k, v in e2e.items()}
    en = {k: med(v) for k, v in eng.items()}
    sizes = ", ".join(f"{k} {v:,}" for k, v in n.items())
    return "\n".join([
        f"Synthetic province ({sizes}); {platform.processor() or platform.machine()}, "
        f"{_cores()} cores; medians of {len(eng['buque'])} repetitions in rotating order, "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "| measure | Buque | naive, minimal | ratio | naive, like for like | ratio |",
        "|---|---|---|---|---|---|",
        f"| end to end, wall (s) | {wall['buque']:.2f} | {wall['naive']:.2f} | "
        f"{wall['naive'] / wall['buque']:.2f}× | {wall['naive_full']:.2f} | "
        f"{wall['naive_full'] / wall['buque']:.2f}× |",
        f"| end to end, peak RSS of the largest process (MiB) | {rss['buque']:.0f} | {rss['naive']:.0f} | | "
        f"{rss['naive_full']:.0f} | |",
        f"| engine only, layers in memory (s) | {en['buque']:.2f} | {en['naive']:.2f} | "
        f"{en['naive'] / en['buque']:.2f}× | {en['naive_full']:.2f} | "
        f"{en['naive_full'] / en['buque']:.2f}× |",
        "",
        "Ratio = naive time / Buque time (above 1: Buque is faster). *Minimal*: one "
        "`sjoin_nearest` per indicator, met/missing only, nothing written — less than the job. "
        "*Like for like*: the same job (unknown status and upgrade cases from bounded "
        "`sjoin_nearest`s, remedies, rates, the archive written with geopandas/pandas "
        f"defaults). Buque end to end includes its start-up: {wall['imports']:.2f} s for the "
        "interpreter and its imports alone (measured the same way). `buque run` reads and "
        "assesses part of the layers in a second process (docs/processes.md): its peak RSS "
        "is that of the larger of the two.",
    ])


def _cores() -> int:
    import os

    return os.cpu_count() or 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help=f"synthetic province folder (generated if absent; default {DEFAULT_DATA})")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each measure (default 3)")
    ap.add_argument("--write", type=Path, default=None, help="update this Markdown file's table")
    a = ap.parse_args(argv)
    if not (a.data / "project.toml").is_file():
        print(f"generating the synthetic province in {a.data} …", flush=True)
        subprocess.run([sys.executable, "-m", "bench.synth", str(a.data)], cwd=REPO, check=True)
    print("end to end (fresh processes):", flush=True)
    e2e = end_to_end(a.data, a.reps)
    print("engine only (in process):", flush=True)
    eng = engine(a.data, a.reps)
    text = table(e2e, eng, counts(a.data))
    print()
    print(text)
    print(json.dumps({"end_to_end": e2e, "engine": eng}))
    if a.write:
        write_section(a.write, "province", "Province: `buque run` vs naive GeoPandas", text)


if __name__ == "__main__":
    main()
