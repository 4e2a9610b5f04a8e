"""Printable field-visit pages (实地核查表): one A4 page per sampled village.

Each page: the village, its map with the evidence near it (qualifying features in colour,
others grey, the nearest evidence of each indicator labelled with its id, a scale bar), a
table of what to check (per indicator: what the evidence says, the distance and the nearest
feature, what the ledger claims) with boxes to tick, and lines for the inspector, the date and
the photo numbers. Drawn with matplotlib in a local transverse Mercator; Chinese text with the
CJK font subset of :mod:`geo.report.fonts`, embedded as TrueType.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import matplotlib as mpl
import numpy as np
import pandas as pd
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from buque.geo.metric import tmerc
from buque.geo.report.fonts import map_family
from buque.geo.report.maps import _rc, draw_lines, draw_polygons, nice_length

MM = 1 / 25.4
A4 = (210.0, 297.0)
STATUS_ZH = {"met": "达标", "missing": "未达标", "unknown": "待核实"}
CLAIM_ZH = {"met": "达标", "missing": "未达标"}
COLOURS = {"roads": "#444444", "water": "#1f78b4", "power": "#e6ab02", "clinics": "#e7298a",
           "broadband": "#7570b3"}
MIN_RADIUS_M = 800.0
LEGEND = ("图例：彩色 = 合格证据（道路 黑、水源 蓝、电力 黄、卫生室 红、宽带 紫），"
          "灰色 = 不合格或未知，★ = 村参考点，标注 = 最近证据编号")
#: every fixed text the pages draw (the font subset must hold each character)
FIXED_TEXT = ("实地核查表 · （）指标村/组证据结论距离(米)最近设施台账核查结果备注达标未达标待核实"
              "核查人：日期照片编号情况说明… 另有项，见核查名单北↑米" + LEGEND)


def _checks(code: str, gaps: pd.DataFrame, hamlets: pd.DataFrame, claims: pd.DataFrame,
            labels: Mapping[str, str]) -> pd.DataFrame:
    """The rows to check at ``code``: its own pairs, then its hamlets' (natural villages)."""
    own = gaps[gaps["village_code"] == code]
    kids = gaps[gaps["village_code"].isin(hamlets["code"])]
    rows = pd.concat([own, kids], ignore_index=True)
    rows["_i"] = rows["indicator"].map({k: i for i, k in enumerate(labels)})
    rows = rows.sort_values(["_i", "village_code"], kind="stable")
    c = claims.set_index(["village_code", "indicator"])["claimed"] if len(claims) else None
    rows["claimed"] = [c.get((v, k), None) if c is not None else None
                       for v, k in zip(rows["village_code"], rows["indicator"], strict=True)]
    return rows.reset_index(drop=True)


