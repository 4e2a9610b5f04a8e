"""The ``buque`` command: run, demo, serve, standards. Commands call the same functions as the API."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from buque.layers.errors import BuqueInputError
from buque.layers.schema import COUNT_COLUMNS

#: set by a command whose work is done and written: :func:`main` then ends the process without
#: freeing the run's objects one by one (2.4 s at national size, of a 93 s run)
_EXIT_NOW = [False]

app = typer.Typer(help="Buque (补缺): find what each village lacks against the national standard "
                  "and plan what fills it.", no_args_is_help=True, add_completion=False)
standards_app = typer.Typer(help="List and show standards profiles.", no_args_is_help=True)
app.add_typer(standards_app, name="standards")
console = Console(stderr=True, log_path=False)  # log lines end in the message, not "cli.py:52"
DEMO_PROJECT = Path(__file__).resolve().parent.parent / "layers" / "demo" / "andorra.toml"


def _fail(e: Exception) -> None:
    # the message is printed literally: "[layers.road]" is text, not rich markup
    console.print(Text.assemble(("error: ", "bold red"), str(e)), highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _run(project: Path, out: Path, standard: str | None, **engine):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from buque.geo.distributed import EngineError
    from buque.geo.run import run_project

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    t0 = time.perf_counter()
    with Progress(*columns, console=console, transient=True) as bar:
        stage = bar.add_task("starting", total=None, rate="")
        work: dict[str, int] = {}

        def step(msg: str) -> None:
            console.log(msg, markup=False)
            bar.update(stage, description=escape(msg))

        def progress(done: int, total: int, label: str) -> None:
            if "task" not in work:
                work["task"] = bar.add_task("assessing", total=total, rate="")
                work["t"] = time.perf_counter()
            rate = done / max(time.perf_counter() - work["t"], 1e-6)
            bar.update(work["task"], completed=done, description=f"assessing ({label})",
                       rate=f"{rate:,.0f} pairs/s")

        try:
            # fork_safe: this process's other thread only draws the progress bar
            result = run_project(project, out, standard=standard, step=step, progress=progress,
                                 fork_safe=True, **engine)
        except (BuqueInputError, FileExistsError, EngineError) as e:
            _fail(e)
    console.log(f"run written to [bold]{escape(str(result.out))}[/] in "
                f"{time.perf_counter() - t0:.2f} s")
    return result


def print_summary(result) -> None:
    """A short table: villages assessed, gaps per indicator, rates, total remedy cost."""
    m = result.manifest
    c = m["counts"]
    out = Console()
    out.print(f"[bold]{escape(str(m['project']['name']))}[/] · profile "
              f"{escape(str(m['profile']['name']))} {escape(str(m['profile']['version']))} · "
              f"run {m['run_id']}")
    out.print(f"villages in {c['villages_in']:,} · assessed {c['assessed']:,} · rejected "
              f"{c['rejected']:,} · unlocated {c['unlocated']:,} · warnings {c['warnings']:,}")
    summ = result.tables.summary
    county = summ[summ["scope"] == "county"]
    tot = county.groupby("indicator", sort=False)[list(COUNT_COLUMNS)].sum()
    proj = result.tables.projects
    cost = proj.groupby("indicator")["cost"].sum() if len(proj) else {}
    from buque.layers.profile import load_profile  # noqa: PLC0415

    prof = load_profile(m["profile"]["path"])
    head = ("indicator", *COUNT_COLUMNS, "rate", "target",
            "cost (CNY)")
    rows = []
    for key, ind in prof.indicators.items():
        if key not in tot.index:
            continue
        r = tot.loc[key]
        rate = r["met"] / r["assessed"] if r["assessed"] else float("nan")
        rows.append((f"{key} {ind.label_zh}", f"{r['assessed']:,}", f"{r['met']:,}",
                     f"{r['missing']:,}", f"{r['unknown']:,}", f"{rate:.1%}",
                     f"{ind.target_rate:.0%}", f"{float(cost.get(key, 0)):,.0f}"))
    _print_table(out, head, rows)
    for key, lvl in (m.get("fallback") or {}).items():
        ind = prof.indicators.get(key)
        out.print(Text(f"{key} {ind.label_zh if ind else ''}: assessed at the {lvl} village "
                       "(the profile's fallback; see warnings.csv)", style="yellow"))
    for key, why in (m.get("not_assessed") or {}).items():
        ind = prof.indicators.get(key)
        out.print(Text(f"{key} {ind.label_zh if ind else ''}: not assessed: {why} "
                       "(see warnings.csv)", style="yellow"))
    out.print(f"total remedy cost: [bold]{c['remedy_cost']:,.0f} CNY[/] "
              f"({len(proj):,} project rows)")
    for a in m.get("attribution", []):
        out.print(Text(str(a), style="dim"))


def _print_table(out: Console, head: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table whose cells are never cut: columns are as wide as their widest cell (measured in
    terminal cells, so a Chinese label counts double); a terminal too narrow for that gets one
    line per row instead."""
    from rich import box  # noqa: PLC0415
    from rich.cells import cell_len  # noqa: PLC0415

    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False)
    widths = [max([cell_len(r[i]) for r in rows] + [max(cell_len(w) for w in h.split())])
              for i, h in enumerate(head)]
    for i, (h, width) in enumerate(zip(head, widths, strict=True)):
        t.add_column(h, no_wrap=True, min_width=width, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*(Text(c) for c in r))
    probe = Console(width=10_000, file=io.StringIO(), color_system=None)
    with probe.capture() as cap:
        probe.print(t)
    if max(cell_len(line.rstrip()) for line in cap.get().splitlines()) <= out.width:
        out.print(t)
        return
    for r in rows:
        out.print(Text(r[0] + ": " + " · ".join(f"{h} {c}" for h, c in zip(head[1:], r[1:],
                                                                         strict=True))))


