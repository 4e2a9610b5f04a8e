"""One run, end to end: project -> layers -> villages -> gaps -> remedies, rates -> archive.

The CLI (``buque run``/``buque demo``) and any other caller use :func:`run_project`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from buque.geo.archive import RunTables, sha256_file, write_run
from buque.geo.columns import codes, first_occurrence, positions, take_text
from buque.geo.exit import criteria_of, exit_checks
from buque.geo.gaps import STATUSES, assess, evidence_classes
from buque.geo.inputs import Step, archived_layers, load_layers
from buque.geo.memory import release, use_system_pool
from buque.geo.metric import bands_of
from buque.geo.rates import summary
from buque.geo.remedies import remedies
from buque.geo.split import open_split
from buque.geo.version import tool_version
from buque.geo.villages import link_parents, reference_points
from buque.layers.errors import HEADER_LINES, BuqueInputError, Report
from buque.layers.households import load_registers
from buque.layers.official import UNLOCATED_COLUMNS, read_official, unlocated
from buque.layers.profile import Profile, load_profile
from buque.layers.project import Project, load_project
from buque.layers.readers import FILE, ROW
from buque.layers.registers import REGISTER_FIELDS
from buque.layers.schema import LAYER_FIELDS, LEVEL_OF_LAYER, VILLAGE_LAYERS


@dataclass
class RunResult:
    out: Path
    manifest: dict[str, Any]
    #: the run's tables (``layers`` without those a second process wrote: read them from ``out``)
    tables: RunTables
    #: processes the run used (:mod:`geo.split`)
    processes: int = 1


#: what a natural village without its own takes from its administrative village, as dtypes
INHERITED = {"county": "string", "township": "string", "poor": "boolean", "exit_year": "Int64"}


def prepare_villages(layers: dict[str, gpd.GeoDataFrame], report: Report) -> gpd.GeoDataFrame:
    """Administrative and natural villages in one table, with level, reference point and parent.

    Rows without a code, and later rows repeating an earlier code, are rejected.
    """
    frames = []
    kinds = [k for k in VILLAGE_LAYERS if k in layers]
    # the layer and file of each row as categories, the same in every frame (so that the
    # concatenation keeps them so: one byte per village, not a repeated path)
    files = list(dict.fromkeys(str(f) for k in kinds for f in pd.unique(layers[k][FILE])))
    for kind in kinds:
        f = layers[kind][FILE]
        g = layers[kind].assign(
            level=LEVEL_OF_LAYER[kind],
            _layer=pd.Categorical.from_codes(np.full(len(f), VILLAGE_LAYERS.index(kind), np.int8),
                                             categories=list(VILLAGE_LAYERS)),
            **{FILE: (f.cat.set_categories(files) if isinstance(f.dtype, pd.CategoricalDtype)
                      else pd.Categorical(f.astype(str), categories=files))})
        if "village_code" not in g:
            g["village_code"] = pd.Series(pd.NA, index=g.index, dtype="string")
        frames.append(g)
    cols = list(LAYER_FIELDS["natural_villages"]) + ["level", "_layer", ROW, FILE, "geometry"]
    if not frames:
        return gpd.GeoDataFrame({c: [] for c in cols}, geometry="geometry", crs="EPSG:4326")
    v = gpd.GeoDataFrame(pd.concat([f[cols] for f in frames], ignore_index=True),
                         geometry="geometry", crs="EPSG:4326")
    nocode = v["code"].isna().to_numpy()
    if nocode.any():  # (a copy of every column otherwise)
        _reject(report, v, nocode, "missing village code", "code")
        v = v.loc[~nocode].reset_index(drop=True)
    dup = ~first_occurrence(v["code"])
    if dup.any():
        first = v.loc[~dup].set_index("code")
        where = first[FILE].astype(str) + " row " + (first[ROW] + HEADER_LINES).astype(str)
        reasons = ("duplicate code (first seen in " + v.loc[dup, "code"].map(where) + ")").tolist()
        _reject(report, v, dup, reasons, "code")
        v = v.loc[~dup].reset_index(drop=True)
    lon, lat = reference_points(v.geometry.to_numpy(), v["ref_lon"].to_numpy(float, na_value=np.nan),
                                v["ref_lat"].to_numpy(float, na_value=np.nan))
    v["ref_lon"], v["ref_lat"] = lon, lat
    nat = (v["level"] == "natural").to_numpy()
    v["village_code_source"] = pd.Series(pd.NA, index=v.index, dtype="string")
    if nat.any():
        natpos = np.flatnonzero(nat)
        admin = v.loc[~nat, ["code", "ref_lon", "ref_lat", *INHERITED, "geometry"]]
        linked = link_parents(v.loc[nat, ["village_code", "geometry"]], admin)
        for col in ("village_code", "village_code_source"):
            values = v[col].astype("string").array.copy()
            values[natpos] = linked[col].array
            v[col] = values
        # a hamlet without its own place, poverty status or exit year has its parent's: the
        # hamlets of a poor village planned to exit share its priority
        parent = np.full(len(v), -1, dtype=np.int64)  # the parent's position in ``admin``
        parent[nat] = positions(v.loc[nat, "village_code"], admin["code"])
        for fld, dtype in INHERITED.items():
            col = v[fld].astype(dtype).array.copy()
            fill = np.flatnonzero(nat & (parent >= 0) & np.asarray(col.isna()))
            col[fill] = admin[fld].astype(dtype).array.take(parent[fill])
            v[fld] = col
        unknown_parent = nat & v["village_code"].notna().to_numpy() & (parent < 0)
        if unknown_parent.any() and len(admin):
            report.warn("", "natural_villages", v.loc[unknown_parent, ROW].to_numpy(),
                        "village_code names no administrative village of the inputs",
                        codes=v.loc[unknown_parent, "code"].to_numpy(),
                        names=v.loc[unknown_parent, "name"].to_numpy(), field="village_code")
    return v


def _reject(report: Report, v: pd.DataFrame, mask: np.ndarray, reason: str | list[str],
            field: str) -> None:
    """Record the rows of ``v`` under ``mask`` as rejected, per source file and layer."""
    if not mask.any():
        return
    sub = v.loc[mask]
    reasons = pd.Series(reason if not isinstance(reason, str) else [reason] * len(sub),
                        index=sub.index)
    for (file, layer), g in sub.groupby([FILE, "_layer"], sort=False):
        report.reject(str(file), str(layer), g[ROW].to_numpy(), reasons.loc[g.index].tolist(),
                      codes=g["code"].to_numpy(), names=g["name"].to_numpy(), field=field)


def village_table(v: gpd.GeoDataFrame, gaps: pd.DataFrame, profile: Profile) -> gpd.GeoDataFrame:
    """One row per village: attributes, a status and a distance column per indicator, ``missing``.

    ``gaps`` must carry ``_v``, each row's village position in ``v``.
    """
    n = len(v)
    out = v.drop(columns=["_layer", ROW, FILE]).reset_index(drop=True)
    pos = gaps["_v"].to_numpy()
    keys = list(profile.indicators)
    ind = codes(gaps["indicator"], keys)
    status = codes(gaps["status"], STATUSES)
    dist = gaps["distance_m"].to_numpy(dtype=float, na_value=np.nan)
    bits = np.zeros(n, dtype=np.int64)
    for j, k in enumerate(keys):
        sel = ind == j
        st = np.full(n, -1, dtype=np.int64)
        st[pos[sel]] = status[sel]
        d = np.full(n, np.nan)
        d[pos[sel]] = dist[sel]
        out[k] = take_text(STATUSES, st)  # code -1 (not assessed): null
        out[f"{k}_distance_m"] = d
        bits |= (st == STATUSES.index("missing")).astype(np.int64) << j
    # ``missing``: comma-joined keys, one string per distinct combination (no loop over villages)
    combos, inverse = np.unique(bits, return_inverse=True)
    text = np.array([",".join(k for j, k in enumerate(keys) if c >> j & 1) for c in combos],
                    dtype=object)
    out["n_missing"] = np.array([int(c).bit_count() for c in combos], dtype=np.int64)[inverse]
    out["missing"] = take_text(text, inverse)
    return gpd.GeoDataFrame(out, geometry="geometry", crs="EPSG:4326")


def run_project(project_path: str | Path, out: str | Path, *, standard: str | None = None,
                step: Step | None = None, fault: Callable[[str], None] | None = None,
                engine: str = "local", scheduler: str | None = None,
                partitions: int | None = None,
                progress: Callable[[int, int, str], None] | None = None,
                with_plan: str | Path | None = None, processes: int | None = None,
                fork_safe: bool = False) -> RunResult:
    """Run a project and write its archive to ``out`` (atomically). Raises on bad input.

    ``engine="dask"`` assesses partitions of the villages on a Dask cluster (``scheduler``
    address, default a local one; see :mod:`geo.distributed`); the archive is the same.
    ``with_plan``: a plan archive whose funded works are added to the layers (a scenario run,
    :mod:`geo.plan.apply`; the manifest names the plan).
    ``processes``: 2 lets a forked second process read and assess part of the feature layers
    (:mod:`geo.split`; the same archive), 1 keeps the run in this process, None (default)
    chooses 2 for inputs of :data:`geo.split.SPLIT_MIN_BYTES` to ``SPLIT_MAX_BYTES`` when this
    process may fork: no other thread is running, or ``fork_safe`` says the caller's threads touch nothing
    the child uses (the CLI's progress bar). Local engine without ``with_plan`` only.
    """
    t0 = time.perf_counter()
    use_system_pool()  # before the layers are read: see geo.memory
    timings: dict[str, float] = {}

    def mark(name: str) -> None:
        timings[name] = round(time.perf_counter() - t0 - sum(timings.values()), 3)

    project = load_project(project_path)
    profile = load_profile(standard or project.standard, base=project.base)
    # a second process for part of the layers (geo.split): forked now, before anything is read
    split = (open_split(project, profile, load_layers, Path(out), processes, fork_safe)
             if engine == "local" and with_plan is None else None)
    try:
        report = Report()
        if split is not None and step:
            step(f"reading {', '.join(split.kinds)} in a second process")
        try:
            layers, inputs = load_layers(split.parent_project(project) if split else project,
                                         report, step)
        except BuqueInputError as e:
            if split is not None:  # the child's earlier layer may be bad too: that one first
                split.raise_first(e)
            raise
        read_mark = (len(inputs), len(report.rejected), len(report.warnings))
        mark("read")
        if step:
            step("preparing villages")
        v = prepare_villages(layers, report)
        for kind in VILLAGE_LAYERS:  # v holds them now; keep one copy (at national size, ~1 GiB)
            layers.pop(kind, None)
        release()
        villages_in = sum(i["rows"] for i in inputs if i["layer"] in VILLAGE_LAYERS)
        official_rows = 0
        unloc = pd.DataFrame(columns=UNLOCATED_COLUMNS)
        if project.official is not None:
            official = read_official(project.official)
            official_rows = len(official)
            unloc = unlocated(official, v["code"])
            inputs.append({"layer": "official", "path": str(project.official.path), "source": "file",
                           "rows": official_rows, "sha256": sha256_file(project.official.path)})
            # the NBS list holds administrative villages only; natural villages are not in it
            listed = v["code"].isin(set(official["code"])) | (v["level"] != "admin")
            if (~listed).any():
                report.warn("", "villages", v.loc[~listed, ROW].to_numpy(),
                            "code not in the official village list",
                            codes=v.loc[~listed, "code"].to_numpy(),
                            names=v.loc[~listed, "name"].to_numpy(), field="code")
        registers, register_counts = load_registers(project.registers, v, report)
        for kind, spec in project.registers.items():
            inputs.append({"layer": kind, "path": str(spec.path), "source": "file",
                           "rows": register_counts[kind]["in"], "sha256": sha256_file(spec.path)})
        profile, fallback, not_assessed = _levels_present(profile, v, project, report)
        profile = _registers_present(profile, registers, not_assessed)
        mark("villages")
        if step:
            step(f"assessing {len(v):,} villages against '{profile.name}'")
        feature_layers = {k: g for k, g in layers.items() if k not in VILLAGE_LAYERS}
        plan_info = None
        if with_plan is not None:
            from buque.geo.plan.apply import add_plan
            from buque.geo.plan.archive import read_plan

            plan = read_plan(with_plan)
            feature_layers = add_plan(feature_layers, plan.works, profile)
            plan_info = {"plan_id": plan.meta.get("plan_id"), "path": str(Path(with_plan).resolve()),
                         "run_id": plan.meta.get("run", {}).get("run_id"),
                         "funded_works": plan.meta.get("totals", {}).get("funded_works")}
            inputs.append({"layer": "plan", "path": str(Path(with_plan).resolve()), "source": "plan",
                           "rows": int(len(plan.works)),
                           "sha256": sha256_file(Path(with_plan) / "plan.json")})
        classes = evidence_classes(feature_layers, profile)
        if engine == "dask":
            from buque.geo.distributed import assess_dask

            gaps = assess_dask(v, feature_layers, profile, scheduler=scheduler, partitions=partitions,
                               step=step, registers=registers)
        elif engine == "local":
            gaps = assess(v, feature_layers, profile, progress=progress, classes=classes,
                          registers=registers, elsewhere=split)
            if split is not None:  # its layers' input records and report rows, in their place
                split.merge_into(inputs, report, read_mark, list(project.layers))
        else:
            raise ValueError(f"unknown engine {engine!r} (local or dask)")
        release()  # the engine's per-band work is freed: give it back before the tables
        mark("assess")
        if step:
            step("remedies, rates, archive")
        projects = remedies(gaps, v, profile)
        exits = _exit_checks(project, v, gaps, registers, profile, report)
        summ = summary(gaps, v, profile)
        vt = village_table(v, gaps, profile)
        extra, ledger_entry = {}, None
        if project.ledger is not None:
            from buque.geo.ledger import check_ledger, labels_of, manifest_entry, with_counts

            if step:
                step(f"checking the ledger ({project.ledger.path.name})")
            check = check_ledger(project.ledger, gaps, vt, labels_of(profile), report)
            extra["discrepancies.csv"] = check.discrepancies
            summ = with_counts(summ, check.discrepancies)
            ledger_entry = manifest_entry(project.ledger, check)
        mark("tables")
        rejected = report.rejected_frame()
        assessed = int(np.count_nonzero(np.bincount(gaps["_v"].to_numpy(np.int64), minlength=1)))
        counts = {
            "villages_in": int(villages_in),
            "assessed": assessed,
            "rejected": int((rejected["layer"].isin(VILLAGE_LAYERS)).sum()),
            "not_applicable": int(len(v) - assessed),
            "by_level": {str(k): int(c) for k, c in v["level"].value_counts().items()},
            "features_rejected": int((~rejected["layer"].isin([*VILLAGE_LAYERS, *registers])).sum()),
            "warnings": int(len(report.warnings_frame())),
            "official_listed": official_rows,
            "unlocated": int(len(unloc)),
            "gaps": _status_counts(gaps),
            "remedy_cost": float(projects["cost"].sum()) if len(projects) else 0.0,
            **({"households": register_counts["households"]} if "households" in register_counts
               else {}),
            **({"exit": {scope: {"rows": int((exits["scope"] == scope).sum()),
                                 "ready": int(((exits["scope"] == scope) & exits["ready"]).sum())}
                         for scope in ("village", "county")}} if exits is not None else {}),
        }
        created = dt.datetime.now(dt.UTC)
        digest = hashlib.sha256("".join(sorted(i["sha256"] for i in inputs)).encode()
                                + profile.content_hash.encode()).hexdigest()
        manifest = {
            "run_id": f"{created:%Y%m%dT%H%M%SZ}-{digest[:8]}",
            "created": created.isoformat(timespec="seconds"),
            "tool": {"name": "buque", "version": tool_version()},
            "project": {"name": project.name, "path": str(project.path),
                        "sha256": sha256_file(project.path),
                        **({"year": project.year} if project.year is not None else {})},
            "profile": {"name": profile.name, "version": profile.version, "path": profile.path,
                        "sha256": profile.content_hash},
            "inputs": inputs,
            "inputs_digest": digest,
            "counts": counts,
            "metric_crs": [b.crs for b in bands_of(v["ref_lon"].to_numpy(float),
                                                   v["ref_lat"].to_numpy(float))],
            "attribution": _attribution(inputs),
            # indicators assessed at their profile's fallback level, and those not assessed
            "fallback": fallback,
            "not_assessed": not_assessed,
        }
        if ledger_entry is not None:
            manifest["ledger"] = ledger_entry
        if plan_info is not None:
            manifest["plan"] = plan_info
        del gaps["_v"]  # in place: at national size a copy of the pairs is gigabytes
        tables = RunTables(gaps=gaps, villages=vt, projects=projects, summary=summ,
                           rejected=rejected, warnings=report.warnings_frame(), unlocated=unloc,
                           layers=archived_layers(feature_layers, profile, classes), extra=extra,
                           exit=exits, layer_files=split.files() if split is not None else {})
        del v, layers, feature_layers  # the archive's tables hold what is written
        release()
        mark("prepare_write")
        write_run(Path(out), tables, manifest, fault=fault)
        mark("write")
        manifest["timings_s"] = timings
        return RunResult(out=Path(out).resolve(), manifest=manifest, tables=tables,
                         processes=1 if split is None else 2)
    finally:
        if split is not None:
            split.close()


def _status_counts(gaps: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per indicator, the number of pairs per status (statuses that occur), both sorted.

    Counted from the two columns' dictionary codes (a groupby of 15 M text rows builds
    gigabytes of keys at the run's memory peak)."""
    ind = pc.dictionary_encode(pa.array(gaps["indicator"].array))
    st = pc.dictionary_encode(pa.array(gaps["status"].array))
    n_ind, n_st = len(ind.dictionary) + 1, len(st.dictionary) + 1  # + 1: null, not counted
    i = pc.fill_null(ind.indices, n_ind - 1).to_numpy().astype(np.int64)
    flat = i * n_st + pc.fill_null(st.indices, n_st - 1).to_numpy()
    del i
    n = np.bincount(flat, minlength=n_ind * n_st).reshape(n_ind, n_st)[:-1, :-1]
    names, statuses = ind.dictionary.to_pylist(), st.dictionary.to_pylist()
    out: dict[str, dict[str, int]] = {}
    for i in np.argsort(names, kind="stable"):
        for j in np.argsort(statuses, kind="stable"):
            if n[i, j]:
                out.setdefault(str(names[i]), {})[str(statuses[j])] = int(n[i, j])
    return out


def _exit_checks(project: Project, v: pd.DataFrame, gaps: pd.DataFrame,
                 registers: dict[str, pd.DataFrame], profile: Profile, report: Report
                 ) -> pd.DataFrame | None:
    """``exit.csv`` when the project sets ``year`` and the profile has ``[exit]``."""
    if project.year is None:
        return None
    if criteria_of(profile) is None:
        report.note(str(project.path), "", f"year = {project.year} but profile "
                    f"'{profile.name}' has no [exit] criteria: no exit checks", field="year")
        return None
    return exit_checks(v, gaps, registers.get("households"), profile, project.year)


LEVEL_WORDS = {"admin": "administrative", "natural": "natural"}


def _levels_present(profile: Profile, v: pd.DataFrame, project: Project, report: Report
                    ) -> tuple[Profile, dict[str, str], dict[str, str]]:
    """The profile as these villages' levels allow, with a warning per indicator moved to its
    fallback level or left unassessed (e.g. water and power, natural-village indicators, in a
    project of administrative villages only)."""
    if not len(v):
        return profile, {}, {}
    eff, moved, skipped = profile.for_levels_present({str(x) for x in v["level"].dropna().unique()})
    layer_of = {lv: k for k, lv in LEVEL_OF_LAYER.items()}
    for key, lvl in moved.items():
        ind = profile.indicators[key]
        own = ", ".join(LEVEL_WORDS.get(x, x) for x in ind.levels)
        report.note(str(project.path), layer_of.get(ind.levels[0], ""),
                    f"no {own} villages in the inputs: {key} ({ind.label_zh}) assessed at the "
                    f"{LEVEL_WORDS.get(lvl, lvl)} village instead (profile fallback = "
                    f"\"{lvl}\")", field=key)
    for key in skipped:
        ind = profile.indicators[key]
        own = ", ".join(LEVEL_WORDS.get(x, x) for x in ind.levels)
        kinds = " or ".join(f"[layers.{layer_of[x]}]" for x in ind.levels if x in layer_of)
        report.note(str(project.path), layer_of.get(ind.levels[0], ""),
                    f"no {own} villages in the inputs: {key} ({ind.label_zh}) not assessed; "
                    f"give {kinds}, or set fallback = \"admin\" on indicators.{key} in a "
                    "profile to assess it at the administrative village", field=key)
        skipped[key] = f"no {own} villages in the inputs"
    return eff, moved, skipped


def _registers_present(profile: Profile, registers: dict[str, pd.DataFrame],
                       not_assessed: dict[str, str]) -> Profile:
    """The profile without the indicators whose register the project does not give (listed
    in the manifest's ``not_assessed``, which ``buque run`` prints): a register is optional."""
    drop = [k for k, i in profile.indicators.items()
            if i.layer in REGISTER_FIELDS and i.layer not in registers]
    for key in drop:
        not_assessed[key] = (f"no [registers.{profile.indicators[key].layer}] in the project")
    if not drop:
        return profile
    return replace(profile, indicators={k: i for k, i in profile.indicators.items()
                                        if k not in drop})


def _attribution(inputs: list[dict[str, Any]]) -> list[str]:
    if any(i["source"] == "osm" for i in inputs):
        return ["© OpenStreetMap contributors, ODbL 1.0"]
    return []
