"""Exit checks (贫困村退出, 贫困县摘帽): is each village due to exit this year ready, and if not,
what blocks it? See docs/exit.md.

One row per poor administrative village whose ``exit_year`` is the assessment year, and one per
county: ``ready``, each criterion's value and the blockers in words. A criterion is passed,
failed or unknown; an unknown never passes (its blocker says 待核实). Everything is computed
with group-bys over the villages, gaps and households; nothing loops over villages.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from buque.layers.exit_criteria import ExitCriteria
from buque.layers.indicator import Profile

EXIT_FIRST = ["scope", "village_code", "county", "ready"]
#: codes listed in a blocker before "等 N 个"
LIST_CODES = 5
PENDING = "待核实"


def criteria_of(profile: Profile) -> ExitCriteria | None:
    return (profile.extra or {}).get("exit")


def incidence(hh: pd.DataFrame, key: pd.Series, year: int) -> pd.DataFrame:
    """Per value of ``key`` (one per household): registered members, members of poor
    households not exited by ``year`` (no exit year: not exited), the incidence, and how many
    households lack the members or the poor flag (then the incidence is unknown)."""
    members = pd.to_numeric(hh["members"], errors="coerce").astype(float)
    poor = hh["poor"].astype("boolean")
    ey = pd.to_numeric(hh["exit_year"], errors="coerce").astype(float)
    not_exited = poor.fillna(False).to_numpy(bool) & ~(ey <= year).to_numpy(bool)
    unrec = members.isna().to_numpy(bool) | poor.isna().to_numpy(bool)
    f = pd.DataFrame({"key": key.to_numpy(dtype=object), "members": members.fillna(0).to_numpy(),
                      "poor_members": np.where(not_exited, members.fillna(0), 0.0),
                      "households": 1, "unrecorded": unrec.astype(np.int64)})
    g = f.groupby("key", sort=False)[["members", "poor_members", "households",
                                      "unrecorded"]].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        g["incidence"] = np.where(g["members"] > 0, g["poor_members"] / g["members"], np.nan)
    return g


def _pct(x: np.ndarray) -> np.ndarray:
    """Fractions as percent texts (``4.17``), empty where not a number."""
    return pd.Series(np.asarray(x, dtype=float) * 100).round(2).astype(str).fillna("") \
        .to_numpy(dtype=object)


def _incidence_verdict(inc: pd.DataFrame, keys: pd.Index, limit: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value, passed (1) / failed (0) / unknown (-1), and the blocker text per key."""
    g = inc.reindex(keys)
    val = g["incidence"].to_numpy(dtype=float)
    hh = g["households"].fillna(0).to_numpy()
    unrec = g["unrecorded"].fillna(0).to_numpy()
    unknown = (hh == 0) | (unrec > 0) | ~np.isfinite(val)
    ok = np.where(unknown, -1, np.where(val < limit, 1, 0))
    pct = _pct(val)
    lim = f"{limit * 100:g}%"
    text = np.select(
        [hh == 0, unrec > 0, ~np.isfinite(val), ok == 0],
        ["贫困发生率: 待核实 (户籍台账中没有本村农户)",
         "贫困发生率: 待核实 (" + pd.Series(unrec).astype(int).astype(str).to_numpy(dtype=object)
         + " 户缺家庭人口数或贫困户标识)",
         "贫困发生率: 待核实 (登记人口为 0)",
         "贫困发生率 " + pct + f"% 不低于 {lim}"], "").astype(object)
    val = np.where(unknown, np.nan, val)
    return val, ok, text


def _listings(bad: pd.DataFrame) -> pd.Series:
    """Per administrative village, ``本村, 自然村 A, B 等 N 个`` from its failing pairs
    (``own``: the administrative village's own pair)."""
    bad = bad.sort_values(["admin", "own"], ascending=[True, False], kind="stable")
    nat = bad[~bad["own"]]
    k = nat.groupby("admin").cumcount()
    n_nat = nat.groupby("admin").size()
    shown = nat[k < LIST_CODES].groupby("admin")["village_code"].agg(", ".join)
    admins = pd.Index(bad["admin"].unique())
    own = bad[bad["own"]].groupby("admin").size().reindex(admins).fillna(0).to_numpy() > 0
    nat_text = ("自然村 " + shown.reindex(admins).fillna("")).to_numpy(dtype=object)
    count = n_nat.reindex(admins).fillna(0).to_numpy()
    nat_text = np.where(count > LIST_CODES, nat_text + " 等 " + pd.Series(count).astype(int)
                        .astype(str).to_numpy(dtype=object) + " 个", nat_text)
    nat_text = np.where(count > 0, nat_text, "")
    text = np.where(own & (count > 0), "本村, " + nat_text, np.where(own, "本村", nat_text))
    return pd.Series(text, index=admins)