@app.command()
def run(
    project: Annotated[Path, typer.Argument(help="Project TOML naming the input layers.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write (replaced "
                                      "atomically if it holds an earlier run).")],
    standard: Annotated[str | None, typer.Option(help="Standards profile: a bundled name or a "
                                                 "TOML path; overrides the project's.")] = None,
    engine: Annotated[str, typer.Option(help="local (this process) or dask (partitions of the "
                                        "villages on a Dask cluster; same results).")] = "local",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address, e.g. "
                                                  "tcp://host:8786 (default with --engine dask: "
                                                  "a local cluster of 2 workers).")] = None,
    partitions: Annotated[int | None, typer.Option(min=1, help="About how many partitions "
                                                   "(default 4 per Dask worker).")] = None,
    with_plan: Annotated[Path | None, typer.Option("--with-plan", help="A plan (buque plan): "
                                                   "assess with its funded works added.")] = None,
    processes: Annotated[int | None, typer.Option(min=1, max=2, help="Local engine: 2 reads "
                                                  "and assesses part of the layers in a second "
                                                  "process (same archive), 1 keeps to one; "
                                                  "default: 2 for 16-256 MiB of input files "
                                                  "on two or more CPUs.")] = None,
) -> None:
    """Assess every village of PROJECT and write the run archive to OUT."""
    if engine not in ("local", "dask"):
        _fail(typer.BadParameter(f"--engine must be local or dask, got {engine!r}"))
    if engine == "local" and (scheduler or partitions):
        _fail(typer.BadParameter("--scheduler and --partitions need --engine dask"))
    if processes is not None and engine != "local":
        _fail(typer.BadParameter("--processes is for --engine local"))
    extra: dict = {"with_plan": with_plan} if with_plan is not None else {}
    if processes is not None:
        extra["processes"] = processes
    print_summary(_run(project, out, standard, engine=engine, scheduler=scheduler,
                       partitions=partitions, **extra))
    _EXIT_NOW[0] = True  # the archive is written: nothing is left to tear down



