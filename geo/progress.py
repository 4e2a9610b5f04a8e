"""Runs of one project over time as a series: rates per run date against target and deadline,
the date the target is reached at the current pace, and regressions (反弹) with their cause.

- **Series**: each run's ``summary.csv`` rows as they are, with the run's id and date (its
  manifest's ``created``), oldest first. Runs of other projects in the folder are left out
  (the project is the newest run's, by name, unless named).
- **Pace**: per (scope, county, township, indicator), the least-squares slope of the rate over
  the run dates (per day); the target is reached on ``last date + (target - last rate) /
  slope`` when the slope is positive, already when the last rate meets it, never (null) else;
  ``on_track`` when that date is on or before the deadline.
- **Regressions**: pairs met in a run and missing in the next (``geo.diff``'s ``regressed``),
  with the cause found in the runs' archives: the earlier run's nearest qualifying feature
  (``evidence_id``) is gone from the later run's layer (``feature_removed``), is there with
  other attributes or geometry (``feature_changed``, naming the fields), the profile changed
  (``profile_changed``: its hash, and the indicator's threshold when both profiles can be
  read), the later run's status is a field result (``field``), else ``other``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from buque.geo.archive import CSV_ENCODING, LAYERS_DIR, list_runs, read_manifest, read_villages
from buque.geo.csvsafe import restore_frame
from buque.geo.diff import diff_gaps
from buque.layers.schema import COUNT_COLUMNS

KEY = ["scope", "county", "township", "indicator"]
SERIES_COLUMNS = ["run_id", "date", *KEY, *COUNT_COLUMNS, "rate",
                  "target", "deadline"]
PACE_COLUMNS = [*KEY, "runs", "first_date", "last_date", "first_rate", "last_rate", "target",
                "deadline", "per_day", "reached_on", "on_track"]
REGRESSION_COLUMNS = ["village_code", "name", "county", "township", "indicator", "run_a",
                      "run_b", "date_a", "date_b", "status_a", "status_b", "evidence_id_a",
                      "distance_m_a", "evidence_id_b", "distance_m_b", "cause", "detail"]


def project_runs(folder: Path, project: str | None = None) -> list[Path]:
    """The runs of ``folder`` of one project (the newest run's by default), oldest first."""
    runs = list_runs(Path(folder))
    if not runs:
        raise FileNotFoundError(f"{folder}: holds no Buque runs")
    name = project or (read_manifest(runs[-1]).get("project") or {}).get("name")
    return [r for r in runs if (read_manifest(r).get("project") or {}).get("name") == name]


def _date(m: dict) -> str:
    return str(m.get("created", ""))[:10]


def read_summary(run: Path) -> pd.DataFrame:
    text = {c: "string" for c in ("scope", "county", "township", "indicator", "deadline")}
    s = restore_frame(pd.read_csv(Path(run) / "summary.csv", encoding=CSV_ENCODING, dtype=text,
                                  keep_default_na=False, na_values=[""]))
    return s.fillna({"county": "", "township": ""})


def series(runs: list[Path]) -> pd.DataFrame:
    """Every run's summary rows with its id and date (:data:`SERIES_COLUMNS`), oldest first."""
    parts = []
    for r in runs:
        m = read_manifest(r)
        s = read_summary(r)
        parts.append(s.assign(run_id=str(m.get("run_id") or Path(r).name), date=_date(m),
                              _created=str(m.get("created", ""))))
    out = pd.concat(parts, ignore_index=True)
    return out[[*SERIES_COLUMNS, "_created"]].rename(columns={"_created": "created"})


def pace(s: pd.DataFrame) -> pd.DataFrame:
    """Per place and indicator: the rate's slope over the runs and the date the target is
    reached at that pace (:data:`PACE_COLUMNS`)."""
    s = s.assign(_t=pd.to_datetime(s["created"], utc=True, format="ISO8601"))
    t0 = s["_t"].min()
    s["_x"] = (s["_t"] - t0).dt.total_seconds() / 86400.0
    s["_r"] = s["rate"].astype(float)
    g = s.sort_values("_t", kind="stable").groupby(KEY, sort=False, dropna=False)
    n = g.size()
    mx, mr = g["_x"].mean(), g["_r"].mean()
    s = s.join(mx.rename("_mx"), on=KEY).join(mr.rename("_mr"), on=KEY)
    s["_sxy"] = (s["_x"] - s["_mx"]) * (s["_r"] - s["_mr"])
    s["_sxx"] = (s["_x"] - s["_mx"]) ** 2
    g = s.sort_values("_t", kind="stable").groupby(KEY, sort=False, dropna=False)
    sxx = g["_sxx"].sum()
    slope = (g["_sxy"].sum() / sxx.where(sxx > 0)).rename("per_day")
    out = pd.DataFrame({"runs": n, "first_date": g["date"].first(), "last_date": g["date"].last(),
                        "first_rate": g["_r"].first(), "last_rate": g["_r"].last(),
                        "target": g["target"].last().astype(float), "deadline": g["deadline"].last(),
                        "per_day": slope, "_tl": g["_t"].last()}).reset_index()
    need = out["target"] - out["last_rate"]
    days = need / out["per_day"]
    reached = out["last_rate"] >= out["target"] - 1e-9
    when = out["_tl"] + pd.to_timedelta(days.where((out["per_day"] > 0) & ~reached).clip(
        upper=365.0 * 100), unit="D")
    out["reached_on"] = np.where(reached, out["last_date"],
                                 when.dt.strftime("%Y-%m-%d").where(when.notna(), None))
    out["reached_on"] = out["reached_on"].astype("string")
    dl = out["deadline"].astype("string")
    out["on_track"] = (out["reached_on"].notna() & (out["reached_on"] <= dl)).fillna(False)
    return out[PACE_COLUMNS]


def _evidence_layers(run: Path) -> dict[str, pd.DataFrame]:
    import geopandas as gpd  # noqa: PLC0415

    d = Path(run) / LAYERS_DIR
    return {p.stem: gpd.read_parquet(p) for p in sorted(d.glob("*.parquet"))} if d.is_dir() else {}


def _layer_of(layers: dict, key: str) -> str | None:
    return next((k for k, g in layers.items() if f"evidence_{key}" in g.columns), None)


def _threshold(manifest: dict, key: str) -> float | None:
    from buque.geo.derive import ProfileChanged, run_profile  # noqa: PLC0415

    try:
        ind = run_profile(manifest).indicators.get(key)
    except ProfileChanged:
        return None
    return None if ind is None else ind.threshold_m


def _causes(reg: pd.DataFrame, a: Path, b: Path, ma: dict, mb: dict) -> tuple[list, list]:
    """Cause and detail of each regression of runs ``a`` -> ``b`` (regressions are few: a loop
    over them, with the features looked up by id)."""
    la, lb = _evidence_layers(a), _evidence_layers(b)
    gb = pd.read_parquet(Path(b) / "gaps.parquet")
    src_b = (gb.set_index([gb["village_code"].astype(str), gb["indicator"].astype(str)])["source"]
             if "source" in gb else None)
    prof_a, prof_b = (ma.get("profile") or {}).get("sha256"), (mb.get("profile") or {}).get("sha256")
    causes, details = [], []
    idx_cache: dict[tuple[str, str], pd.DataFrame] = {}

    def by_id(layers: dict, run: str, kind: str) -> pd.DataFrame | None:
        if kind not in layers:
            return None
        if (run, kind) not in idx_cache:
            g = layers[kind]
            idx_cache[(run, kind)] = g.set_index(g["id"].astype(str))
        return idx_cache[(run, kind)]

    for r in reg.itertuples(index=False):
        key, fid = str(r.indicator), r.evidence_id_a
        if src_b is not None and src_b.get((str(r.village_code), key)) == "field":
            causes.append("field")
            details.append("the later run's status is a field result (source = field)")
            continue
        kind = _layer_of(la, key)
        fa = by_id(la, "a", kind) if kind else None
        fb = by_id(lb, "b", kind) if kind else None
        if fa is not None and fb is not None and isinstance(fid, str) and fid in fa.index:
            if fid not in fb.index:
                causes.append("feature_removed")
                details.append(f"{kind} {fid} (nearest qualifying in the earlier run, "
                               f"{r.distance_m_a:,.0f} m) is not in the later run")
                continue
            ra, rb = fa.loc[[fid]].iloc[0], fb.loc[[fid]].iloc[0]
            cols = [c for c in fa.columns if c in fb.columns and c not in ("id", "bbox")
                    and not c.startswith("evidence_") and c != fa.geometry.name]
            diff = [c for c in cols if not (pd.isna(ra[c]) and pd.isna(rb[c])) and
                    (pd.isna(ra[c]) or pd.isna(rb[c]) or ra[c] != rb[c])]
            moved = not ra[fa.geometry.name].equals(rb[fb.geometry.name])
            if diff or moved:
                causes.append("feature_changed")
                what = [f"{c} {ra[c]!r} -> {rb[c]!r}" for c in diff] + (["geometry"] if moved
                                                                       else [])
                details.append(f"{kind} {fid} changed: " + "; ".join(what))
                continue
        if prof_a != prof_b:
            ta, tb = _threshold(ma, key), _threshold(mb, key)
            causes.append("profile_changed")
            details.append(f"profile {str(prof_a)[:8]} -> {str(prof_b)[:8]}" +
                           (f"; {key} threshold_m {ta:g} -> {tb:g}" if ta is not None and
                            tb is not None and ta != tb else ""))
            continue
        causes.append("other")
        details.append(f"evidence {fid} -> {r.evidence_id_b}; distance "
                       f"{r.distance_m_a:,.0f} -> {r.distance_m_b:,.0f} m")
    return causes, details


def regressions(runs: list[Path]) -> pd.DataFrame:
    """Pairs met in a run and missing in the next one, with the cause
    (:data:`REGRESSION_COLUMNS`)."""
    parts = []
    for a, b in zip(runs[:-1], runs[1:], strict=True):
        ma, mb = read_manifest(a), read_manifest(b)
        ga, gb = pd.read_parquet(a / "gaps.parquet"), pd.read_parquet(b / "gaps.parquet")
        d = diff_gaps(ga, gb)
        d = d[d["change"] == "regressed"]
        if d.empty:
            continue
        ev = lambda g: g.set_index([g["village_code"].astype(str),  # noqa: E731
                                    g["indicator"].astype(str)])["evidence_id"]
        k = list(zip(d["village_code"].astype(str), d["indicator"].astype(str), strict=True))
        d = d.assign(evidence_id_a=ev(ga).reindex(k).to_numpy(),
                     evidence_id_b=ev(gb).reindex(k).to_numpy(),
                     run_a=str(ma.get("run_id")), run_b=str(mb.get("run_id")),
                     date_a=_date(ma), date_b=_date(mb))
        v = pd.DataFrame(read_villages(b).drop(columns="geometry"))
        place = v.set_index(v["code"].astype(str))[["name", "county", "township"]]
        d = d.join(place, on="village_code")
        d["cause"], d["detail"] = _causes(d, a, b, ma, mb)
        parts.append(d)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in REGRESSION_COLUMNS})
    return pd.concat(parts, ignore_index=True)[REGRESSION_COLUMNS]


