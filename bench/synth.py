"""Generate a synthetic, province-sized Buque project (southern-Shaanxi-like, WGS84).

    python -m bench.synth OUT_DIR --admin 16000 --natural 110000 --roads 120000 --seed 0

Writes GeoPackages with canonical field names (see docs/inputs.md) plus ``project.toml``:

- ``villages.gpkg``          administrative villages: small irregular hexagons (``--admin-points``
                             turns a share of them into Points in the same, mixed-geometry layer)
- ``natural_villages.gpkg``  natural villages (Points) scattered around their admin village
- ``roads.gpkg``             short 2-4 vertex LineStrings, denser near villages
- ``power.gpkg``             power lines (``line``/``minor_line``) and transformer Points in ONE
                             mixed-geometry layer (``--power-layout lines`` drops the transformers)
- ``water.gpkg``, ``clinics.gpkg``, ``broadband.gpkg``  Points

Everything is vectorised numpy; the only Python loop is over counties (township assignment).
Below the province size (16000 admin villages) the area shrinks around the province centre so
that feature density, and hence the met/missing mix, stays the same at every size.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

PROVINCE_BBOX = (105.5, 31.5, 111.0, 34.0)  # lon_min, lat_min, lon_max, lat_max
PROVINCE_ADMIN = 16000  # admin villages at which the full rectangle is used
KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQ = 111.320

NAME_CHARS = np.array(list(dict.fromkeys("安平宁汉勉城固洋西巴留坝佛坪略阳南郑紫岚皋旬白河石泉山"
                                         "商丹凤柞水秦岭兴华新和丰永乐长青龙虎福寿康泰")))
SURNAMES = np.array(list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董"))
PLACE_SUFFIX = np.array(["湾", "沟", "坪", "坝", "岭", "庄", "河", "寨", "垭", "院子", "梁", "岔"])

SURFACES = np.array(["asphalt", "concrete", "cement", "gravel", "unpaved", "dirt", None],
                    dtype=object)
HIGHWAYS = np.array(["tertiary", "unclassified", "residential", "track"], dtype=object)
HIGHWAY_P = np.array([0.12, 0.38, 0.20, 0.30])
# P(surface | highway); columns follow SURFACES (last = null)
SURFACE_P = np.array([
    [0.55, 0.20, 0.10, 0.03, 0.00, 0.00, 0.12],  # tertiary
    [0.20, 0.25, 0.12, 0.15, 0.08, 0.05, 0.15],  # unclassified
    [0.15, 0.35, 0.15, 0.08, 0.05, 0.05, 0.17],  # residential
    [0.02, 0.08, 0.05, 0.30, 0.20, 0.20, 0.15],  # track
])

WATER_KINDS = np.array(["tap", "well", "spring", "water_works"], dtype=object)
WATER_KIND_P = np.array([0.45, 0.30, 0.17, 0.08])
# P(safe = True, False, null | kind)
WATER_SAFE_P = np.array([
    [0.85, 0.05, 0.10],
    [0.50, 0.30, 0.20],
    [0.25, 0.45, 0.30],
    [0.95, 0.00, 0.05],
])


# --------------------------------------------------------------------------- helpers

def _categorical(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray | None = None,
                 n: int | None = None) -> np.ndarray:
    """Vectorised categorical draw: one index per row of ``probs[rows]`` (or n draws of probs)."""
    if rows is None:
        cum = np.cumsum(probs)
        u = rng.random(n)
        return np.minimum(np.searchsorted(cum / cum[-1], u, side="right"), len(probs) - 1)
    cum = np.cumsum(probs, axis=1)
    cum = cum / cum[:, -1:]
    u = rng.random(len(rows))
    return np.minimum((u[:, None] >= cum[rows]).sum(axis=1), probs.shape[1] - 1)


class LocalFrame:
    """Equirectangular km <-> degree conversion around a reference latitude."""

    def __init__(self, lon0: float, lat0: float):
        self.lon0, self.lat0 = lon0, lat0
        self.kx = KM_PER_DEG_LON_EQ * math.cos(math.radians(lat0))

    def to_deg(self, x_km: np.ndarray, y_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.lon0 + x_km / self.kx, self.lat0 + y_km / KM_PER_DEG_LAT


def _cumcount(groups_sorted: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal values (input sorted)."""
    n = len(groups_sorted)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups_sorted[1:] != groups_sorted[:-1]])
    return np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))