@app.command()
def demo(
    data: Annotated[Path, typer.Option(help="Folder for demo runs.")] = Path("buque-data"),
    serve_: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the API and gap map "
                                         "after the run.")] = True,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Run the bundled demo (real OpenStreetMap data of a mountain area) and serve it."""
    from buque.geo.run import run_project  # noqa: F401  (import errors surface before the spinner)

    stamp = time.strftime("%Y%m%dT%H%M%S")
    result = _run(DEMO_PROJECT, data / f"demo-{stamp}", None)
    print_summary(result)
    Console().print(f"outputs: [bold]{escape(str(result.out))}[/]")
    if serve_:
        _serve(data, host, port)


def _serve(data: Path | None, host: str, port: int, postgres: str | None = None,
           schema: str = "buque", basemap: Path | None = None, workers: int = 1) -> None:
    import uvicorn

    from buque.api.app import create_app
    from buque.api.settings import Settings

    if basemap is not None:  # a bad file is a one-line error before anything starts
        from buque.geo.basemap import BasemapError, open_basemap

        try:
            open_basemap(basemap).close()
        except BasemapError as e:
            _fail(e)
    where = str(data)
    if workers > 1:
        _serve_workers(data, host, port, postgres, schema, basemap, workers)
        return
    settings = (Settings(data=data, basemap=basemap) if postgres is None
                else Settings(postgres=postgres, pg_schema=schema, basemap=basemap))
    app = create_app(settings)
    if postgres is not None:  # open the store here: a bad DSN is a one-line error, not a trace
        from buque.api.pgstore import PgRunStore, PgStoreError

        try:
            app.state.store = PgRunStore(postgres, schema, preload=settings.preload)
        except PgStoreError as e:
            _fail(e)
        where = app.state.store.label
    Console().print(f"serving {escape(where)} on http://{host}:{port}  (API docs /docs, map /map; "
                    "Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _serve_workers(data: Path | None, host: str, port: int, postgres: str | None, schema: str,
                   basemap: Path | None, workers: int) -> None:
    from buque.api.serving import serve_workers

    env = {"BUQUE_DATA": str(data.resolve()) if data is not None else None,
           "BUQUE_POSTGRES": postgres, "BUQUE_PG_SCHEMA": schema if postgres else None,
           "BUQUE_BASEMAP": str(basemap.resolve()) if basemap is not None else None}
    Console().print(f"serving {escape(postgres and 'PostgreSQL' or str(data))} on "
                    f"http://{host}:{port} with {workers} workers  (API docs /docs, map /map; "
                    "Ctrl-C stops)")
    serve_workers(env, host, port, workers)


PgOption = Annotated[str | None, typer.Option(
    "--postgres", help="A PostgreSQL/PostGIS database (libpq DSN or postgresql:// URL).")]
SchemaOption = Annotated[str, typer.Option("--schema", help="The schema holding Buque's tables.")]


@app.command()
def serve(
    data: Annotated[Path | None, typer.Argument(
        help="A run directory or a folder of runs (not with --postgres).")] = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    postgres: PgOption = None,
    schema: SchemaOption = "buque",
    basemap: Annotated[Path | None, typer.Option(
        help="An own basemap drawn under the gaps on /map: a PMTiles (raster or vector) or "
        "MBTiles file, served by this server (no internet needed).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes (each loads "
                                         "the runs once); for many users at once.")] = 1,
) -> None:
    """Serve the API (OGC API - Features) and the gap map for a run or a folder of runs, or for
    the runs published into PostGIS (--postgres). With BUQUE_API_KEYS set, browsers sign in at
    /login (see docs/deploy.md)."""
    if postgres is not None:
        if data is not None:
            _fail(typer.BadParameter("give either DIR or --postgres, not both"))
        _serve(None, host, port, postgres=postgres, schema=schema, basemap=basemap,
               workers=workers)
        return
    if data is None:
        _fail(typer.BadParameter("give a run directory or folder of runs (or --postgres DSN)"))
    if not data.exists():
        _fail(FileNotFoundError(f"{data}: no such run or folder"))
    _serve(data, host, port, basemap=basemap, workers=workers)


@app.command()
def publish(
    run: Annotated[Path, typer.Argument(help="A run directory (written by buque run) or a "
                                        "plan (buque plan).")],
    postgres: Annotated[str, typer.Option(
        "--postgres", help="The PostgreSQL/PostGIS database (libpq DSN or postgresql:// URL).")],
    schema: SchemaOption = "buque",
) -> None:
    """Load a run (or a plan: buque plan) into PostGIS (GiST-indexed), replacing an earlier copy
    of the same run in one transaction; serve it with buque serve --postgres."""
    from buque.api.pgstore import PgStoreError
    from buque.api.pgstore import publish as publish_run
    from buque.geo.archive import is_run
    from buque.geo.plan.archive import is_plan

    if is_plan(run):
        from buque.api.pgplans import publish_plan

        try:
            out = publish_plan(run, postgres, schema=schema)
        except PgStoreError as e:
            _fail(e)
        console.log(f"published plan [bold]{out['name']}[/] ({out['plan_id']}) into schema "
                    f"{out['schema']}: {sum(out['rows'].values()):,} rows")
        return
    if not is_run(run):
        _fail(FileNotFoundError(f"{run}: not a Buque run (no manifest.json)"))
    t0 = time.perf_counter()
    with console.status("publishing", spinner="dots") as status:
        def step(msg: str) -> None:
            console.log(msg, markup=False)
            status.update(escape(msg))

        try:
            out = publish_run(run, postgres, schema=schema, step=step)
        except PgStoreError as e:
            _fail(e)
    rows = sum(out["rows"].values())
    console.log(f"published run [bold]{out['run_id']}[/] into schema {out['schema']} "
                f"(PostGIS {out['postgis']}): {len(out['rows'])} tables, {rows:,} rows in "
                f"{time.perf_counter() - t0:.2f} s")


@standards_app.command("list")
def standards_list() -> None:
    """Bundled profiles."""
    from buque.layers.profile import bundled_profiles, load_profile

    for name in bundled_profiles():
        p = load_profile(name)
        print(f"{name}\t{p.version}\t{p.title}")


@standards_app.command("show")
def standards_show(name: Annotated[str, typer.Argument(help="Bundled name or TOML path.")]
                   ) -> None:
    """Print a profile: each indicator's level, rule, threshold, evidence, deadline, remedy."""
    from buque.layers.profile import load_profile

    try:
        p = load_profile(name)
    except BuqueInputError as e:
        _fail(e)
    out = Console()
    out.print(f"[bold]{escape(p.name)}[/] {escape(p.version)} — {escape(p.title)}\n"
              f"{escape(p.path)}\nsha256 {p.content_hash}")
    for key, i in p.indicators.items():
        t = Table(show_header=False, title=f"{key} · {i.label_zh} / {i.label_en} ({i.sector})",
                  title_justify="left")
        t.add_column(no_wrap=True)
        t.add_column(overflow="fold")
        t.add_row("layer", i.layer)
        t.add_row("levels", ", ".join(i.levels))
        for lvl, c in i.applies.items():
            t.add_row(f"applies ({lvl})", Text(_cond(c)))
        t.add_row("rule", i.rule)
        for k in ("threshold_m", "fallback_threshold_m", "default_radius_m"):
            if getattr(i, k) is not None:
                t.add_row(k, f"{getattr(i, k):g}")
        t.add_row("evidence", Text("\n".join(_cond(c) for c in i.evidence) or "any feature"))
        t.add_row("deadline", i.deadline.isoformat())
        t.add_row("target rate", f"{i.target_rate:.0%}")
        for label, r in (("remedy", i.remedy), ("upgrade", i.upgrade)):
            if r is not None:
                t.add_row(label, f"{r.item} ({r.item_en}): {r.quantity} × {r.unit_cost:,.0f} "
                          f"CNY/{r.unit}")
        for k, v in i.sources.items():
            t.add_row(k.replace("_", " "), Text(v))
        out.print(t)