def totals(s: pd.DataFrame, counties: list[str] | None = None) -> pd.DataFrame:
    """Per run and indicator, over the counties (all, or ``counties``): assessed, met, rate."""
    c = s[s["scope"] == "county"]
    if counties:
        c = c[c["county"].isin(counties)]
    g = c.groupby(["run_id", "date", "created", "indicator"], sort=False)
    out = g[list(COUNT_COLUMNS)].sum().reset_index()
    out["rate"] = (out["met"] / out["assessed"].where(out["assessed"] > 0)).round(4)
    out["target"] = g["target"].first().to_numpy()
    out["deadline"] = g["deadline"].first().to_numpy()
    return out.sort_values(["created", "run_id"], kind="stable").reset_index(drop=True)


def chart_figure(tot: pd.DataFrame, labels: dict[str, str], title: str,
                 size: tuple[float, float] = (8, 4.8), axes: tuple[str, str] | None = None,
                 key: str = "虚线 目标 · 点线 期限", subtitle: str = ""):
    """A matplotlib Figure (not yet saved) of the rate per run date and indicator of ``tot``
    (:func:`totals`), each target dashed and deadline dotted, its text in the CJK font when it
    needs one. ``axes``: the x and y labels (default :data:`AXIS_X`, :data:`AXIS_Y`). Returns
    the figure and the font family it was drawn with."""
    import matplotlib as mpl  # noqa: PLC0415
    import matplotlib.dates as mdates  # noqa: PLC0415
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    from buque.geo.report.fonts import map_family  # noqa: PLC0415
    from buque.geo.report.maps import _rc  # noqa: PLC0415

    ax_x, ax_y = axes or (AXIS_X, AXIS_Y)
    text = title + subtitle + "".join(labels.values()) + ax_x + ax_y + key + "0123456789-%"
    family = map_family(text)
    with mpl.rc_context(_rc(family)):
        fig = Figure(figsize=size)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(111)
        t = pd.to_datetime(tot["created"], utc=True, format="ISO8601").dt.tz_localize(None)
        colours = mpl.colormaps["tab10"].colors
        for i, (ind, g) in enumerate(tot.groupby("indicator", sort=False)):
            c = colours[i % 10]
            x = t.loc[g.index]
            ax.plot(x, g["rate"] * 100, marker="o", color=c, label=labels.get(ind, ind))
            ax.axhline(float(g["target"].iloc[-1]) * 100, color=c, linestyle="--",
                       linewidth=0.8, alpha=0.7)
            dl = pd.to_datetime(g["deadline"].iloc[-1], errors="coerce")
            if pd.notna(dl):
                ax.axvline(dl, color=c, linestyle=":", linewidth=0.8, alpha=0.7)
        ax.set_ylim(0, 105)
        ax.set_xlabel(ax_x)
        ax.set_ylabel(ax_y)
        ax.set_title(title + (f"\n{subtitle}" if subtitle else ""))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8, title=key, title_fontsize=7)
        fig.autofmt_xdate()
        fig.tight_layout()
    return fig, family


def chart(tot: pd.DataFrame, labels: dict[str, str], title: str, out: Path, dpi: int = 150
          ) -> list[str]:
    """``out``: a PNG line chart of the rate per run date and indicator, with each target
    (dashed) and deadline (dotted); Chinese labels in the CJK font. Returns the font family."""
    import matplotlib as mpl  # noqa: PLC0415

    from buque.geo.report.maps import _rc  # noqa: PLC0415

    fig, family = chart_figure(tot, labels, title)
    with mpl.rc_context(_rc(family)):
        fig.savefig(out, dpi=dpi, format="png")
    return family


AXIS_X, AXIS_Y = "评估日期", "达标率（%）"