def _page(fig: Figure, v: pd.Series, geom_m, rows: pd.DataFrame, layers: dict, crs: str,
          labels: Mapping[str, str], names: Mapping[str, str], head: str, foot: str) -> None:
    W, H = A4
    fig.text(12 * MM / (W * MM), 1 - 14 / H, f"实地核查表 · {v['name'] or ''}（{v['village_code']}）",
             fontsize=15, fontweight="bold", va="top")
    fig.text(12 / W, 1 - 22 / H, head, fontsize=8.5, va="top", color="#333333")
    # ---- the map
    ax = fig.add_axes((12 / W, 150 / H, 186 / W, 118 / H))
    ax.set_xticks([])
    ax.set_yticks([])
    cx, cy = shapely.get_coordinates(shapely.point_on_surface(geom_m))[0]
    want = rows["distance_m"].to_numpy(float, na_value=np.nan)
    want = want[np.isfinite(want)]
    r = float(np.clip(np.nanmax(want) * 1.15 if len(want) else MIN_RADIUS_M, MIN_RADIUS_M, 8000))
    half_w, half_h = r * 1.0, r * 118 / 186
    if half_h < r:
        half_w, half_h = r * 186 / 118, r
    ax.set_xlim(cx - half_w, cx + half_w)
    ax.set_ylim(cy - half_h, cy + half_h)
    ax.set_aspect("equal")
    box = shapely.box(cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    nearest = set(rows["evidence_id"].dropna().astype(str))
    for kind, g in layers.items():
        if g.empty:
            continue
        sel = g[shapely.intersects(g.geometry.to_numpy(), box)]
        if sel.empty:
            continue
        ev = [c for c in sel.columns if c.startswith("evidence_")]
        ok = (sel[ev].astype(str) == "pass").any(axis=1).to_numpy(bool) if ev else \
            np.ones(len(sel), bool)
        colour = COLOURS.get(kind, "#1b9e77")
        geoms = sel.geometry.to_numpy()
        dims = shapely.get_dimensions(geoms)
        for good in (False, True):
            pick = ok == good
            c = colour if good else "#bbbbbb"
            draw_polygons(ax, geoms[pick & (dims == 2)], facecolor=c, alpha=0.15, edgecolor=c,
                          linewidth=0.6)
            draw_lines(ax, geoms[pick & (dims == 1)], edgecolor=c, linewidth=1.8 if good else 1.0)
            pts = shapely.get_coordinates(geoms[pick & (dims == 0)])
            if len(pts):
                ax.scatter(pts[:, 0], pts[:, 1], s=22 if good else 12, color=c, zorder=4,
                           edgecolors="white", linewidths=0.5)
        for fid, gm in zip(sel["id"].astype(str), geoms, strict=True):
            if fid in nearest:
                p = shapely.get_coordinates(shapely.point_on_surface(gm))[0]
                ax.annotate(fid, p, fontsize=7, color="#000000", zorder=6,
                            xytext=(3, 3), textcoords="offset points")
    if shapely.get_dimensions(geom_m) == 2:
        draw_polygons(ax, np.array([geom_m]), facecolor="none", edgecolor="#d62728", linewidth=1.6)
    ax.scatter([cx], [cy], marker="*", s=120, color="#d62728", zorder=7, edgecolors="white")
    length = nice_length(half_w * 0.5)
    x0, y0 = cx - half_w * 0.92, cy - half_h * 0.9
    ax.plot([x0, x0 + length], [y0, y0], color="black", linewidth=2.5, zorder=8)
    ax.text(x0 + length / 2, y0 + half_h * 0.03, f"{length:,.0f} 米", ha="center", fontsize=7,
            zorder=8)
    ax.text(cx + half_w * 0.92, cy + half_h * 0.85, "北\n↑", ha="center", va="center",
            fontsize=9, zorder=8)
    fig.text(12 / W, 146 / H, LEGEND, fontsize=7, color="#444444")
    # ---- the table
    cols = [("指标", 12), ("村/组", 36), ("证据结论", 62), ("距离(米)", 82), ("最近设施", 102),
            ("台账", 124), ("核查结果", 142), ("备注", 178)]
    top = 136.0
    for name, x in cols:
        fig.text(x / W, top / H, name, fontsize=8.5, fontweight="bold", va="bottom")
    line_h = 9.0
    for i, r_ in enumerate(rows.itertuples(index=False)):
        y = top - 2 - line_h * (i + 1)
        if y < 50:
            fig.text(12 / W, y / H, f"… 另有 {len(rows) - i} 项，见核查名单", fontsize=8)
            break
        ind = str(r_.indicator)
        d = r_.distance_m
        vals = [labels.get(ind, ind), names.get(str(r_.village_code), str(r_.village_code)),
                STATUS_ZH.get(str(r_.status), str(r_.status)),
                "" if pd.isna(d) else f"{d:,.0f}",
                "" if pd.isna(r_.evidence_id) else str(r_.evidence_id),
                CLAIM_ZH.get(str(r_.claimed), "")]
        for (_, x), text in zip(cols[:6], vals, strict=True):
            fig.text(x / W, (y + 2) / H, text, fontsize=8)
        for j, word in enumerate(("达标", "未达标")):
            bx = 142 + j * 17
            fig.patches.append(Rectangle((bx / W, (y + 1.6) / H), 3.2 / W, 3.2 / H,
                                         transform=fig.transFigure, fill=False, linewidth=0.7))
            fig.text((bx + 4.2) / W, (y + 2) / H, word, fontsize=8)
        fig.lines.append(mpl.lines.Line2D([178 / W, 198 / W], [(y + 1.2) / H] * 2,
                                          transform=fig.transFigure, linewidth=0.5,
                                          color="#888888"))
    # ---- signatures
    for j, (label, x) in enumerate((("核查人", 12), ("日期", 80), ("照片编号", 140))):
        fig.text(x / W, 36 / H, f"{label}：", fontsize=9)
        fig.lines.append(mpl.lines.Line2D([(x + 16) / W, (x + 58) / W], [35 / H] * 2,
                                          transform=fig.transFigure, linewidth=0.6,
                                          color="black"))
        del j
    fig.text(12 / W, 26 / H, "情况说明：", fontsize=9)
    fig.lines.append(mpl.lines.Line2D([30 / W, 198 / W], [25 / H] * 2,
                                      transform=fig.transFigure, linewidth=0.6, color="black"))
    fig.text(12 / W, 10 / H, foot, fontsize=6.5, color="#666666")


def write_pages(sample: pd.DataFrame, villages: gpd.GeoDataFrame, gaps: pd.DataFrame,
                layers: dict[str, gpd.GeoDataFrame], claims: pd.DataFrame,
                labels: Mapping[str, str], head: Mapping[str, str], foot: str, out: Path
                ) -> Path:
    """``out``: a PDF with one A4 portrait page per row of ``sample`` (in its order)."""
    names = dict(zip(villages["code"].astype(str), villages["name"].astype(str), strict=True))
    texts = "".join(list(labels.values()) + list(names.values()) + list(head.values()) + [foot])
    texts += FIXED_TEXT
    rc = _rc(map_family(texts))
    by_code = villages.set_index(villages["code"].astype(str))
    with mpl.rc_context(rc), PdfPages(out, metadata={"Title": "实地核查表", "Creator": "Buque"}) as pdf:
        for v in sample.itertuples(index=False):
            code = str(v.village_code)
            row = by_code.loc[code]
            crs = tmerc(round(float(row["ref_lon"]), 4), round(float(row["ref_lat"]), 4))
            geom_m = gpd.GeoSeries([row.geometry], crs="EPSG:4326").to_crs(crs).iloc[0]
            hamlets = villages[villages["village_code"].astype("string") == code]
            rows = _checks(code, gaps, hamlets, claims, labels)
            lon, lat = float(row["ref_lon"]), float(row["ref_lat"])
            around = shapely.box(lon - 0.12, lat - 0.1, lon + 0.12, lat + 0.1)  # > 10 km
            near = {k: g.iloc[np.sort(g.sindex.query(around, predicate="intersects"))].to_crs(crs)
                    for k, g in layers.items() if len(g)}
            fig = Figure(figsize=(A4[0] * MM, A4[1] * MM))
            FigureCanvasAgg(fig)
            sr = pd.Series({"village_code": code, "name": names.get(code, "")})
            _page(fig, sr, geom_m, rows, near, crs, labels, names, head.get(code, ""), foot)
            pdf.savefig(fig)
    return out
