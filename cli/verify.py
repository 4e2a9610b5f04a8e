"""``buque check-ledger``, ``sample``, ``verify``, ``progress``: the ledger, inspections and
progress commands (registered on the main app by :func:`register`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from buque.layers.errors import BuqueInputError


def _fields(given: list[str] | None) -> dict[str, str]:
    out = {}
    for g in given or []:
        if "=" not in g:
            raise typer.BadParameter(f"--field {g!r}: give KEY=COLUMN, e.g. road=通硬化路")
        k, v = g.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def register(app: typer.Typer, console: Console, fail: Callable[[Exception], None],
             print_table: Callable) -> None:
    """Add the commands to ``app`` (errors through ``fail``, tables through ``print_table``)."""

    @app.command("check-ledger")
    def check_ledger_cmd(
        run: Annotated[Path, typer.Argument(help="A run directory.")],
        ledger: Annotated[Path, typer.Argument(help="The office's ledger (台账): XLSX or CSV, one "
                                               "row per village, a column per indicator.")],
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the checked run "
                                                 "here (default: update RUN in place, "
                                                 "atomically).")] = None,
        field: Annotated[list[str] | None, typer.Option(
            "--field", help="KEY=COLUMN: the ledger column of village_code, name or an "
            "indicator key (repeat). Unnamed columns are found by key or Chinese label.")] = None,
        encoding: Annotated[str | None, typer.Option(help="CSV text encoding, e.g. GBK.")] = None,
        sheet: Annotated[str | None, typer.Option(help="XLSX sheet (default: the first).")] = None,
    ) -> None:
        """Check a run against the office's ledger: discrepancies.csv (claimed met, evidence
        missing / unknown; claimed missing, evidence met), ledger rows not used in rejected.csv."""
        from buque.geo.archive import is_run
        from buque.geo.derive import ProfileChanged
        from buque.geo.ledger import CLASS_ZH, CLASSES, check_run
        from buque.layers.project import LedgerSpec

        if not is_run(run):
            fail(FileNotFoundError(f"{run}: not a Buque run (no manifest.json)"))
        try:
            spec = LedgerSpec(path=ledger.resolve(), fields=_fields(field), encoding=encoding,
                              sheet=sheet)
            target, check = check_run(run, spec, out)
        except (BuqueInputError, ProfileChanged, FileExistsError, typer.BadParameter) as e:
            fail(e)
        d = check.discrepancies
        con = Console()
        con.print(f"ledger {escape(ledger.name)}: {check.rows:,} rows, {len(check.claims):,} "
                  f"claims, {check.rejected_rows:,} rows rejected (see rejected.csv)")
        if check.ignored:
            con.print(Text("columns not read: " + ", ".join(check.ignored), style="yellow"))
        county = d["county"].astype("string").fillna("")
        rows = []
        for c in sorted(county.unique()):
            sel = d[(county == c).to_numpy(bool)]
            rows.append((c or "(none)", *(f"{int((sel['class'] == k).sum()):,}" for k in CLASSES)))
        rows.append(("total", *(f"{int((d['class'] == k).sum()):,}" for k in CLASSES)))
        print_table(con, ("county", *(CLASS_ZH[k] for k in CLASSES)), rows)
        con.print(Text("  ".join(f"{CLASS_ZH[k]} = {k}" for k in CLASSES), style="dim"))
        console.log(f"discrepancies.csv written to [bold]{escape(str(target))}[/]")

    @app.command("sample")
    def sample_cmd(
        run: Annotated[Path, typer.Argument(help="A run directory.")],
        n: Annotated[int, typer.Option("--n", min=1, help="Villages to draw.")],
        seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the "
                                          "same sample.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (sample.csv, "
                                          "visit_list.xlsx, pages.pdf, sample.json).")],
        by: Annotated[str | None, typer.Option(help="Strata: county or township.")] = None,
        weight: Annotated[str | None, typer.Option(help="discrepancies: villages with ledger "
                                                   "discrepancies more likely.")] = None,
        level: Annotated[str | None, typer.Option(help="admin (default), natural or all.")
                         ] = None,
        pages: Annotated[bool, typer.Option("--pages/--no-pages", help="Write pages.pdf.")
                         ] = True,
    ) -> None:
        """Draw a reproducible stratified random sample of villages for a field visit."""
        from buque.geo.archive import is_run
        from buque.geo.report.fonts import FontError
        from buque.geo.sample import SampleError, write_sample

        if not is_run(run):
            fail(FileNotFoundError(f"{run}: not a Buque run (no manifest.json)"))
        try:
            target, s = write_sample(run, out, n, seed, by=by, weight=weight, level=level,
                                     pages=pages)
        except (SampleError, FontError, FileExistsError) as e:
            fail(e)
        con = Console()
        con.print(f"{s.params['drawn']:,} of {s.params['frame']:,} {s.params['level']} villages "
                  f"drawn (seed {seed}" + (f", by {by}" if by else "") +
                  (f", weighted by {weight}" if weight else "") + ")")
        print_table(con, ("stratum", "villages", "drawn"),
                    [(r.stratum or "(all)", f"{r.villages:,}", f"{r.drawn:,}")
                     for r in s.strata.itertuples(index=False)])
        console.log(f"sample written to [bold]{escape(str(target))}[/]")

    @app.command("verify")
    def verify_cmd(
        run: Annotated[Path, typer.Argument(help="A run directory (never changed).")],
        results: Annotated[Path, typer.Argument(help="Field results (XLSX/CSV): village_code, "
                                                "indicator, observed, inspector, date[, note, "
                                                "photo]; the visit list of buque sample works "
                                                "as it is.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="The new run to write.")],
        encoding: Annotated[str | None, typer.Option(help="CSV text encoding, e.g. GBK.")] = None,
        sheet: Annotated[str | None, typer.Option(help="XLSX sheet (default: 核查结果 if "
                                                  "present, else the first).")] = None,
    ) -> None:
        """Make a new run in which the visited pairs carry the observed status (source =
        field); prints what the visit changed."""
        from buque.geo.archive import is_run
        from buque.geo.derive import ProfileChanged
        from buque.geo.diff import CHANGES
        from buque.geo.verify import verify_run

        if not is_run(run):
            fail(FileNotFoundError(f"{run}: not a Buque run (no manifest.json)"))
        try:
            target, res, changes = verify_run(run, results, out, encoding=encoding, sheet=sheet)
        except (BuqueInputError, ProfileChanged, FileExistsError) as e:
            fail(e)
        con = Console()
        con.print(f"field results {escape(results.name)}: {res.rows:,} rows, "
                  f"{len(res.applied):,} applied, {res.blank:,} blank (not visited); rejected "
                  "rows in rejected.csv")
        rows = []
        for k in dict.fromkeys(changes["indicator"].astype(str)):
            sel = changes[changes["indicator"].astype(str) == k]
            rows.append((k, *(f"{int((sel['change'] == c).sum()):,}" for c in CHANGES)))
        if rows:
            print_table(con, ("indicator", *CHANGES), rows)
        else:
            con.print("the visit changed no status")
        console.log(f"run written to [bold]{escape(str(target))}[/] (field_changes.csv lists "
                    "the changes)")

    @app.command("progress")
    def progress_cmd(
        data: Annotated[Path, typer.Argument(help="A folder of runs of one project.")],
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for progress.csv, "
                                                 "pace.csv, regressions.csv, progress.png "
                                                 "(default DIR/progress).")] = None,
        county: Annotated[list[str] | None, typer.Option(help="County name(s).")] = None,
        project: Annotated[str | None, typer.Option(help="Project name (default: the newest "
                                                    "run's).")] = None,
    ) -> None:
        """Progress over a project's runs: rate per run date against target and deadline, the
        date the target is reached at the current pace, regressions (反弹) with their cause."""
        import pandas as pd

        from buque.geo.archive import read_manifest, write_csv
        from buque.geo.derive import ProfileChanged, run_profile
        from buque.geo.lists import split_values
        from buque.geo.progress import chart, pace, project_runs, regressions, series, totals
        from buque.geo.report.fonts import FontError

        try:
            runs = project_runs(data, project)
            s = series(runs)
            counties = list(split_values(county)) if county else None
            tot = totals(s, counties)
            p = pace(s)
            reg = regressions(runs)
            m = read_manifest(runs[-1])
            try:
                labels = {k: i.label_zh for k, i in run_profile(m, exact=False).indicators.items()}
            except ProfileChanged:
                labels = {}
            target = out or (data / "progress" if not (data / "manifest.json").is_file()
                             else data.parent / "progress")
            target.mkdir(parents=True, exist_ok=True)
            write_csv(s.drop(columns="created"), target / "progress.csv")
            write_csv(p, target / "pace.csv")
            write_csv(reg, target / "regressions.csv")
            name = (m.get("project") or {}).get("name") or ""
            chart(tot, labels, f"达标率进展 · {name}" + (f" · {'、'.join(counties)}"
                                                     if counties else ""), target / "progress.png")
        except (FileNotFoundError, FontError) as e:
            fail(e)
        con = Console()
        dates = list(dict.fromkeys(tot["date"] + " " + tot["run_id"].str[-8:]))[-6:]
        tot = tot.assign(_d=tot["date"] + " " + tot["run_id"].str[-8:])
        pt = p[p["scope"] == "county"] if not counties else p[(p["scope"] == "county") &
                                                              p["county"].isin(counties)]
        rows = []
        for key, g in tot.groupby("indicator", sort=False):
            rate = g.set_index("_d")["rate"]
            reach = pt[pt["indicator"] == key]["reached_on"].dropna()
            rows.append((f"{key} {labels.get(key, '')}".strip(),
                         *(f"{rate[d]:.1%}" if d in rate and pd.notna(rate[d]) else "" for d in dates),
                         f"{float(g['target'].iloc[-1]):.0%}", str(g["deadline"].iloc[-1]),
                         str(reach.max()) if len(reach) == len(pt[pt["indicator"] == key])
                         and len(reach) else "not at this pace"))
        print_table(con, ("indicator", *dates, "target", "deadline", "reached"), rows)
        con.print(f"{len(runs)} runs · {len(reg):,} regressions (反弹)" +
                  (": " + ", ".join(f"{c} {n}" for c, n in reg["cause"].value_counts().items())
                   if len(reg) else ""))
        for r in reg.head(10).itertuples(index=False):
            con.print(Text(f"  {r.village_code} {r.name or ''} {r.indicator}: {r.detail}"))
        console.log(f"progress written to [bold]{escape(str(target))}[/]")