def village_rows(villages: pd.DataFrame, gaps: pd.DataFrame, hh: pd.DataFrame | None,
                 crit: ExitCriteria, profile: Profile, labels: dict[str, str], year: int
                 ) -> pd.DataFrame:
    """The rows of the villages due to exit in ``year``."""
    v = villages
    due = ((v["level"] == "admin") & v["poor"].astype("boolean").fillna(False)
           & (pd.to_numeric(v["exit_year"], errors="coerce").astype(float) == year)
           ).to_numpy(bool)
    d = v.loc[due, ["code", "county"]].reset_index(drop=True)
    codes = pd.Index(d["code"].astype(str))
    out = pd.DataFrame({"scope": "village", "village_code": d["code"].astype("string"),
                        "county": d["county"].astype("string")})
    blockers = [np.full(len(d), "", dtype=object)]
    ready = np.ones(len(d), dtype=bool)
    if crit.incidence_max is not None:
        inc = incidence(hh, hh["admin_code"], year) if hh is not None else pd.DataFrame(
            columns=["members", "poor_members", "households", "unrecorded", "incidence"])
        val, ok, text = _incidence_verdict(inc, codes, crit.incidence_max)
        if hh is None:
            text = np.full(len(d), "贫困发生率: 待核实 (项目没有户籍台账)", dtype=object)
        out["incidence"] = val
        ready &= ok == 1
        blockers.append(text)
    # each (village or natural village, indicator) pair, under its administrative village
    parent = pd.Series(v["village_code"].astype("string").to_numpy(),
                       index=v["code"].astype(str).to_numpy())
    g = gaps[["village_code", "level", "indicator", "status"]]
    g = g[g["indicator"].isin(crit.indicators)]
    nat = (g["level"] == "natural").to_numpy(bool)
    admin = np.where(nat, parent.reindex(g["village_code"].astype(str)).to_numpy(dtype=object),
                     g["village_code"].astype(str).to_numpy(dtype=object))
    g = g.assign(admin=admin, own=~nat)
    g = g[g["admin"].isin(codes) & (g["own"] | ~g["indicator"].isin(crit.admin_only))]
    rank = g["status"].map({"met": 0, "unknown": 1, "missing": 2}).fillna(1).astype(int)
    g = g.assign(rank=rank)
    for key in crit.indicators:
        gi = g[g["indicator"] == key]
        worst = gi.groupby("admin")["rank"].max().reindex(codes)
        status = np.select([worst == 0, worst == 2], ["met", "missing"], "unknown")
        out[key] = pd.array(status, dtype="string")
        ready &= status == "met"
        label = labels.get(key, key)
        text = np.full(len(d), "", dtype=object)
        none = worst.isna().to_numpy()
        text[none] = f"{label}: {PENDING} (未评估)"
        for rk, word in ((2, "未达标"), (1, PENDING)):
            bad = gi[gi["rank"] == rk]
            if len(bad):
                lst = _listings(bad.assign(village_code=bad["village_code"].astype(str)))
                sel = (status == ("missing" if rk == 2 else "unknown")) & ~none
                text[sel] = (f"{label}: {word} (" + lst.reindex(codes[sel]).to_numpy(dtype=object)
                             + ")")
        blockers.append(text)
    out["ready"] = ready
    out["blockers"] = _join(blockers)
    return out


def _join(parts: list[np.ndarray]) -> pd.Series:
    """Row-wise ``"; "``-join of the non-empty texts (one pass per criterion)."""
    out = np.asarray(parts[0], dtype=object) if parts else np.array([], dtype=object)
    for p in parts[1:]:
        p = np.asarray(p, dtype=object)
        out = np.where(out == "", p, np.where(p == "", out, out + "; " + p))
    return pd.Series(out, dtype="string")