def _cond(c) -> str:
    null = c.if_null if isinstance(c.if_null, str) else f"({_cond(c.if_null)})"
    return f"{c.field} {c.op} {c.value!r}; if null: {null}"


def _export_with_bar(make, run: Path, out: Path, opts):
    """``make(run, out, opts, progress=...)`` with a progress bar of its steps."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("exporting", total=1.0)

        def progress(fraction: float, step: str) -> None:
            bar.update(task, completed=fraction, description=escape(step))

        return make(run, out, opts, progress=progress)


@app.command("export")
def export_cmd(
    run: Annotated[Path, typer.Argument(help="A run directory, or a folder of runs (newest).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (a folder with "
                                      "--bundle for several counties).")],
    fmt: Annotated[str | None, typer.Option(
        "--format", "-f", help="png | pdf | html | xlsx | gpkg | geojson | csv | shp | pmtiles "
        "(default: from --out's suffix).")] = None,
    county: Annotated[list[str] | None, typer.Option(help="County name(s); repeat or "
                                                      "comma-separate.")] = None,
    township: Annotated[list[str] | None, typer.Option(help="Township name(s).")] = None,
    indicator: Annotated[list[str] | None, typer.Option(help="Indicator key(s), e.g. road.")
                         ] = None,
    paper: Annotated[str, typer.Option(help="Map paper: A4 | A3.")] = "A4",
    orientation: Annotated[str, typer.Option(help="landscape | portrait.")] = "landscape",
    lang: Annotated[str, typer.Option(help="zh | en.")] = "zh",
    dpi: Annotated[int, typer.Option(help="PNG/PDF raster resolution.")] = 300,
    encoding: Annotated[str | None, typer.Option(help="Text encoding for shp/csv, e.g. GBK "
                                                 "(default UTF-8).")] = None,
    per_county: Annotated[bool, typer.Option("--per-county", help="One file per county (PDF: "
                                             "one page per county).")] = False,
    bundle: Annotated[bool, typer.Option("--bundle", help="Zip each county's map, ledger and "
                                         "GeoPackage.")] = False,
    basemap: Annotated[Path | None, typer.Option(help="HTML map: an own raster basemap "
                                                 "(PMTiles or MBTiles) embedded under the "
                                                 "layers.")] = None,
    plan: Annotated[Path | None, typer.Option(help="A plan of this run (buque plan): 项目库 and "
                                               "phase sheets in the XLSX, planned lines on "
                                               "PNG/PDF maps.")] = None,
) -> None:
    """Export report-ready maps (PNG/PDF/HTML), the ledger (XLSX) and GIS files of a run."""
    from buque.geo.basemap import BasemapError
    from buque.geo.report import (
        ExportError,
        ExportOptions,
        FontError,
        Selection,
        export,
        export_bundle,
        format_of,
    )

    try:
        fmt = fmt or ("pdf" if bundle else format_of(out))
        if fmt is None:
            raise ExportError("--format", f"cannot tell the format from {out.name!r}; give "
                              "--format")
        opts = ExportOptions(fmt=fmt.lower(), selection=Selection.parse(county, township,
                                                                         indicator),
                             paper=paper.upper(), orientation=orientation.lower(),
                             lang=lang.lower(), dpi=dpi, encoding=encoding, per_county=per_county,
                             basemap=basemap, plan=plan)
        result = _export_with_bar(export_bundle if bundle else export, run, out, opts)
    except (ExportError, FontError, BuqueInputError, FileNotFoundError, FileExistsError,
            BasemapError) as e:
        _fail(e)
    for f in result.files:
        Console().print(f"{f}  ({f.stat().st_size / 1024:,.0f} KiB)", highlight=False,
                        markup=False)
    for n in result.notes:
        console.print(Text.assemble(("note: ", "yellow"), str(n)), highlight=False)
    console.log(f"exported {len(result.files)} file(s) in {result.seconds:.2f} s")


from buque.cli.verify import register as _register_verify  # noqa: E402

_register_verify(app, console, _fail, _print_table)


@app.command("plan")
def plan_cmd(
    args: Annotated[list[str], typer.Argument(help="RUN (a run directory), or: diff PLAN_A "
                                              "PLAN_B.", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Plan directory to write "
                                             "(replaced atomically).")] = None,
    budget: Annotated[list[str] | None, typer.Option(help="CNY for one phase, or PHASE=CNY "
                                                     "repeated (e.g. 2027=3e8 2028=2e8); "
                                                     "default unlimited.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a parameter, "
                                                   "e.g. water.threshold_m=1000, "
                                                   "road.unit_cost=800000, county.NAME=1.4.")
                    ] = None,
    objective: Annotated[str, typer.Option(help="villages | people completed per yuan, "
                                           "within a priority.")] = "villages",
) -> None:
    """Plan works for a run's gaps under a budget (buque plan RUN --budget CNY --out PLAN), or
    compare two plans (buque plan diff A B)."""
    from buque.geo.plan.params import parse_set

    try:
        if args and args[0] == "diff":
            if len(args) != 3:
                raise typer.BadParameter("usage: buque plan diff PLAN_A PLAN_B")
            from buque.geo.plan.archive import read_plan
            from buque.geo.plan.diff import diff_plans

            summary, works = diff_plans(read_plan(args[1]), read_plan(args[2]))
            import json

            Console().print_json(json.dumps(summary, ensure_ascii=False, default=str))
            Console().print(works.head(50).to_string(index=False), markup=False,
                            highlight=False)
            return
        if len(args) != 1 or out is None:
            raise typer.BadParameter("usage: buque plan RUN --budget CNY --out PLAN")
        from buque.geo.plan.archive import write_plan
        from buque.geo.plan.make import make_plan

        t0 = time.perf_counter()
        sets = dict(parse_set(x) for x in set_ or [])
        plan = make_plan(Path(args[0]), budget, sets, objective)
        write_plan(out, plan)
    except (BuqueInputError, FileNotFoundError, FileExistsError, typer.BadParameter) as e:
        _fail(e)
    t = plan.meta["totals"]
    Console().print(f"plan {plan.meta['plan_id']}: {t['works']:,} works "
                    f"({t['funded_works']:,} funded, {t['verify']:,} to verify), cost "
                    f"{t['cost']:,.0f} CNY, funded {t['funded_cost']:,.0f} CNY", highlight=False)
    for c, d in t["villages"].items():
        Console().print(f"  priority {c}: {d['completed']:,} of {d['with_gaps']:,} villages "
                        "with gaps brought to standard", highlight=False)
    console.log(f"plan written to [bold]{escape(str(out))}[/] in "
                f"{time.perf_counter() - t0:.2f} s")


def main() -> None:
    """The console script: the CLI, then a fast exit after a finished ``run``."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit as e:
        if _EXIT_NOW[0] and e.code in (0, None):
            import logging
            import os

            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        raise


if __name__ == "__main__":
    main()
