"""A reproducible stratified random sample of villages for a field visit (第三方评估 抽样).

The method (docs/verify.md):

- **Frame**: the run's villages of one level (administrative by default, the ones assessors
  visit), sorted by code, so the sample depends on the run's villages and the seed only, never
  on row order.
- **Strata**: the villages' county or township (``by``; a village with none is in the stratum
  ``""``), or one stratum.
- **Allocation** of ``n`` (at most the frame's size) over the S strata of sizes N_h: when
  n >= S every stratum gets 1, and the other n - S are shared in proportion to N_h - 1 (the
  villages each stratum has left) by largest remainders (Hamilton; equal remainders go to the
  stratum first by name), so no stratum gets more than it has. When n < S, n strata drawn at
  random (uniformly, with the same generator) get 1 each.
- **Draw** within each stratum, without replacement, with weight w_i (1, or with
  ``weight="discrepancies"`` 1 + 4 a + 2 b + c for a village with a claimed-met-evidence-missing,
  b claimed-met-evidence-unknown and c claimed-missing-evidence-met ledger pairs): the q_h
  villages with the largest log(u_i) / w_i (Efraimidis-Spirakis), u_i uniform from
  ``numpy.random.default_rng(seed)``, one draw per village of the frame in code order.

The same run, seed and parameters give the same sample; vectorised (one sort).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from buque.geo.ledger import CLASSES

BY = ("county", "township")
WEIGHTS = ("discrepancies",)
CLASS_WEIGHT = dict(zip(CLASSES, (4.0, 2.0, 1.0), strict=True))


class SampleError(ValueError):
    """A sampling parameter that cannot be used (names the option)."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(f"{option}: {message}")


@dataclass
class Sample:
    """The villages drawn (frame rows with ``stratum``, ``weight``, ``draw``) and the
    allocation per stratum (``stratum``, ``villages``, ``quota``, ``drawn``)."""

    villages: pd.DataFrame
    strata: pd.DataFrame
    params: dict


