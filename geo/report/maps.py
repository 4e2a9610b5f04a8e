"""Print maps (PNG, PDF) of a selection: villages coloured by gaps, infrastructure, map furniture.

A page (A4/A3, portrait/landscape) holds a title and subtitle, the map frame in a local transverse
Mercator (so the scale bar and the 1:n scale are true at print size and north is up), a legend,
a table of rates against targets, an overview inset locating the selection in the whole run, and
a footer with the source, the data licence and the run id. Villages and features are drawn as
collections (no loop over villages); only the few labels shown are placed one by one, each
tried at four positions and dropped when it would overlap another.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import matplotlib as mpl
import numpy as np
import pandas as pd
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch, Polygon, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.patheffects import withStroke
from pyproj import Transformer

from buque.geo.metric import tmerc
from buque.geo.report.filters import ExportError, ReportData, place_name
from buque.geo.report.fonts import map_family
from buque.geo.report.progress import Progress, reporter
from buque.geo.report.text import all_strings, profile_label, sources_label, t, text_cells
from buque.geo.villages import gap_class_codes

PAPERS: dict[str, tuple[float, float]] = {"A4": (210.0, 297.0), "A3": (297.0, 420.0)}
ORIENTATIONS = ("landscape", "portrait")
MM = 1 / 25.4
PT_PER_MM = 72 / 25.4

#: village classes in gap-count mode: (wording key, n, colour)
GAP_COLOURS = ("#1a9850", "#a6a6a6", "#fdae61", "#f46d43", "#a50026")
STATUS_COLOURS = {"met": "#1a9850", "unknown": "#a6a6a6", "missing": "#d73027"}
CONTEXT_COLOUR = "#dcdcdc"
ROAD = {"pass": ("#505050", 0.8), "fail": ("#b9b9b9", 0.5), "unknown": ("#d8b98a", 0.5)}
POWER = "#8e44ad"
WATER = "#2b83ba"
CLINIC = "#c51b7d"
TOWER = "#01665e"
TOP_CLASS = 3  # gap counts of 3 and more share the darkest colour
#: matplotlib's rc settings are process-global: one map is drawn and saved at a time
_RENDER_LOCK = threading.Lock()


@dataclass(frozen=True)
class MapOptions:
    paper: str = "A4"
    orientation: str = "landscape"
    lang: str = "zh"
    dpi: int = 300
    max_labels: int | None = None

    def __post_init__(self) -> None:
        if self.paper not in PAPERS:
            raise ExportError("--paper", f"must be one of {', '.join(PAPERS)}")
        if self.orientation not in ORIENTATIONS:
            raise ExportError("--orientation", f"must be one of {', '.join(ORIENTATIONS)}")
        if not 50 <= self.dpi <= 1200:
            raise ExportError("--dpi", "must be between 50 and 1200")

    @property
    def size_mm(self) -> tuple[float, float]:
        short, long = PAPERS[self.paper]
        return (long, short) if self.orientation == "landscape" else (short, long)

    @property
    def scale(self) -> float:
        """Type and symbol scale relative to A4."""
        return PAPERS[self.paper][0] / 210.0


@dataclass(frozen=True)
class Layout:
    """Page regions in millimetres: (x0, y0, width, height) from the lower left."""

    title: tuple[float, float, float, float]
    map: tuple[float, float, float, float]
    overview: tuple[float, float, float, float]
    legend: tuple[float, float, float, float]
    stats: tuple[float, float, float, float]
    footer: tuple[float, float, float, float]
    vertical_panel: bool


def layout(opts: MapOptions) -> Layout:
    w, h = opts.size_mm
    s = opts.scale
    m, title_h, foot_h, gap = 10 * s, 17 * s, 8 * s, 5 * s
    body_y0, body_y1 = m + foot_h, h - m - title_h
    body_h, body_w = body_y1 - body_y0, w - 2 * m
    title = (m, body_y1, body_w, title_h)
    footer = (m, m, body_w, foot_h)
    if opts.orientation == "landscape":
        side = 70 * s
        mp = (m, body_y0, body_w - side - gap, body_h)
        x = m + mp[2] + gap
        ov_h = side * 0.78
        stats_h = 38 * s
        ov = (x, body_y1 - ov_h, side, ov_h)
        stats = (x, body_y0, side, stats_h)
        legend = (x, body_y0 + stats_h + gap / 2, side, body_h - ov_h - stats_h - gap * 1.5)
        return Layout(title, mp, ov, legend, stats, footer, True)
    panel_h = 64 * s
    mp = (m, body_y0 + panel_h + gap, body_w, body_h - panel_h - gap)
    ov_w, stats_w = 46 * s, 62 * s
    ov = (m + body_w - ov_w, body_y0, ov_w, panel_h)
    stats = (ov[0] - gap - stats_w, body_y0, stats_w, panel_h)
    legend = (m, body_y0, stats[0] - gap - m, panel_h)
    return Layout(title, mp, ov, legend, stats, footer, False)


# --------------------------------------------------------------------------- classification

def gap_classes(v: pd.DataFrame, indicators: Sequence[str]) -> np.ndarray:
    """Per village: 0 met, 1 unverified (no gap but some indicator unknown), 2.. = 1.. gaps
    (capped); the classes of :func:`geo.villages.gap_class`, the gaps class split by count."""
    n = v["n_missing"].to_numpy(dtype=np.int64)
    cls = gap_class_codes(v, indicators)  # 0 gaps, 1 unverified, 2 met
    return np.where(cls == 0, np.minimum(np.maximum(n, 1), TOP_CLASS) + 1,
                    np.where(cls == 1, 1, 0))


def class_labels(lang: str) -> list[str]:
    out = [t("no_gap", lang), t("to_verify", lang)]
    out += [t("n_gap" if n == 1 else "n_gaps", lang, n=n) for n in range(1, TOP_CLASS)]
    return out + [t("n_gaps_more", lang, n=TOP_CLASS)]


# --------------------------------------------------------------------------- geometry helpers

def nice_length(target: float) -> float:
    """The largest of 1, 2, 5 × 10^k not above ``target``."""
    k = 10 ** math.floor(math.log10(target))
    return max(f * k for f in (1, 2, 5) if f * k <= target)


def fit_extent(bounds: Sequence[float], aspect: float, pad: float = 0.05,
               min_span: float = 2000.0) -> tuple[float, float, float, float]:
    """``bounds`` padded and widened to the width/height ``aspect`` of the frame."""
    x0, y0, x1, y1 = bounds
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w = max(x1 - x0, min_span) * (1 + 2 * pad)
    h = max(y1 - y0, min_span) * (1 + 2 * pad)
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


CHUNK = 50_000  # vertices per drawn path (Agg renders very large filled paths poorly)


def _compound_paths(geoms: np.ndarray, closed: bool) -> list[MplPath]:
    """All rings (``closed``) or lines of ``geoms`` as a few compound paths (vectorised)."""
    geoms = geoms[~shapely.is_empty(geoms) & ~shapely.is_missing(geoms)]
    if len(geoms) == 0:
        return []
    parts = shapely.get_parts(geoms)
    if closed:
        parts = shapely.get_rings(shapely.orient_polygons(parts))
    coords, idx = shapely.get_coordinates(parts, return_index=True)
    if len(coords) == 0:
        return []
    codes = np.full(len(coords), MplPath.LINETO, dtype=np.uint8)
    starts = np.r_[0, np.flatnonzero(np.diff(idx)) + 1]
    codes[starts] = MplPath.MOVETO
    if closed:
        codes[np.r_[starts[1:] - 1, len(coords) - 1]] = MplPath.CLOSEPOLY
    # cut at part starts into chunks of about CHUNK vertices
    cuts = starts[np.searchsorted(starts, np.arange(CHUNK, len(coords), CHUNK))]
    bounds = np.unique(np.r_[0, cuts, len(coords)])
    return [MplPath(coords[a:b], codes[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def draw_polygons(ax, geoms: np.ndarray, **kw) -> None:
    """Fill polygons (holes kept) as compound patches."""
    for p in _compound_paths(np.asarray(geoms, dtype=object), closed=True):
        ax.add_artist(PathPatch(p, **kw))


def draw_lines(ax, geoms: np.ndarray, **kw) -> None:
    """Stroke lines as compound patches."""
    kw.setdefault("capstyle", "round")
    kw.setdefault("joinstyle", "round")
    for p in _compound_paths(np.asarray(geoms, dtype=object), closed=False):
        ax.add_artist(PathPatch(p, fill=False, **kw))


def _anchor_points(g: gpd.GeoSeries) -> np.ndarray:
    """One point per geometry (itself, or a point on its surface)."""
    return shapely.get_coordinates(shapely.point_on_surface(g.to_numpy()))


# --------------------------------------------------------------------------- the page

class _Page:
    """Draws one page; holds the figure, the projection and the scale factors."""

    def __init__(self, data: ReportData, opts: MapOptions) -> None:
        if data.villages.empty:
            raise ExportError("--county", "the selection holds no villages")
        self.data, self.opts, self.lang, self.s = data, opts, opts.lang, opts.scale
        self.lay = layout(opts)
        self.w, self.h = opts.size_mm
        self.single = data.indicators[0] if len(data.indicators) == 1 else None
        lon0, lat0 = self._centre()
        self.crs = tmerc(round(lon0, 4), round(lat0, 4))
        self.fwd = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        self.inv = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        self.v = data.villages.to_crs(self.crs)
        mx, my, mw, mh = self.lay.map
        self.extent = fit_extent(self.v.total_bounds, mw / mh)
        self.metres_per_mm = (self.extent[2] - self.extent[0]) / mw
        # markers shrink where villages are dense (a province): about a third of their spacing
        spacing_mm = math.sqrt(mw * mh / max(len(self.v), 1))
        self.k = float(np.clip(spacing_mm * 0.35 / 1.3, 0.2, 1.0))
        max_labels = opts.max_labels if opts.max_labels is not None else int(
            60 * (mw * mh) / (190 * 150))
        self.label_candidates = self._label_candidates(max(max_labels, 0) * 3)
        self.max_labels = max_labels
        self.towns = self._town_anchors()

    # ---- setup
    def _centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.data.villages.total_bounds
        return (x0 + x1) / 2, (y0 + y1) / 2

    def _label_candidates(self, k: int) -> pd.DataFrame:
        v = self.v
        named = v["name"].notna().to_numpy(dtype=bool) & (v["name"].astype("string").str.len() > 0
                                                           ).fillna(False).to_numpy(dtype=bool)
        pts = _anchor_points(v.geometry)
        df = pd.DataFrame({"name": v["name"].astype("string"), "x": pts[:, 0], "y": pts[:, 1],
                           "admin": (v["level"] == "admin").to_numpy(dtype=bool),
                           "n": v["n_missing"].to_numpy(),
                           "pop": v["population"].to_numpy(dtype=float, na_value=0.0)})[named]
        df = df.sort_values(["admin", "n", "pop"], ascending=False, kind="stable")
        return df.head(k)

    def _town_anchors(self) -> pd.DataFrame:
        """Place names to print: townships of one county, else counties (median point each)."""
        v = self.v
        by = "township" if v["county"].nunique() <= 1 else "county"
        if v[by].nunique() <= 1:
            return pd.DataFrame(columns=["township", "x", "y"])
        pts = _anchor_points(v.geometry)
        df = pd.DataFrame({"township": v[by].astype("string"), "x": pts[:, 0],
                           "y": pts[:, 1]}).dropna()
        towns = df.groupby("township", sort=True)[["x", "y"]].median().reset_index()
        return towns if len(towns) <= 150 else towns.iloc[:0]

    def texts(self) -> str:
        """Every character this page may draw (for the font subset).

        All names of the whole run are included, so every page, county and export of a run
        shares one cached font subset.
        """
        d = self.data
        names = np.concatenate([d.all_villages[c].dropna().astype(str).unique() for c in
                                ("name", "township", "county") if c in d.all_villages])
        parts = [all_strings(self.lang), self.title(), self.subtitle(), *self.footer(),
                 "".join(names.tolist()),
                 *(i.label_zh + i.label_en for i in d.profile.indicators.values())]
        return "".join(sorted(set("".join(parts))))

    # ---- words
    def title(self) -> str:
        place = place_name(self.data, self.lang)
        if self.single:
            ind = self.data.indicator(self.single)
            what = t("ind_map", self.lang, label=ind.label_zh if self.lang == "zh" else ind.label_en)
        else:
            what = t("gap_map", self.lang)
        return f"{place} {what}" if self.lang == "zh" else f"{place} — {what}"

    def subtitle(self) -> str:
        m, p = self.data.manifest, self.data.profile
        date = str(m.get("created", ""))[:10]
        lvl = self.data.villages["level"]
        counts = t("counts", self.lang, admin=int((lvl == "admin").sum()),
                   natural=int((lvl == "natural").sum()),
                   gaps=int((self.data.villages["n_missing"] > 0).sum()))
        prof = profile_label(p, self.lang)
        return " · ".join(x for x in (t("run_date", self.lang, date=date), prof, counts) if x)

    def footer(self) -> tuple[str, str]:
        m = self.data.manifest
        attrib = " · ".join(self.data.attribution)
        right = t("made_with", self.lang, version=m.get("tool", {}).get("version", ""),
                  date=dt.date.today().isoformat(), run_id=m.get("run_id", ""))
        # the footer's width in half-em cells of its 5.8 pt type, less the right part
        cell_mm = 5.8 * self.s * 25.4 / 72 * 0.5
        room = int(self.lay.footer[2] / cell_mm) - text_cells(right) - text_cells(attrib) - 12
        left = sources_label(m, self.lang, max_cells=room)
        return (f"{left} · {attrib}" if attrib else left), right

    # ---- drawing
    def draw(self) -> Figure:
        fig = Figure(figsize=(self.w * MM, self.h * MM), dpi=self.opts.dpi)
        FigureCanvasAgg(fig)
        self.fig = fig
        self.ax = fig.add_axes(self._rect(self.lay.map))
        ax = self.ax
        x0, y0, x1, y1 = self.extent
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal", adjustable="box")
        ax.set_facecolor("#fbfbf8")
        for sp in ax.spines.values():
            sp.set_linewidth(0.8 * self.s)
        self._context()
        infra = self._layers()
        handles = self._villages()
        self._graticule()
        bar = self._scale_bar()
        arrow = self._north_arrow()
        renderer = fig.canvas.get_renderer()
        self._labels([bar.get_window_extent(renderer), arrow.get_window_extent(renderer)])
        self._title_block()
        self._legend(handles, infra)
        self._stats()
        self._overview()
        self._footer()
        return fig

    def _rect(self, r: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x, y, w, h = r
        return x / self.w, y / self.h, w / self.w, h / self.h

    def _frame_lonlat(self) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = self.extent
        xs = np.array([x0, x1, x1, x0, (x0 + x1) / 2, (x0 + x1) / 2])
        ys = np.array([y0, y0, y1, y1, y0, y1])
        lon, lat = self.inv.transform(xs, ys)
        return float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat))

    def _context(self) -> None:
        """Villages outside the selection that fall in the frame, in light grey."""
        allv = self.data.all_villages
        self.has_context = False
        if len(allv) == len(self.data.villages):
            return
        idx = allv.sindex.query(shapely.box(*self._frame_lonlat()), predicate="intersects")
        ctx = allv.iloc[np.sort(idx)]
        ctx = ctx[~ctx["code"].isin(self.data.villages["code"])]
        if ctx.empty:
            return
        self.has_context = True
        g = ctx.geometry.to_crs(self.crs)
        poly = g.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
        if poly.any():
            draw_polygons(self.ax, g[poly].to_numpy(), facecolor=CONTEXT_COLOUR,
                          edgecolor="white", linewidth=0.2 * self.s, zorder=1)
        if (~poly).any():
            xy = _anchor_points(g[~poly])
            self.ax.scatter(xy[:, 0], xy[:, 1], s=(1.6 * self.s) ** 2, c=CONTEXT_COLOUR,
                            linewidths=0, zorder=1)

    def _layers(self) -> list:
        """Draw the selection's infrastructure layers; legend handles for what was drawn."""
        s, lang, ax, out = self.s, self.lang, self.ax, []
        bbox = shapely.box(*self._frame_lonlat())
        layers = {}
        for kind, g in self.data.layers.items():
            if g.empty:
                continue
            sub = g.iloc[np.sort(g.sindex.query(bbox, predicate="intersects"))]
            if not sub.empty:
                layers[kind] = sub.to_crs(self.crs)
        emphasis = 1.4 if self.single else 1.0
        pk = emphasis * self.k  # point symbols shrink where villages are dense
        lk = emphasis * max(self.k, 0.5)
        if "roads" in layers:
            g = layers["roads"]
            ev = g.get("evidence_road", pd.Series("pass", index=g.index)).fillna("unknown")
            for cls in ("fail", "unknown", "pass"):
                sub = g[(ev == cls).to_numpy()]
                if sub.empty:
                    continue
                colour, lw = ROAD[cls]
                draw_lines(ax, sub.geometry.to_numpy(), edgecolor=colour,
                           linewidth=lw * s * lk, zorder=2 if cls != "pass" else 3)
                out.append(Line2D([], [], color=colour, lw=lw * s * emphasis * 1.5,
                                  label=t(f"road_{cls}", lang)))
        if "broadband" in layers:
            g = layers["broadband"]
            poly = g.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
            cover = g[poly].geometry
            if self.single == "broadband" and (~poly).any():
                default = self.data.indicator("broadband").default_radius_m or 0.0
                r = g.loc[~poly, "radius_m"].to_numpy(dtype=float, na_value=np.nan) \
                    if "radius_m" in g else np.full(int((~poly).sum()), np.nan)
                r = np.where(np.isfinite(r) & (r > 0), r, default)
                circles = gpd.GeoSeries(shapely.buffer(g.geometry.to_numpy()[~poly], r), crs=self.crs)
                cover = pd.concat([cover, circles])
            if len(cover):
                draw_polygons(ax, np.asarray(cover), facecolor=TOWER, alpha=0.08, edgecolor=TOWER,
                              linewidth=0.3 * s, zorder=2)
                out.append(Patch(facecolor=TOWER, alpha=0.15, edgecolor=TOWER,
                                 label=t("coverage", lang)))
            if (~poly).any():
                xy = _anchor_points(g[~poly].geometry)
                ax.scatter(xy[:, 0], xy[:, 1], marker="^", s=(3.2 * s * pk) ** 2, c=TOWER,
                           edgecolors="white", linewidths=0.3 * s, zorder=6)
                out.append(Line2D([], [], marker="^", ls="", color=TOWER, markersize=4 * s,
                                  label=t("tower", lang)))
        if "power" in layers:
            g = layers["power"]
            lines = g.geom_type.isin(["LineString", "MultiLineString"]).to_numpy()
            if lines.any():
                draw_lines(ax, g[lines].geometry.to_numpy(), edgecolor=POWER,
                           linewidth=0.6 * s * lk, linestyle=(0, (4, 2)), zorder=3)
                out.append(Line2D([], [], color=POWER, lw=0.9 * s, ls=(0, (4, 2)),
                                  label=t("power_line", lang)))
            if (~lines).any():
                xy = _anchor_points(g[~lines].geometry)
                ax.scatter(xy[:, 0], xy[:, 1], marker="s", s=(1.8 * s * pk) ** 2, c=POWER,
                           linewidths=0, zorder=4)
                out.append(Line2D([], [], marker="s", ls="", color=POWER, markersize=2.5 * s,
                                  label=t("power_point", lang)))
        for kind, ind, colour, marker, keys in (
                ("water", "water", WATER, "o", ("water_pass", "water_other")),
                ("clinics", "clinic", CLINIC, "P", ("clinic_pass", "clinic_other"))):
            if kind not in layers:
                continue
            g = layers[kind]
            ev = g.get(f"evidence_{ind}", pd.Series("pass", index=g.index)).fillna("unknown")
            ok = (ev == "pass").to_numpy()
            xy = _anchor_points(g.geometry)
            size = (2.6 if kind == "water" else 3.6) * s * emphasis
            drawn = size * self.k
            if (~ok).any():
                ax.scatter(xy[~ok, 0], xy[~ok, 1], marker=marker, s=drawn ** 2, facecolors="white",
                           edgecolors=colour, linewidths=0.5 * s * self.k, zorder=5)
                out.append(Line2D([], [], marker=marker, ls="", markerfacecolor="white",
                                  markeredgecolor=colour, markersize=size, label=t(keys[1], lang)))
            if ok.any():
                ax.scatter(xy[ok, 0], xy[ok, 1], marker=marker, s=drawn ** 2, c=colour,
                           edgecolors="white", linewidths=0.3 * s * self.k, zorder=5)
                out.insert(len(out) - int((~ok).any()),
                           Line2D([], [], marker=marker, ls="", color=colour, markersize=size,
                                  label=t(keys[0], lang)))
        if getattr(self.data, "plan", None) is not None:
            from buque.geo.report.planned import draw_planned

            out += draw_planned(ax, self.data, self.crs, bbox, s, lang, draw_lines)
        return out

    def _villages(self) -> list:
        """Draw villages by class; legend handles with counts."""
        v, s, lang, ax = self.v, self.s, self.lang, self.ax
        if self.single:
            st = v[self.single].astype("string").fillna("n/a")
            order = ["met", "unknown", "missing"]
            cls = np.select([st == k for k in order], list(range(len(order))), -1)
            colours = [STATUS_COLOURS[k] for k in order]
            labels = [t(k, lang) for k in order]
        else:
            cls = gap_classes(v, self.data.indicators)
            colours, labels = list(GAP_COLOURS), class_labels(lang)
        poly = v.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
        admin = (v["level"] == "admin").to_numpy(dtype=bool)
        pal = np.array(colours + [CONTEXT_COLOUR], dtype=object)
        col = pal[np.where(cls >= 0, cls, len(colours))]
        order = np.argsort(cls, kind="stable")  # worst drawn last, on top
        geoms = v.geometry.to_numpy()
        for c in range(len(colours) + 1) if poly.any() else ():  # one patch per class
            sel = poly & (np.where(cls >= 0, cls, len(colours)) == c)
            if sel.any():
                draw_polygons(ax, geoms[sel], facecolor=pal[c], edgecolor="white",
                              linewidth=0.3 * s * self.k, alpha=0.75, zorder=7)
        pts = _anchor_points(v.geometry)
        for mask, marker, size in ((~poly & admin, "s", 4.4), (~poly & ~admin, "o", 3.6)):
            sel = order[mask[order]]
            if len(sel):
                ax.scatter(pts[sel, 0], pts[sel, 1], marker=marker, s=(size * s * self.k) ** 2,
                           c=col[sel].tolist(), edgecolors="#333333",
                           linewidths=0.25 * s * min(self.k * 1.5, 1.0), zorder=8)
        counts = np.bincount(cls[cls >= 0], minlength=len(colours))
        handles = [Patch(facecolor=c, edgecolor="#333333", linewidth=0.3,
                         label=f"{lab} ({n:,})") for c, lab, n in zip(colours, labels, counts, strict=True)
                   if n > 0 or not self.single]
        markers = []
        if (admin & ~poly).any() or poly.any():
            markers.append(Line2D([], [], marker="s", ls="", markerfacecolor="white",
                                  markeredgecolor="#333333", markersize=4.4 * s,
                                  label=t("admin_marker", lang)))
        if (~admin).any():
            markers.append(Line2D([], [], marker="o", ls="", markerfacecolor="white",
                                  markeredgecolor="#333333", markersize=3.6 * s,
                                  label=t("natural_marker", lang)))
        if self.has_context:
            markers.append(Line2D([], [], marker="o", ls="", color=CONTEXT_COLOUR,
                                  markersize=2.2 * s, label=t("context", lang)))
        return handles + markers

    def _labels(self, obstacles: Sequence) -> None:
        """Township names, then village names by priority, skipping any that would overlap."""
        ax, s = self.ax, self.s
        renderer = self.fig.canvas.get_renderer()
        frame = ax.get_window_extent(renderer)
        boxes: list[tuple[float, float, float, float]] = [(b.x0, b.y0, b.x1, b.y1)
                                                          for b in obstacles]
        halo = [withStroke(linewidth=1.6 * s, foreground="white")]

        def free(b) -> bool:
            if b.x0 < frame.x0 + 2 or b.x1 > frame.x1 - 2 or b.y0 < frame.y0 + 2 or \
                    b.y1 > frame.y1 - 2:
                return False
            if not boxes:
                return True
            a = np.asarray(boxes)
            return not bool(np.any((a[:, 0] < b.x1) & (a[:, 2] > b.x0) & (a[:, 1] < b.y1)
                                   & (a[:, 3] > b.y0)))

        for town in self.towns.itertuples(index=False):  # at most 40
            txt = ax.text(town.x, town.y, printable(town.township), fontsize=8.5 * s, color="#6b6b6b",
                          fontweight="bold", ha="center", va="center", alpha=0.85,
                          path_effects=halo, zorder=9)
            b = txt.get_window_extent(renderer)
            if free(b):
                boxes.append((b.x0, b.y0, b.x1, b.y1))
            else:
                txt.remove()
        shown = 0 if self.k >= 0.45 else self.max_labels  # villages too dense to name
        offsets = ((3, 0, "left", "center"), (-3, 0, "right", "center"),
                   (0, 3, "center", "bottom"), (0, -3, "center", "top"))
        for row in self.label_candidates.itertuples(index=False):  # the few candidates only
            if shown >= self.max_labels:
                break
            size = (6.2 if row.admin else 5.4) * s
            for dx, dy, ha, va in offsets:
                txt = ax.annotate(printable(row.name), (row.x, row.y), xytext=(dx * s, dy * s),
                                  textcoords="offset points", ha=ha, va=va, fontsize=size,
                                  color="#1a1a1a" if row.admin else "#3a3a3a",
                                  path_effects=halo, zorder=10, annotation_clip=True)
                b = txt.get_window_extent(renderer).expanded(1.04, 1.1)
                if free(b):
                    boxes.append((b.x0, b.y0, b.x1, b.y1))
                    shown += 1
                    break
                txt.remove()

    def _graticule(self) -> None:
        """Longitude ticks on the bottom edge, latitude ticks on the left, in degrees and minutes."""
        ax, s = self.ax, self.s
        x0, y0, x1, y1 = self.extent
        xs = np.linspace(x0, x1, 256)
        ys = np.linspace(y0, y1, 256)
        lon_b, _ = self.inv.transform(xs, np.full_like(xs, y0))
        _, lat_l = self.inv.transform(np.full_like(ys, x0), ys)
        ticks = []
        for vals, coords, hemi in ((lon_b, xs, ("E", "W")), (lat_l, ys, ("N", "S"))):
            step = _degree_step(float(vals.max() - vals.min()))
            first = math.ceil(vals.min() / step - 1e-9) * step
            at = np.arange(first, vals.max() + 1e-12, step)
            ticks.append((np.interp(at, vals, coords), [_dms(a, hemi) for a in at]))
        (tx, lx), (ty, ly) = ticks
        ax.set_xticks(tx, lx)
        ax.set_yticks(ty, ly, rotation=90, va="center")
        ax.tick_params(direction="in", length=2.2 * s, width=0.5 * s, labelsize=5.5 * s,
                       pad=1.5 * s, colors="#444444", top=True, right=True)

    def _scale_bar(self) -> Rectangle:
        ax, s, lang = self.ax, self.s, self.lang
        x0, y0, x1, y1 = self.extent
        span = x1 - x0
        length = nice_length(span * 0.22)
        unit, div = (t("km", lang), 1000.0) if length >= 1000 else (t("m", lang), 1.0)
        mm = self.metres_per_mm
        bx, by = x0 + 6 * s * mm, y0 + 7 * s * mm
        bh = 1.4 * s * mm
        segs = 4 if length / div not in (1.0,) else 2
        seg = length / segs
        back = Rectangle((bx - 3 * s * mm, by - 5.5 * s * mm), length + 15 * s * mm, 13 * s * mm,
                         facecolor="white", edgecolor="none", alpha=0.8, zorder=11)
        ax.add_patch(back)
        for i in range(segs):
            ax.add_patch(Rectangle((bx + i * seg, by), seg, bh, facecolor="black" if i % 2 == 0
                                   else "white", edgecolor="black", linewidth=0.5 * s, zorder=12))
        for i in (0, segs // 2, segs):
            val = i * seg / div
            lab = f"{val:g}"
            ax.text(bx + i * seg, by + bh + 1.0 * s * mm, lab, ha="center", va="bottom",
                    fontsize=6 * s, zorder=12)
        ax.text(bx + length + 2.5 * s * mm, by + bh / 2, unit, ha="left", va="center",
                fontsize=6 * s, zorder=12)
        n = 1000 * mm
        n = round(n, -int(math.floor(math.log10(n))) + 2) if n > 0 else n
        ax.text(bx, by - 1.2 * s * mm, t("scale", lang, n=int(n)), ha="left", va="top",
                fontsize=5.5 * s, color="#333333", zorder=12)
        return back

    def _north_arrow(self):
        mx, my, mw, mh = self.lay.map
        s = self.s
        w, h = 9 * s, 15 * s
        ax = self.fig.add_axes(self._rect((mx + mw - w - 4 * s, my + mh - h - 4 * s, w, h)))
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1.2, 2.2)
        ax.set_axis_off()
        ax.add_patch(Polygon([(0, 1.3), (-0.7, -0.9), (0, -0.4)], closed=True, facecolor="black",
                             edgecolor="black", linewidth=0.5 * s))
        ax.add_patch(Polygon([(0, 1.3), (0.7, -0.9), (0, -0.4)], closed=True, facecolor="white",
                             edgecolor="black", linewidth=0.5 * s))
        ax.text(0, 1.45, t("north", self.lang), ha="center", va="bottom", fontsize=8 * s,
                fontweight="bold", path_effects=[withStroke(linewidth=1.5 * s, foreground="white")])
        return ax

    def _title_block(self) -> None:
        x, y, w, h = self.lay.title
        fig, s = self.fig, self.s
        fig.text(x / self.w, (y + h - 1 * s) / self.h, printable(self.title()), fontsize=17 * s,
                 fontweight="bold", ha="left", va="top")
        fig.text(x / self.w, (y + 2.5 * s) / self.h, printable(self.subtitle()), fontsize=8 * s,
                 color="#444444", ha="left", va="bottom")

    def _legend(self, villages: list, infra: list) -> None:
        x, y, w, h = self.lay.legend
        s, fig = self.s, self.fig
        kw = dict(frameon=False, fontsize=6.8 * s, title_fontsize=7.5 * s, alignment="left",
                  handlelength=1.6, handleheight=0.9, borderaxespad=0, borderpad=0,
                  labelspacing=0.45)
        title_v = t("legend_status", self.lang, label=self._ind_label(self.single)) \
            if self.single else t("legend_villages", self.lang)
        if self.lay.vertical_panel:
            leg1 = fig.legend(handles=villages, title=title_v, loc="upper left",
                              bbox_to_anchor=(x / self.w, (y + h) / self.h), **kw)
            leg1.get_title().set_fontweight("bold")
            if infra:
                renderer = fig.canvas.get_renderer()
                b = leg1.get_window_extent(renderer).transformed(fig.transFigure.inverted())
                for ncols in (1, 2):
                    leg2 = fig.legend(handles=infra, title=t("legend_infra", self.lang),
                                      loc="upper left", ncols=ncols,
                                      bbox_to_anchor=(x / self.w, b.y0 - 3 * s / self.h), **kw)
                    leg2.get_title().set_fontweight("bold")
                    b2 = leg2.get_window_extent(renderer).transformed(fig.transFigure.inverted())
                    if b2.y0 * self.h >= y or ncols == 2:
                        break
                    leg2.remove()
            return
        leg1 = fig.legend(handles=villages, title=title_v, loc="upper left",
                          bbox_to_anchor=(x / self.w, (y + h) / self.h), **kw)
        leg1.get_title().set_fontweight("bold")
        if infra:  # beside the first, where it ends
            renderer = fig.canvas.get_renderer()
            b = leg1.get_window_extent(renderer).transformed(fig.transFigure.inverted())
            x2 = max(b.x1 + 4 * s / self.w, (x + w * 0.45) / self.w)
            leg2 = fig.legend(handles=infra, title=t("legend_infra", self.lang), loc="upper left",
                              bbox_to_anchor=(x2, (y + h) / self.h), **kw)
            leg2.get_title().set_fontweight("bold")

    def _ind_label(self, key: str | None) -> str:
        if key is None:
            return ""
        ind = self.data.indicator(key)
        return ind.label_zh if self.lang == "zh" else ind.label_en

    def _stats(self) -> None:
        """A small table: per indicator, villages assessed, rate, target, gaps."""
        x, y, w, h = self.lay.stats
        s, lang, v = self.s, self.lang, self.data.villages
        ax = self.fig.add_axes(self._rect((x, y, w, h)))
        ax.set_axis_off()
        ax.set_xlim(0, w)
        ax.set_ylim(0, h)
        num_w = 9.5 * s  # width of each number column, mm
        right = [w - num_w * i for i in (3, 2, 1, 0)]  # right edges of the number columns
        head = t("stats_head", lang).split("|")
        row_h = 4.6 * s
        top = h - 1 * s
        ax.text(0, top, t("stats_title", lang), fontsize=7.5 * s, fontweight="bold", va="top")
        yy = top - 5.2 * s
        ax.text(0, yy, head[0], fontsize=6 * s, color="#555555", va="top", ha="left")
        for r, lab in zip(right, head[1:], strict=True):
            ax.text(r, yy, lab, fontsize=6 * s, color="#555555", va="top", ha="right")
        ax.plot([0, w], [yy - 3.6 * s, yy - 3.6 * s], color="#999999", lw=0.4 * s)
        labels = []
        for key in self.data.indicators:  # five or so
            yy -= row_h
            st = v[key]
            assessed = int(st.notna().sum())
            met = int((st == "met").sum())
            miss = int((st == "missing").sum())
            rate = met / assessed if assessed else float("nan")
            target = self.data.indicator(key).target_rate
            below = bool(assessed) and rate < target
            labels.append(ax.text(0, yy - 0.8 * s, self._ind_label(key), fontsize=6 * s,
                                  va="top", ha="left"))
            cells = (f"{assessed:,}", f"{rate:.1%}" if assessed else "–", f"{target:.0%}",
                     f"{miss:,}")
            for i, (r, c) in enumerate(zip(right, cells, strict=True)):
                red = i == 1 and below
                ax.text(r, yy - 0.8 * s, c, fontsize=6 * s, va="top", ha="right",
                        color="#b2182b" if red else "#1a1a1a", fontweight="bold" if red else "normal")
        # long indicator names (English) shrink to fit before the first number column
        renderer = self.fig.canvas.get_renderer()
        px_per_mm = self.fig.dpi / 25.4
        room = right[0] - num_w - 1 * s
        widest = max((lab.get_window_extent(renderer).width / px_per_mm for lab in labels),
                     default=0.0)
        if widest > room:
            for lab in labels:
                lab.set_fontsize(6 * s * max(room / widest, 0.6))

    def _overview_groups(self) -> tuple[str, list[str]]:
        allv = self.data.all_villages
        by = "county" if allv["county"].nunique() > 1 else "township"
        names = sorted(allv[by].dropna().unique().tolist())
        return by, names

    def _overview(self) -> None:
        x, y, w, h = self.lay.overview
        s, lang = self.s, self.lang
        self.fig.text(x / self.w, (y + h) / self.h, t("overview", lang), fontsize=7.5 * s,
                      fontweight="bold", va="top")
        ax = self.fig.add_axes(self._rect((x, y, w, h - 5 * s)))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_facecolor("#f4f4f0")
        for sp in ax.spines.values():
            sp.set_linewidth(0.5 * s)
            sp.set_color("#777777")
        allv = self.data.all_villages
        lon = allv["ref_lon"].to_numpy(dtype=float, na_value=np.nan)
        lat = allv["ref_lat"].to_numpy(dtype=float, na_value=np.nan)
        ok = np.isfinite(lon) & np.isfinite(lat)
        px, py = self.fwd.transform(lon[ok], lat[ok])
        by = self._overview_groups()[0]
        grp = allv[by].astype("string").fillna("").to_numpy(dtype=object)[ok]
        sel_codes = allv["code"].isin(self.data.villages["code"]).to_numpy(dtype=bool)[ok]
        hulls = _group_hulls(px, py, grp)
        chosen = set(np.unique(grp[sel_codes]).tolist())
        geoms = np.array(list(hulls.values()), dtype=object)
        picked = np.array([n in chosen for n in hulls], dtype=bool)  # groups, not villages
        draw_polygons(ax, geoms[~picked], facecolor="#d9d9d9", edgecolor="white",
                      linewidth=0.6 * s)
        draw_polygons(ax, geoms[picked], facecolor="#fdd0a2", edgecolor="white",
                      linewidth=0.6 * s)
        if len(px) <= 20_000:  # beyond that the hulls say it better than a cloud of dots
            ax.scatter(px[~sel_codes], py[~sel_codes], s=(0.5 * s) ** 2, c="#9a9a9a",
                       linewidths=0)
        if sel_codes.any() and sel_codes.sum() < np.isin(grp, list(chosen)).sum():
            sel_hull = shapely.convex_hull(shapely.multipoints(np.column_stack([px[sel_codes],
                                                                                py[sel_codes]])))
            draw_polygons(ax, np.array([shapely.buffer(sel_hull, 1.0)], dtype=object),
                          facecolor="#f16913", alpha=0.85, edgecolor="#d94801", linewidth=0.5 * s)
        x0, y0, x1, y1 = self.extent
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#d7191c",
                               linewidth=0.9 * s, zorder=5))
        if len(hulls) <= 12:
            for name, hull in hulls.items():  # at most 12 group names
                if not name:
                    continue
                c = hull.centroid
                ax.text(c.x, c.y, printable(name), fontsize=5.2 * s, ha="center", va="center",
                        color="#333333", zorder=6,
                        path_effects=[withStroke(linewidth=1.2 * s, foreground="white")])
        bx0 = min(float(px.min()) if len(px) else x0, x0)
        bx1 = max(float(px.max()) if len(px) else x1, x1)
        by0 = min(float(py.min()) if len(py) else y0, y0)
        by1 = max(float(py.max()) if len(py) else y1, y1)
        ex = fit_extent((bx0, by0, bx1, by1), w / (h - 5 * s), pad=0.06, min_span=1.0)
        ax.set_xlim(ex[0], ex[2])
        ax.set_ylim(ex[1], ex[3])
        ax.set_aspect("equal", adjustable="box")

    def _footer(self) -> None:
        x, y, w, h = self.lay.footer
        fig, s = self.fig, self.s
        left, right = map(printable, self.footer())
        line_y = (y + h - 1.5 * s) / self.h
        fig.add_artist(Line2D([x / self.w, (x + w) / self.w], [line_y, line_y], color="#999999",
                              linewidth=0.4 * s))
        fig.text(x / self.w, (y + 1 * s) / self.h, left, fontsize=5.8 * s, color="#333333",
                 ha="left", va="bottom")
        fig.text((x + w) / self.w, (y + 1 * s) / self.h, right, fontsize=5.8 * s, color="#333333",
                 ha="right", va="bottom")


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def printable(s: object) -> str:
    """Text as drawn on a map: control, bidi and zero-width characters (which no font has a
    glyph for, and which input files may carry) dropped."""
    return _UNPRINTABLE.sub("", str(s))