def _lloyd(xy: np.ndarray, k: int, rng: np.random.Generator, iters: int = 6) -> np.ndarray:
    """Assign points to k compact clusters (a few Lloyd iterations from random seeds)."""
    k = max(1, min(k, len(xy)))
    seeds = xy[rng.choice(len(xy), size=k, replace=False)].copy()
    label = np.zeros(len(xy), dtype=np.int64)
    for _ in range(iters):
        d2 = ((xy[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2)
        label = d2.argmin(axis=1)
        cnt = np.bincount(label, minlength=k)
        ok = cnt > 0
        for dim in (0, 1):
            sums = np.bincount(label, weights=xy[:, dim], minlength=k)
            seeds[ok, dim] = sums[ok] / cnt[ok]
    # relabel compactly (drop empty clusters), ordered north-west to south-east
    used = np.unique(label)
    order = used[np.lexsort((seeds[used, 0], -np.round(seeds[used, 1] / 10.0)))]
    remap = np.empty(k, dtype=np.int64)
    remap[order] = np.arange(len(order))
    return remap[label]


def _polylines(x0: np.ndarray, y0: np.ndarray, nverts: np.ndarray, length_km: np.ndarray,
               wiggle_deg: float, frame: LocalFrame, rng: np.random.Generator) -> np.ndarray:
    """Random-walk polylines centred on (x0, y0) km, ``nverts`` vertices, total ``length_km``."""
    n = len(x0)
    vmax = int(nverts.max())
    nseg = nverts - 1
    seg_len = length_km / nseg
    heading = rng.uniform(0, 2 * np.pi, n)[:, None] + np.cumsum(
        np.radians(rng.normal(0, wiggle_deg, (n, vmax - 1))), axis=1)
    valid_seg = np.arange(vmax - 1)[None, :] < nseg[:, None]
    dx = np.where(valid_seg, np.cos(heading) * seg_len[:, None], 0.0)
    dy = np.where(valid_seg, np.sin(heading) * seg_len[:, None], 0.0)
    vx = np.concatenate([np.zeros((n, 1)), np.cumsum(dx, axis=1)], axis=1)
    vy = np.concatenate([np.zeros((n, 1)), np.cumsum(dy, axis=1)], axis=1)
    # centre each line on its anchor (midpoint between first and last vertex)
    last = nverts - 1
    mx = vx[np.arange(n), last] / 2
    my = vy[np.arange(n), last] / 2
    vx = vx - mx[:, None] + x0[:, None]
    vy = vy - my[:, None] + y0[:, None]
    mask = np.arange(vmax)[None, :] < nverts[:, None]
    lon, lat = frame.to_deg(vx[mask], vy[mask])
    idx = np.repeat(np.arange(n), nverts)
    return shapely.linestrings(np.column_stack([lon, lat]), indices=idx)


def _ids(prefix: str, n: int) -> pd.Series:
    width = max(6, len(str(n)))
    return prefix + pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(width)


def _write(gdf: gpd.GeoDataFrame, path: Path) -> None:
    if path.exists():
        path.unlink()
    gdf.to_file(path, driver="GPKG", engine="pyogrio", use_arrow=True)


# --------------------------------------------------------------------------- generator

def generate(out_dir: str | Path, admin: int = 16000, natural: int = 110000, roads: int = 120000,
             seed: int = 0, counties: int | None = None, townships: int = 15,
             admin_points: float = 0.0, power_layout: str = "mixed",
             bbox: tuple[float, float, float, float] | None = None,
             verbose: bool = True) -> dict[str, int]:
    """Write the synthetic project into ``out_dir``; return feature counts per file."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    layers, meta = build_layers(admin=admin, natural=natural, roads=roads, seed=seed,
                                counties=counties, townships=townships,
                                admin_points=admin_points, power_layout=power_layout, bbox=bbox)
    t_gen = time.perf_counter() - t0
    lon_a, lat_a, lon_b, lat_b = meta["bbox"]

    # ---- write
    counts = {}
    for key, gdf in layers.items():
        _write(gdf, out / f"{key}.gpkg")
        counts[key] = len(gdf)
    toml = [
        f'name = "Synthetic province (seed {seed}, {admin} admin villages)"',
        'standard = "national"', "",
    ]
    for key in layers:
        toml += [f"[layers.{key}]", f'path = "{key}.gpkg"', ""]
    (out / "project.toml").write_text("\n".join(toml), encoding="utf-8")
    t_all = time.perf_counter() - t0

    if verbose:
        print(f"area: lon {lon_a:.3f}-{lon_b:.3f}, lat {lat_a:.3f}-{lat_b:.3f} "
              f"({meta['width_km']:.0f} x {meta['height_km']:.0f} km); {meta['counties']} "
              f"counties, {meta['townships']} townships")
        for key, n in counts.items():
            size = (out / f"{key}.gpkg").stat().st_size / 1e6
            extra = ""
            if key == "power":
                extra = (f"  ({meta['n_minor']} minor_line, {meta['n_hv']} line, "
                         f"{meta['n_trafo']} transformer)")
            print(f"  {key + '.gpkg':24s} {n:8d} features {size:8.1f} MB{extra}")
        print(f"generated in {t_gen:.1f} s, written in {t_all - t_gen:.1f} s, "
              f"total {t_all:.1f} s -> {out / 'project.toml'}")
    return counts


def build_layers(admin: int = 16000, natural: int = 110000, roads: int = 120000, seed: int = 0,
                 counties: int | None = None, townships: int = 15, admin_points: float = 0.0,
                 power_layout: str = "mixed",
                 bbox: tuple[float, float, float, float] | None = None
                 ) -> tuple[dict[str, gpd.GeoDataFrame], dict]:
    """The synthetic layers in memory (what :func:`generate` writes), and facts about them."""
    rng = np.random.default_rng(seed)
    if admin < 1 or natural < 0 or roads < 0:
        raise ValueError("--admin must be >= 1, --natural and --roads >= 0")

    # ---- area: full province rectangle, shrunk (constant density) below province size
    if bbox is None:
        lon_a, lat_a, lon_b, lat_b = PROVINCE_BBOX
        s = min(1.0, math.sqrt(admin / PROVINCE_ADMIN))
        clon, clat = (lon_a + lon_b) / 2, (lat_a + lat_b) / 2
        bbox = (clon - (lon_b - lon_a) * s / 2, clat - (lat_b - lat_a) * s / 2,
                clon + (lon_b - lon_a) * s / 2, clat + (lat_b - lat_a) * s / 2)
    lon_a, lat_a, lon_b, lat_b = bbox
    frame = LocalFrame(lon_a, (lat_a + lat_b) / 2)
    width_km = (lon_b - lon_a) * frame.kx
    height_km = (lat_b - lat_a) * KM_PER_DEG_LAT
    y_lo = -height_km / 2  # y measured from the centre latitude

    # ---- admin village centres: weighted jittered lattice (valleys dense, ridges sparse)
    ncells_target = 2 * admin
    cell = math.sqrt(width_km * height_km / ncells_target)
    ncols, nrows = max(1, round(width_km / cell)), max(1, round(height_km / cell))
    while ncols * nrows < admin:
        ncols, nrows = ncols + 1, nrows + 1
    cw, ch = width_km / ncols, height_km / nrows
    gx, gy = np.meshgrid((np.arange(ncols) + 0.5) * cw, y_lo + (np.arange(nrows) + 0.5) * ch)
    gx, gy = gx.ravel(), gy.ravel()
    u, v = gx / width_km, (gy - y_lo) / height_km  # 0..1 across the area
    valley = 0.55 + 0.12 * np.sin(2 * np.pi * (u * 1.3 + 0.2))  # a Han-river-like band
    dens = 0.15 + np.exp(-((v - valley) / 0.12) ** 2)
    nb = 40
    bx, by = rng.random(nb), rng.random(nb)
    bw, br = rng.uniform(0.3, 1.0, nb), rng.uniform(0.03, 0.08, nb)
    dens += (bw[None, :] * np.exp(-((u[:, None] - bx) ** 2 + (v[:, None] - by) ** 2)
                                  / (2 * br**2))).sum(axis=1)
    keys = np.log(dens) + rng.gumbel(size=dens.size)  # Gumbel top-k = weighted sampling w/o repl.
    pick = np.argpartition(-keys, admin - 1)[:admin]
    ax = gx[pick] + rng.uniform(-0.2, 0.2, admin) * cw
    ay = gy[pick] + rng.uniform(-0.2, 0.2, admin) * ch
    axy = np.column_stack([ax, ay])
    spacing = min(cw, ch)

    # ---- counties and townships (compact clusters), codes and names
    n_counties = counties if counties else max(1, round(admin / 160))
    county = _lloyd(axy, n_counties, rng)
    n_counties = int(county.max()) + 1
    township_local = np.zeros(admin, dtype=np.int64)
    for c in range(n_counties):
        m = county == c
        township_local[m] = _lloyd(axy[m], townships, rng)
    if township_local.max() >= 900:
        raise ValueError("too many townships per county for 3-digit township codes")
    county_code = 610000 + 100 * (1 + county // 30) + (2 + county % 30)
    twp_code = county_code * 1000 + 100 + township_local
    order = np.lexsort((ax, -ay, twp_code))
    seq = np.empty(admin, dtype=np.int64)
    seq[order] = _cumcount(twp_code[order])
    if seq.max() >= 800:
        raise ValueError("too many villages per township for 3-digit village codes; "
                         "raise --counties or --townships")
    admin_code_int = twp_code * 1000 + 200 + seq  # 12 digits, starts with 61

    pairs = rng.permutation(len(NAME_CHARS) ** 2)
    nc = len(NAME_CHARS)
    cpair = pairs[county % len(pairs)]
    county_name = (pd.Series(NAME_CHARS[cpair // nc]) + NAME_CHARS[cpair % nc] + "县")
    tglob = np.unique(twp_code, return_inverse=True)[1]
    tpair = pairs[(tglob * 7919 + 13) % len(pairs)]
    twp_stem = pd.Series(NAME_CHARS[tpair // nc]) + NAME_CHARS[tpair % nc]
    township_name = twp_stem + "镇"
    admin_name = twp_stem + pd.Series(seq + 1).astype(str) + "村"

    # ---- natural villages around their admin village
    # every admin village gets a seat hamlet (when there are enough), the rest by Dirichlet weights
    base = 1 if natural >= admin else 0
    nat_per = base + rng.multinomial(natural - base * admin, rng.dirichlet(np.full(admin, 4.0)))
    if nat_per.max(initial=0) >= 999:
        raise ValueError("too many natural villages per admin village for 3-digit codes")
    parent = np.repeat(np.arange(admin), nat_per)
    k = _cumcount(parent)
    sigma = np.where(k == 0, 0.25, 1.0)  # the first hamlet is the village seat
    nx = ax[parent] + rng.normal(0, 1, natural) * sigma
    ny = ay[parent] + rng.normal(0, 1, natural) * sigma
    nat_hh = np.clip(np.round(rng.lognormal(math.log(34), 0.75, natural)), 5, 120).astype(np.int64)
    nat_pop = np.round(nat_hh * rng.uniform(2.6, 3.8, natural)).astype(np.int64)
    nat_code = (admin_code_int[parent] * 1000 + 1 + k).astype(str)
    nat_name = (pd.Series(SURNAMES[rng.integers(0, len(SURNAMES), natural)]) + "家"
                + PLACE_SUFFIX[rng.integers(0, len(PLACE_SUFFIX), natural)])
    vcode = pd.Series(admin_code_int[parent].astype(str), dtype="str")
    vcode = vcode.where(rng.random(natural) >= 0.10)  # 10 % null: derive spatially
    nlon, nlat = frame.to_deg(nx, ny)
    nat_gdf = gpd.GeoDataFrame({
        "code": pd.Series(nat_code, dtype="str"), "name": nat_name, "village_code": vcode,
        "households": nat_hh, "population": nat_pop,
    }, geometry=shapely.points(nlon, nlat), crs="EPSG:4326")

    # ---- admin attributes and geometry
    adm_hh = np.bincount(parent, weights=nat_hh, minlength=admin).astype(np.int64)
    adm_hh = np.where(adm_hh > 0, adm_hh, rng.integers(80, 300, admin))
    adm_pop = np.round(adm_hh * rng.uniform(2.9, 3.6, admin)).astype(np.int64)
    poor = rng.random(admin) < 0.30
    exit_year = pd.array(np.where(poor, rng.integers(2016, 2021, admin), 0), dtype="Int64")
    exit_year[~poor] = pd.NA
    alon, alat = frame.to_deg(ax, ay)
    # irregular hexagons, 1-2 km across (capped so neighbours rarely overlap)
    radius = np.minimum(rng.uniform(0.5, 0.9, admin), 0.32 * spacing)
    ang = (np.arange(6)[None, :] * (np.pi / 3) + rng.uniform(0, np.pi / 3, admin)[:, None]
           + rng.uniform(-0.25, 0.25, (admin, 6)))
    rad = radius[:, None] * rng.uniform(0.75, 1.15, (admin, 6))
    px = ax[:, None] + rad * np.cos(ang)
    py = ay[:, None] + rad * np.sin(ang)
    plon, plat = frame.to_deg(px, py)
    ring = np.stack([plon, plat], axis=2)
    ring = np.concatenate([ring, ring[:, :1, :]], axis=1)
    geoms = shapely.polygons(ring)
    as_point = rng.random(admin) < admin_points
    if as_point.any():
        geoms[as_point] = shapely.points(alon[as_point], alat[as_point])
    adm_gdf = gpd.GeoDataFrame({
        "code": pd.Series(admin_code_int.astype(str), dtype="str"), "name": admin_name,
        "county": county_name, "township": township_name,
        "population": adm_pop, "households": adm_hh, "poor": poor, "exit_year": exit_year,
    }, geometry=geoms, crs="EPSG:4326")

    # ---- roads: short 2-4 vertex segments, 80 % anchored near (natural) villages
    def anchors(n: int, share: float, sd_km: float, src_x: np.ndarray, src_y: np.ndarray,
                weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        near = rng.random(n) < share
        nn = int(near.sum())
        x = rng.uniform(0, width_km, n)
        y = rng.uniform(y_lo, y_lo + height_km, n)
        if nn and len(src_x):
            p = None if weights is None else weights / weights.sum()
            j = rng.choice(len(src_x), size=nn, p=p)
            x[near] = src_x[j] + rng.normal(0, sd_km, nn)
            y[near] = src_y[j] + rng.normal(0, sd_km, nn)
        return x, y

    hub_x = np.r_[ax, nx]
    hub_y = np.r_[ay, ny]
    hub_w = np.r_[adm_hh * 0.5, nat_hh].astype(float)
    rx, ry = anchors(roads, 0.80, 0.6, hub_x, hub_y, hub_w)
    highway_i = _categorical(rng, HIGHWAY_P, n=roads)
    surface_i = _categorical(rng, SURFACE_P, rows=highway_i)
    width = np.round(rng.uniform(3, 8, roads) * 2) / 2
    width[rng.random(roads) < 0.2] = np.nan
    road_geom = _polylines(rx, ry, rng.integers(2, 5, roads), rng.uniform(0.2, 1.5, roads),
                           25.0, frame, rng) if roads else np.array([], dtype=object)
    roads_gdf = gpd.GeoDataFrame({
        "id": _ids("R", roads), "surface": pd.Series(SURFACES[surface_i], dtype="str"),
        "width_m": width, "highway": pd.Series(HIGHWAYS[highway_i], dtype="str"),
    }, geometry=road_geom, crs="EPSG:4326")

    # ---- power: 10 kV minor lines near hamlets, long HV lines, transformers at hamlets
    n_minor = int(0.12 * natural)
    n_hv = max(1, admin // 40)
    n_trafo = int(0.30 * natural) if power_layout == "mixed" else 0
    mx_, my_ = anchors(n_minor, 0.9, 0.7, nx, ny)
    minor = _polylines(mx_, my_, rng.integers(3, 7, n_minor), rng.uniform(0.8, 3.5, n_minor),
                       30.0, frame, rng) if n_minor else np.array([], dtype=object)
    hx, hy = anchors(n_hv, 0.0, 0.0, nx, ny)
    hv = _polylines(hx, hy, rng.integers(6, 11, n_hv), rng.uniform(8, 30, n_hv), 15.0, frame, rng)
    if n_trafo and natural:
        j = rng.choice(natural, size=n_trafo, p=nat_hh / nat_hh.sum())
        tlon, tlat = frame.to_deg(nx[j] + rng.normal(0, 0.15, n_trafo),
                                  ny[j] + rng.normal(0, 0.15, n_trafo))
        trafo = shapely.points(tlon, tlat)
    else:
        trafo = np.array([], dtype=object)
    p_kind = np.r_[np.full(n_minor, "minor_line", dtype=object),
                   np.full(n_hv, "line", dtype=object),
                   np.full(len(trafo), "transformer", dtype=object)]
    p_volt = np.r_[np.where(rng.random(n_minor) < 0.85, 10000, 400),
                   rng.choice(np.array([35000, 110000, 330000]), n_hv, p=[0.6, 0.3, 0.1]),
                   np.full(len(trafo), 10000)]
    power_gdf = gpd.GeoDataFrame({
        "id": _ids("P", len(p_kind)), "kind": pd.Series(p_kind, dtype="str"),
        "voltage": p_volt.astype(np.int64),
    }, geometry=np.r_[minor, hv, trafo], crs="EPSG:4326")

    # ---- water points near hamlets (works near admin seats)
    n_water = int(0.55 * natural)
    w_kind = _categorical(rng, WATER_KIND_P, n=n_water)
    wx, wy = anchors(n_water, 0.9, 0.5, nx, ny)
    works = w_kind == 3
    if works.any():
        j = rng.integers(0, admin, int(works.sum()))
        wx[works] = ax[j] + rng.normal(0, 0.8, len(j))
        wy[works] = ay[j] + rng.normal(0, 0.8, len(j))
    safe_i = _categorical(rng, WATER_SAFE_P, rows=w_kind)
    safe = pd.array(safe_i == 0, dtype="boolean")
    safe[safe_i == 2] = pd.NA
    wlon, wlat = frame.to_deg(wx, wy)
    water_gdf = gpd.GeoDataFrame({
        "id": _ids("W", n_water), "kind": pd.Series(WATER_KINDS[w_kind], dtype="str"),
        "safe": safe,
    }, geometry=shapely.points(wlon, wlat), crs="EPSG:4326")

    # ---- clinics: village clinics at ~60 % of admin villages + township health centres
    vil = np.flatnonzero(rng.random(admin) < 0.55)
    first_in_twp = np.flatnonzero(seq == 0)
    cidx = np.r_[vil, first_in_twp]
    n_cl = len(cidx)
    clon, clat = frame.to_deg(ax[cidx] + rng.normal(0, 0.3, n_cl),
                              ay[cidx] + rng.normal(0, 0.3, n_cl))
    level = np.r_[np.full(len(vil), "village", dtype=object),
                  np.full(len(first_in_twp), "township", dtype=object)]
    std = np.r_[rng.random(len(vil)) < 0.65, rng.random(len(first_in_twp)) < 0.95]
    clinics_gdf = gpd.GeoDataFrame({
        "id": _ids("C", n_cl), "level": pd.Series(level, dtype="str"), "standardized": std,
    }, geometry=shapely.points(clon, clat), crs="EPSG:4326")

    # ---- broadband towers near admin villages
    n_tw = max(1, admin // 9)
    tx, ty = anchors(n_tw, 0.85, 1.0, ax, ay)
    twlon, twlat = frame.to_deg(tx, ty)
    towers_gdf = gpd.GeoDataFrame({
        "id": _ids("T", n_tw), "kind": pd.Series(np.full(n_tw, "tower", dtype=object), dtype="str"),
        "radius_m": np.round(rng.uniform(2000, 5000, n_tw), -1),
    }, geometry=shapely.points(twlon, twlat), crs="EPSG:4326")
    layers = {
        "villages": adm_gdf, "natural_villages": nat_gdf, "roads": roads_gdf,
        "power": power_gdf, "water": water_gdf, "clinics": clinics_gdf,
        "broadband": towers_gdf,
    }
    meta = {"bbox": (lon_a, lat_a, lon_b, lat_b), "width_km": width_km, "height_km": height_km,
            "counties": n_counties, "townships": len(np.unique(twp_code)), "n_minor": n_minor,
            "n_hv": n_hv, "n_trafo": len(trafo)}
    return layers, meta


# --------------------------------------------------------------------------- streaming mode

NATIONAL_BBOX = (98.0, 22.0, 122.0, 42.0)  # China-sized: UTM zones 47-51
NATIONAL_GRID = (8, 5)  # columns x rows of province-like blocks
NATIONAL_ADMIN = 500000  # admin villages at which the blocks fill the whole rectangle
_GEOMETRY_TYPE = {"villages": "Polygon", "natural_villages": "Point", "roads": "LineString",
                  "power": "Unknown", "water": "Point", "clinics": "Point", "broadband": "Point"}


def _split(n: int, parts: int) -> np.ndarray:
    """``n`` as ``parts`` near-equal non-negative integers."""
    return np.full(parts, n // parts, dtype=np.int64) + (np.arange(parts) < n % parts)


def generate_stream(out_dir: str | Path, admin: int = 500000, natural: int = 2600000,
                    roads: int = 5200000, seed: int = 0,
                    bbox: tuple[float, float, float, float] = NATIONAL_BBOX,
                    grid: tuple[int, int] = NATIONAL_GRID, full_admin: int = NATIONAL_ADMIN,
                    townships: int = 15, admin_points: float = 0.0, power_layout: str = "mixed",
                    verbose: bool = True) -> dict[str, int]:
    """Write a national-sized project in chunks: memory is bounded by one chunk.

    ``bbox`` is cut into ``grid`` (columns, rows) cells; each cell gets one province-like block
    made by :func:`build_layers` (its own seed, province code ``11 + block``, ids prefixed with
    the block number) that is appended to the GeoPackages before the next block is made.
    Below ``full_admin`` administrative villages each block shrinks around its cell's centre, so
    density (and the met/missing mix) stays the same at every size while the blocks still span
    the whole rectangle (several UTM zones). GeoPackages are written without a spatial index
    (Buque reads whole layers and does not need one); returns feature counts per file.
    """
    import pyogrio

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ncol, nrow = grid
    nblocks = ncol * nrow
    if nblocks > 89:
        raise ValueError("at most 89 blocks (two-digit province codes 11-99)")
    if admin < nblocks:
        raise ValueError(f"--admin must be at least the number of blocks ({nblocks})")
    lon_a, lat_a, lon_b, lat_b = bbox
    cw, ch = (lon_b - lon_a) / ncol, (lat_b - lat_a) / nrow
    s = min(1.0, math.sqrt(admin / full_admin))
    n_adm, n_nat, n_rd = _split(admin, nblocks), _split(natural, nblocks), _split(roads, nblocks)
    for key in _GEOMETRY_TYPE:
        (out / f"{key}.gpkg").unlink(missing_ok=True)
    counts = dict.fromkeys(_GEOMETRY_TYPE, 0)
    pairs = np.random.default_rng(seed).permutation(len(NAME_CHARS) ** 2)
    nc = len(NAME_CHARS)
    for b in range(nblocks):
        tb = time.perf_counter()
        row, col = divmod(b, ncol)
        clon, clat = lon_a + (col + 0.5) * cw, lat_b - (row + 0.5) * ch
        block_bbox = (clon - cw * s / 2, clat - ch * s / 2, clon + cw * s / 2, clat + ch * s / 2)
        layers, _ = build_layers(admin=int(n_adm[b]), natural=int(n_nat[b]), roads=int(n_rd[b]),
                                 seed=seed * 1000 + b + 1, townships=townships,
                                 admin_points=admin_points, power_layout=power_layout,
                                 bbox=block_bbox)
        prov = f"{11 + b:02d}"
        prov_name = NAME_CHARS[pairs[b] // nc] + NAME_CHARS[pairs[b] % nc] + "省"
        for key, gdf in layers.items():
            for col_name in ("code", "village_code"):
                if col_name in gdf:
                    gdf[col_name] = prov + gdf[col_name].str.slice(2)
            if "county" in gdf:
                gdf["county"] = prov_name + gdf["county"]
            if "id" in gdf:
                gdf["id"] = gdf["id"].str.slice(0, 1) + f"{b:02d}" + gdf["id"].str.slice(1)
            geometry_type = ("Unknown" if key == "villages" and admin_points > 0
                             else _GEOMETRY_TYPE[key])
            pyogrio.write_dataframe(gdf, out / f"{key}.gpkg", layer=key, driver="GPKG",
                                    append=b > 0, geometry_type=geometry_type,
                                    layer_options=None if b else {"SPATIAL_INDEX": "NO"})
            counts[key] += len(gdf)
        del layers
        if verbose:
            print(f"  block {b + 1:2d}/{nblocks} lon {block_bbox[0]:.2f}-{block_bbox[2]:.2f} "
                  f"lat {block_bbox[1]:.2f}-{block_bbox[3]:.2f}: {n_adm[b]} admin, {n_nat[b]} "
                  f"natural, {n_rd[b]} roads in {time.perf_counter() - tb:.1f} s", flush=True)
    toml = [f'name = "Synthetic country (seed {seed}, {admin} admin villages, {nblocks} blocks)"',
            'standard = "national"', ""]
    for key in _GEOMETRY_TYPE:
        toml += [f"[layers.{key}]", f'path = "{key}.gpkg"', ""]
    (out / "project.toml").write_text("\n".join(toml), encoding="utf-8")
    if verbose:
        for key, n in counts.items():
            size = (out / f"{key}.gpkg").stat().st_size / 1e6
            print(f"  {key + '.gpkg':24s} {n:9d} features {size:9.1f} MB")
        print(f"streamed {nblocks} blocks in {time.perf_counter() - t0:.1f} s "
              f"-> {out / 'project.toml'}")
    return counts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m bench.synth",
        description="Generate a synthetic province-sized Buque project (GeoPackages + "
                    "project.toml) for benchmarking.")
    ap.add_argument("out_dir", metavar="OUT_DIR", help="directory to write (created if needed)")
    ap.add_argument("--admin", type=int, default=16000, help="admin villages (default 16000)")
    ap.add_argument("--natural", type=int, default=110000,
                    help="natural villages (default 110000)")
    ap.add_argument("--roads", type=int, default=120000, help="road segments (default 120000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--counties", type=int, default=None,
                    help="number of counties (default admin/160, i.e. ~100 at province size)")
    ap.add_argument("--townships", type=int, default=15,
                    help="townships per county (default 15)")
    ap.add_argument("--admin-points", type=float, default=0.0, metavar="SHARE",
                    help="share of admin villages written as Points instead of polygons, in the "
                         "same (then mixed-geometry) layer (default 0: all polygons)")
    ap.add_argument("--power-layout", choices=["mixed", "lines"], default="mixed",
                    help="mixed: lines + transformer points in one layer (default); "
                         "lines: power lines only")
    ap.add_argument("--bbox", type=float, nargs=4, default=None,
                    metavar=("LON_MIN", "LAT_MIN", "LON_MAX", "LAT_MAX"),
                    help="area (default: the province rectangle 105.5 31.5 111.0 34.0, shrunk "
                         "around its centre below 16000 admin villages to keep density)")
    ap.add_argument("--stream", action="store_true",
                    help="national mode: write the layers in chunks, one province-like block "
                         "per cell of --grid over --bbox (default the China-sized rectangle "
                         f"{' '.join(map(str, NATIONAL_BBOX))}), appending each block to the "
                         "GeoPackages before making the next; memory stays that of one block. "
                         "Blocks shrink around their cells' centres below --full-admin admin "
                         "villages so density stays the same")
    ap.add_argument("--grid", type=int, nargs=2, default=list(NATIONAL_GRID),
                    metavar=("COLUMNS", "ROWS"),
                    help=f"with --stream: blocks (default {NATIONAL_GRID[0]} {NATIONAL_GRID[1]})")
    ap.add_argument("--full-admin", type=int, default=NATIONAL_ADMIN,
                    help=f"with --stream: admin villages that fill --bbox (default "
                         f"{NATIONAL_ADMIN})")
    a = ap.parse_args(argv)
    if a.stream:
        if a.counties is not None:
            ap.error("--counties does not apply with --stream (each block has admin/160)")
        generate_stream(a.out_dir, admin=a.admin, natural=a.natural, roads=a.roads, seed=a.seed,
                        bbox=tuple(a.bbox) if a.bbox else NATIONAL_BBOX, grid=tuple(a.grid),
                        full_admin=a.full_admin, townships=a.townships,
                        admin_points=a.admin_points, power_layout=a.power_layout)
        return
    generate(a.out_dir, admin=a.admin, natural=a.natural, roads=a.roads, seed=a.seed,
             counties=a.counties, townships=a.townships, admin_points=a.admin_points,
             power_layout=a.power_layout, bbox=tuple(a.bbox) if a.bbox else None)


if __name__ == "__main__":
    main()