def allocate(sizes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Villages to draw per stratum (``sizes`` in stratum-name order); see the module doc."""
    sizes = np.asarray(sizes, dtype=np.int64)
    s, total = len(sizes), int(sizes.sum())
    n = min(int(n), total)
    q = np.zeros(s, dtype=np.int64)
    if n <= 0 or s == 0:
        return q
    if n < s:
        q[rng.choice(s, size=n, replace=False)] = 1
        return q
    q[:] = 1
    seats, left = n - s, sizes - 1
    if seats == 0:
        return q
    quota = seats * left / left.sum()
    base = np.floor(quota).astype(np.int64)
    rest = seats - int(base.sum())
    order = np.lexsort((np.arange(s), -(quota - base)))  # largest remainder, then name order
    base[order[:rest]] += 1
    return q + base


def village_weights(codes: pd.Series, disc: pd.DataFrame | None) -> np.ndarray:
    """1 + 4 a + 2 b + c per village (a, b, c: its ledger discrepancies of each class)."""
    w = np.ones(len(codes))
    if disc is None or not len(disc):
        return w
    pts = disc["class"].astype(str).map(CLASS_WEIGHT).fillna(0.0)
    per = pts.groupby(disc["village_code"].astype(str)).sum()
    return w + codes.astype(str).map(per).fillna(0.0).to_numpy(float)


def draw_sample(villages: pd.DataFrame, n: int, seed: int, *, by: str | None = None,
                weight: str | None = None, discrepancies: pd.DataFrame | None = None,
                level: str | None = None) -> Sample:
    """Draw ``n`` villages of ``villages`` (a run's village table); see the module doc."""
    if n < 1:
        raise SampleError("--n", "must be at least 1")
    if by is not None and by not in BY:
        raise SampleError("--by", f"must be one of {', '.join(BY)}, got {by!r}")
    if weight is not None and weight not in WEIGHTS:
        raise SampleError("--weight", f"must be one of {', '.join(WEIGHTS)}, got {weight!r}")
    if weight == "discrepancies" and discrepancies is None:
        raise SampleError("--weight", "the run has no discrepancies.csv: check it against a "
                          "ledger first (buque check-ledger RUN LEDGER)")
    levels = set(villages["level"].dropna().astype(str))
    level = level or ("admin" if "admin" in levels else "natural")
    if level not in ("admin", "natural", "all"):
        raise SampleError("--level", f"must be admin, natural or all, got {level!r}")
    frame = villages if level == "all" else villages[villages["level"].astype(str) == level]
    if frame.empty:
        raise SampleError("--level", f"the run has no {level} villages")
    frame = frame.assign(_code=frame["code"].astype(str)).sort_values("_code", kind="stable")
    frame = frame.reset_index(drop=True)
    stratum = (frame[by].astype("string").fillna("") if by else
               pd.Series("", index=frame.index, dtype="string"))
    names, sid = np.unique(stratum.to_numpy(dtype=str), return_inverse=True)
    sizes = np.bincount(sid, minlength=len(names))
    rng = np.random.default_rng(seed)
    quota = allocate(sizes, n, rng)
    w = village_weights(frame["_code"], discrepancies if weight else None)
    u = rng.random(len(frame))
    key = np.log(np.maximum(u, np.finfo(float).tiny)) / w
    order = np.lexsort((-key, sid))                        # by stratum, best key first
    rank = np.empty(len(frame), dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank[order] = np.arange(len(frame)) - starts[sid[order]]
    chosen = rank < quota[sid]
    picked = order[chosen[order]]                          # stratum order, draw order within
    out = frame.iloc[picked].drop(columns="_code").copy()
    if "village_code" in out:  # a natural village's administrative village
        out = out.rename(columns={"village_code": "parent_code"})
    out.insert(0, "village_code", out.pop("code").astype("string"))
    out["stratum"] = stratum.iloc[picked].to_numpy()
    out["weight"] = w[picked]
    out["draw"] = np.arange(1, len(out) + 1)
    strata = pd.DataFrame({"stratum": names, "villages": sizes, "quota": quota,
                           "drawn": np.bincount(sid[picked], minlength=len(names))})
    params = {"n": int(n), "seed": int(seed), "by": by, "weight": weight, "level": level,
              "frame": int(len(frame)), "drawn": int(len(out))}
    return Sample(villages=out.reset_index(drop=True), strata=strata, params=params)


RESULTS_SHEET = "核查结果"
LIST_SHEET = "核查名单"
#: the results sheet's columns: what ``buque verify`` reads, then context for the inspector
RESULT_COLUMNS = ["village_code", "indicator", "observed", "inspector", "date", "note", "photo",
                  "name", "indicator_zh", "evidence_status", "distance_m", "evidence_id",
                  "ledger_claim"]


def checks_table(sample: pd.DataFrame, villages: pd.DataFrame, gaps: pd.DataFrame,
                 claims: pd.DataFrame | None, labels: dict[str, str]) -> pd.DataFrame:
    """One row per pair to check: the sampled villages' own pairs and their hamlets', with the
    evidence and the ledger claim, and blank ``observed``/``inspector``/``date`` to fill."""
    codes = sample["village_code"].astype(str)
    parent = villages["village_code"].astype("string").fillna("")
    kids = villages.loc[parent.isin(set(codes)).to_numpy(bool), ["code", "village_code"]]
    at = pd.concat([pd.DataFrame({"code": codes, "_s": codes}),
                    pd.DataFrame({"code": kids["code"].astype(str),
                                  "_s": kids["village_code"].astype(str)})], ignore_index=True)
    at["_d"] = at["_s"].map(dict(zip(codes, sample["draw"], strict=True)))
    g = gaps.assign(village_code=gaps["village_code"].astype(str)).merge(
        at.rename(columns={"code": "village_code"}), on="village_code")
    g["_i"] = g["indicator"].astype(str).map({k: i for i, k in enumerate(labels)})
    g["_own"] = (g["village_code"] != g["_s"]).astype(int)
    g = g.sort_values(["_d", "_i", "_own", "village_code"], kind="stable")
    names = dict(zip(villages["code"].astype(str), villages["name"].astype("string"),
                     strict=True))
    if claims is not None and len(claims):
        c = claims.assign(village_code=claims["village_code"].astype(str),
                          indicator=claims["indicator"].astype(str))
        g = g.merge(c[["village_code", "indicator", "claimed"]], how="left",
                    on=["village_code", "indicator"])
    else:
        g["claimed"] = pd.NA
    blank = pd.Series(pd.NA, index=g.index, dtype="string")
    return pd.DataFrame({
        "village_code": g["village_code"], "indicator": g["indicator"].astype(str),
        "observed": blank, "inspector": blank, "date": blank, "note": blank, "photo": blank,
        "name": g["village_code"].map(names), "indicator_zh": g["indicator"].astype(str).map(labels),
        "evidence_status": g["status"].astype(str), "distance_m": g["distance_m"].round(0),
        "evidence_id": g["evidence_id"], "ledger_claim": g["claimed"]},
        columns=RESULT_COLUMNS).reset_index(drop=True)


def write_visit_list(sample: pd.DataFrame, checks: pd.DataFrame, out: Path) -> Path:
    """The visit list (XLSX): the villages in draw order, and the results sheet to fill
    (``buque verify`` reads it back as it is)."""
    from xlsxwriter import Workbook  # noqa: PLC0415

    from buque.geo.report.ledger import cells, display_width  # noqa: PLC0415

    wb = Workbook(str(out), {"strings_to_formulas": False, "strings_to_urls": False,
                             "strings_to_numbers": False})
    head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
    cols = ["draw", "village_code", "name", "county", "township", "stratum", "weight",
            "n_discrepancies", "discrepancies", "missing"]
    lst = sample.reindex(columns=cols)
    for name, df in ((LIST_SHEET, lst), (RESULTS_SHEET, checks)):
        ws = wb.add_worksheet(name)
        for j, c in enumerate(df.columns):
            ws.write_string(0, j, str(c), head)
            vals = cells(df[c])
            for i, x in enumerate(vals, start=1):
                if x is None:
                    continue
                if isinstance(x, float):
                    ws.write_number(i, j, x)
                else:
                    ws.write_string(i, j, str(x))
            ws.set_column(j, j, min(max(display_width(df[c]), len(str(c))) + 2, 40))
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, max(len(df), 1), len(df.columns) - 1)
        ws.set_paper(9)
        ws.set_landscape()
        ws.fit_to_pages(1, 0)
        ws.repeat_rows(0)
    wb.close()
    return out


def write_sample(run: Path, out: Path, n: int, seed: int, *, by: str | None = None,
                 weight: str | None = None, level: str | None = None, pages: bool = True
                 ) -> tuple[Path, Sample]:
    """Draw the sample of run ``run`` and write ``out`` atomically: ``sample.csv`` (first
    column ``village_code``), ``sample.json`` (parameters, run, strata), ``visit_list.xlsx``
    and ``pages.pdf`` (one A4 page per village)."""
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from buque.geo.archive import read_manifest, read_run, replace_dir, sha256_file, write_csv  # noqa: PLC0415
    from buque.geo.derive import run_profile  # noqa: PLC0415
    from buque.geo.ledger import labels_of, read_discrepancies  # noqa: PLC0415

    run, out = Path(run).resolve(), Path(out).resolve()
    t = read_run(run)
    manifest = read_manifest(run)
    disc = read_discrepancies(run)
    s = draw_sample(t.villages, n, seed, by=by, weight=weight, discrepancies=disc, level=level)
    v = s.villages
    if disc is not None and len(disc):
        per = disc.groupby(disc["village_code"].astype(str))
        v["n_discrepancies"] = v["village_code"].astype(str).map(per.size()).fillna(0).astype(int)
        v["discrepancies"] = v["village_code"].astype(str).map(per.apply(
            lambda g: ", ".join(g["indicator"].astype(str) + ":" + g["class"].astype(str)),
            include_groups=False)).astype("string")
    else:
        v["n_discrepancies"] = 0
        v["discrepancies"] = pd.array([pd.NA] * len(v), dtype="string")
    front = ["village_code", "name", "county", "township", "level", "stratum", "draw", "weight",
             "n_discrepancies", "discrepancies", "missing"]
    v = v[[c for c in front if c in v] + [c for c in v.columns if c not in front]]
    v = v.drop(columns=[v.geometry.name] if hasattr(v, "geometry") else [], errors="ignore")
    s.villages = pd.DataFrame(v)
    labels = labels_of(run_profile(manifest, exact=False))
    claims = None
    if disc is not None:  # the ledger's claims that disagree are what the pages show
        claims = disc[["village_code", "indicator", "claimed"]]
    checks = checks_table(s.villages, t.villages, t.gaps, claims, labels)
    if out.exists() and not (out / "sample.json").is_file() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not a sample folder; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        write_csv(s.villages, tmp / "sample.csv")
        write_visit_list(s.villages, checks, tmp / "visit_list.xlsx")
        if pages:
            from buque.geo.report.visit import write_pages  # noqa: PLC0415

            head = {str(r.village_code): f"{r.county or ''} {r.township or ''} · 抽样第 {r.draw} 个"
                    f"（分层 {r.stratum or '全部'}）· 种子 {seed}"
                    for r in s.villages.itertuples(index=False)}
            write_pages(s.villages, t.villages, t.gaps, t.layers,
                        claims if claims is not None else pd.DataFrame(), labels, head,
                        f"Buque 运行 {manifest.get('run_id')} · 证据截至 {manifest.get('created')}",
                        tmp / "pages.pdf")
        meta = {"run_id": manifest.get("run_id"), "run": str(run),
                "run_manifest_sha256": sha256_file(run / "manifest.json"), **s.params,
                "strata": s.strata.to_dict(orient="records")}
        (tmp / "sample.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2,
                                                    default=int), encoding="utf-8")
        os.chmod(tmp, 0o755)
        replace_dir(tmp, out, marker=None)  # any earlier folder at ``out`` is replaced
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out, s