def _degree_step(span: float) -> float:
    """A tick interval in degrees (whole minutes or degrees) giving about 3 to 6 ticks."""
    minutes = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 1200, 1800)
    for m in minutes:
        if span / (m / 60) <= 6:
            return m / 60
    return 30.0


def _dms(value: float, hemi: tuple[str, str]) -> str:
    """108.5 -> 108°30′E."""
    h = hemi[0] if value >= 0 else hemi[1]
    total = round(abs(value) * 60)
    d, m = divmod(total, 60)
    return f"{d}°{m:02d}′{h}" if m else f"{d}°{h}"


def _group_hulls(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict[str, shapely.Geometry]:
    """Convex hull of the points of each group (one vectorised call)."""
    if len(x) == 0:
        return {}
    names, codes = np.unique(groups.astype(str), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    mp = shapely.multipoints(np.column_stack([x, y])[order], indices=codes[order])
    hulls = shapely.buffer(shapely.convex_hull(mp), 1.0)
    return dict(zip(names.tolist(), hulls.tolist(), strict=True))


# --------------------------------------------------------------------------- public API

def _rc(family: list[str]) -> dict:
    # names are drawn as they are: "$...$" in a name is text, never mathtext
    return {"font.family": family, "pdf.fonttype": 42, "ps.fonttype": 42, "text.parse_math": False,
            "axes.unicode_minus": False, "svg.fonttype": "none", "pdf.compression": 6}


def render_pages(pages: Sequence[ReportData], opts: MapOptions
                 ) -> tuple[list[Figure], list[str], dict]:
    """Figures for each selection, their titles, and the matplotlib rc they were drawn with."""
    drawers = [_Page(d, opts) for d in pages]
    family = map_family("".join(sorted(set("".join(p.texts() for p in drawers)))))
    rc = _rc(family)
    with mpl.rc_context(rc):
        return [p.draw() for p in drawers], [p.title() for p in drawers], rc


def _meta(data: ReportData, title: str) -> dict[str, str]:
    m = data.manifest
    return {"Title": title, "Author": "Buque", "Subject": f"run {m.get('run_id', '')}",
            "Creator": f"Buque {m.get('tool', {}).get('version', '')}",
            "Keywords": " ".join(data.attribution)}


#: a figure to end a PDF with, from the pages drawn and the options (or None for no page)
ExtraPage = Callable[[Sequence[ReportData], MapOptions], Figure | None]


def write_maps(pages: Sequence[ReportData], opts: MapOptions, *, pdf: Path | None = None,
               png: Path | None = None, progress: Progress | None = None,
               extra_page: ExtraPage | None = None) -> list[Path]:
    """Draw each selection once; write a multi-page PDF and/or a PNG of the first page.
    ``extra_page(pages, opts)``: a figure the PDF ends with, or None (the progress chart of
    :func:`geo.report.chartpage.progress_figure`).
    ``progress`` hears of the steps: drawing, writing the PDF, writing the PNG."""
    report = reporter(progress)
    report(0.0, "waiting for the map renderer")
    with _RENDER_LOCK:
        return _write_maps(pages, opts, pdf, png, report, extra_page)


def _write_maps(pages: Sequence[ReportData], opts: MapOptions, pdf: Path | None,
                png: Path | None, report: Progress, extra_page: ExtraPage | None = None
                ) -> list[Path]:
    report(0.0, "drawing the map")
    figs, titles, rc = render_pages(pages, opts)
    extra = []
    if pdf is not None and extra_page is not None:
        report(0.4, "drawing the progress chart")
        chart = extra_page(pages, opts)
        extra = [chart] if chart is not None else []
    meta = _meta(pages[0], " / ".join(titles[:5]) + (" …" if len(titles) > 5 else ""))
    out: list[Path] = []
    with mpl.rc_context(rc):
        if pdf is not None:
            report(0.5, "writing the PDF")
            with PdfPages(pdf, metadata=meta) as doc:
                for fig in [*figs, *extra]:
                    doc.savefig(fig, dpi=opts.dpi)
            out.append(pdf)
        if png is not None:
            report(0.75 if pdf is not None else 0.5, "writing the PNG")
            png_meta = {"Title": titles[0], "Software": meta["Creator"],
                        "Copyright": meta["Keywords"], "Description": meta["Subject"]}
            w, h = opts.size_mm  # whole pixels: A4 at 300 dpi is 3508 x 2480
            figs[0].set_size_inches(round(w * MM * opts.dpi) / opts.dpi,
                                    round(h * MM * opts.dpi) / opts.dpi)
            figs[0].savefig(png, dpi=opts.dpi, format="png", metadata=png_meta)
            out.append(png)
    report(1.0, "map written")
    return out


def write_png(data: ReportData, opts: MapOptions, out: Path) -> Path:
    """The map of one selection as a PNG at ``opts.dpi``."""
    return write_maps([data], opts, png=out)[0]


def write_pdf(pages: Sequence[ReportData], opts: MapOptions, out: Path) -> Path:
    """One page per selection, fonts embedded (TrueType subsets)."""
    return write_maps(pages, opts, pdf=out)[0]