def county_rows(villages: pd.DataFrame, gaps: pd.DataFrame, hh: pd.DataFrame | None,
                crit: ExitCriteria, year: int) -> pd.DataFrame:
    """One row per county (villages without a county: ``county`` empty)."""
    county_of = pd.Series(villages["county"].astype("string").fillna("").to_numpy(),
                          index=villages["code"].astype(str).to_numpy())
    counties = pd.Index(sorted(county_of.unique()))
    out = pd.DataFrame({"scope": "county", "village_code": pd.array([None] * len(counties),
                                                                    dtype="string"),
                        "county": pd.array(counties, dtype="string")})
    ready = np.ones(len(counties), dtype=bool)
    blockers = []
    key = None if hh is None else county_of.reindex(hh["admin_code"].astype(str)).to_numpy(
        dtype=object)
    if crit.county_incidence_max is not None:
        if hh is None:
            val, ok = np.full(len(counties), np.nan), np.full(len(counties), -1)
            text = np.full(len(counties), "贫困发生率: 待核实 (项目没有户籍台账)", dtype=object)
        else:
            inc = incidence(hh, pd.Series(key), year)
            val, ok, text = _incidence_verdict(inc, counties, crit.county_incidence_max)
            text = np.char.replace(text.astype(str), "本村", "本县").astype(object)
        out["incidence"] = val
        ready &= ok == 1
        blockers.append(text)
    g = gaps[["village_code", "level", "indicator", "status"]]
    g = g.assign(county=county_of.reindex(g["village_code"].astype(str)).to_numpy(dtype=object))
    for s in crit.shares:
        if s.indicator is not None:
            gi = g[(g["indicator"] == s.indicator) & ((g["level"] == s.level)
                                                        if s.level else True)]
            yes = (gi["status"] == "met").groupby(gi["county"]).sum()
            unk = (gi["status"] == "unknown").groupby(gi["county"]).sum()
            n = gi.groupby("county").size()
            what = {"admin": "行政村", "natural": "自然村"}.get(s.level or "", "村")
        else:
            if hh is None:
                yes = unk = n = pd.Series(dtype=float)
            else:
                f = hh[s.register_field].astype("boolean")
                yes = f.eq(True).fillna(False).groupby(key).sum()
                unk = f.isna().groupby(key).sum()
                n = f.groupby(key).size()
            what = "户"
        n = n.reindex(counties).fillna(0).to_numpy(dtype=float)
        yes = yes.reindex(counties).fillna(0).to_numpy(dtype=float)
        unk = unk.reindex(counties).fillna(0).to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            lo, hi = yes / n, (yes + unk) / n
        passed, failed = (n > 0) & (lo >= s.min), (n > 0) & (hi < s.min)
        out[s.column] = np.where(n > 0, lo, np.nan)
        ready &= passed
        lim = f"{s.min * 100:g}%"
        pct = _pct(lo)
        pend = pd.Series(unk).astype(int).astype(str).to_numpy(dtype=object)
        blockers.append(np.select(
            [n == 0, failed, ~passed],
            [f"{s.label}: {PENDING} (无评估{what})",
             f"{s.label} " + pct + f"% 低于 {lim}",
             f"{s.label}: {PENDING} (" + pct + f"% 低于 {lim}, 另有 " + pend
             + f" 个{what}待核实)"], "").astype(object))
    out["ready"] = ready
    out["blockers"] = _join([np.full(len(out), "", dtype=object), *blockers])
    return out


def exit_checks(villages: pd.DataFrame, gaps: pd.DataFrame, hh: pd.DataFrame | None,
                profile: Profile, year: int, labels: dict[str, str] | None = None
                ) -> pd.DataFrame | None:
    """``exit.csv``: the village rows then the county rows (None: the profile has no
    ``[exit]``). ``villages``: code, level, village_code, county, poor, exit_year; ``gaps``:
    village_code, level, indicator, status; ``hh``: the household register with
    ``admin_code``, or None when the project has none."""
    crit = criteria_of(profile)
    if crit is None:
        return None
    labels = labels or {k: i.label_zh for k, i in profile.indicators.items()}
    vr = village_rows(villages, gaps, hh, crit, profile, labels, year)
    cr = county_rows(villages, gaps, hh, crit, year) if crit.has_county else None
    out = pd.concat([vr, cr], ignore_index=True) if cr is not None else vr
    mid = [c for c in out.columns if c not in (*EXIT_FIRST, "blockers")]
    out = out[[*EXIT_FIRST, *mid, "blockers"]]
    out["ready"] = out["ready"].astype(bool)
    out["blockers"] = out["blockers"].fillna("")
    return out.reset_index(drop=True)
