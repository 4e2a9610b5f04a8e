"""A self-contained interactive map (folium + Leaflet) that opens with no internet access.

Leaflet's JavaScript and CSS (vendored from npm into ``static/leaflet``, see
``static/fetch_assets.sh``) are inlined, its images as data URIs; folium's default CDN links
(Leaflet, jQuery, Bootstrap, Font Awesome) are dropped. There is no tile basemap unless an
own raster basemap is given (``buque export --basemap FILE``, or the server's ``--basemap``):
its tiles over the map's area are embedded as data URIs, as many zoom levels as fit in
``BASEMAP_BUDGET`` bytes (Leaflet scales the deepest level up beyond). The infrastructure
layers are drawn as vector overlays. Villages and layers are GeoJSON written by
GDAL; their styling and popups (status, distance, nearest qualifying feature, remedy per
indicator) are computed in the browser from the properties, so nothing loops over villages here.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from branca.element import Element, MacroElement
from folium.map import Layer

try:  # folium >= 0.19
    from folium.template import Template
except ImportError:  # pragma: no cover
    from jinja2 import Template

from buque.geo.report.filters import ReportData, place_name
from buque.geo.report.gis import plain
from buque.geo.report.maps import (
    CLINIC,
    GAP_COLOURS,
    POWER,
    ROAD,
    STATUS_COLOURS,
    TOWER,
    WATER,
    class_labels,
    gap_classes,
)
from buque.geo.report.text import profile_label, t
from buque.layers.schema import STATUSES

STATIC = Path(__file__).parent / "static"
LEAFLET = STATIC / "leaflet"
PRECISION = 6  # decimal degrees: 0.1 m


class AssetsMissing(RuntimeError):
    """The vendored Leaflet files are not there (run geo/report/static/fetch_assets.sh)."""


def leaflet_assets() -> tuple[str, str]:
    """Leaflet's JS and its CSS with images inlined as data URIs."""
    js, css = LEAFLET / "leaflet.js", LEAFLET / "leaflet.css"
    if not (js.is_file() and css.is_file()):
        raise AssetsMissing(f"{LEAFLET}: Leaflet assets missing; run {STATIC / 'fetch_assets.sh'}")
    style = css.read_text(encoding="utf-8")
    for img in sorted((LEAFLET / "images").glob("*.png")):
        uri = "data:image/png;base64," + base64.b64encode(img.read_bytes()).decode()
        style = style.replace(f"url(images/{img.name})", f"url({uri})")
    return js.read_text(encoding="utf-8"), style


def _script_safe(s: str) -> str:
    """Text that cannot close the <script>/<style> element it is inlined in."""
    return s.replace("</", "<\\/")


LARGE = 30_000  # villages beyond which the HTML gets heavy for a browser


def to_geojson(gdf: gpd.GeoDataFrame, tolerance: float = 0.0) -> str:
    """A GeoDataFrame as GeoJSON text (GDAL writer, RFC 7946), lines and polygons simplified
    by ``tolerance`` degrees (one vectorised call), coordinates rounded to match."""
    out = plain(gdf)
    if tolerance > 0:
        geoms = out.geometry.to_numpy()
        simple = ~np.isin(shapely.get_type_id(geoms), (0, 4))  # points stay as they are
        geoms[simple] = shapely.simplify(geoms[simple], tolerance, preserve_topology=True)
        out = out.set_geometry(geoms, crs=gdf.crs)
    digits = PRECISION if tolerance < 1e-4 else PRECISION - 1
    buf = io.BytesIO()
    pyogrio.write_dataframe(out, buf, driver="GeoJSON", layer="layer",
                            layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": digits})
    return buf.getvalue().decode("utf-8")


def tolerance_of(data: ReportData) -> float:
    """Simplification tolerance in degrees: 1/20,000 of the selection's diagonal (a county:
    a few metres, invisible at the zoom that shows it whole)."""
    x0, y0, x1, y1 = data.villages.total_bounds
    return float(np.hypot(x1 - x0, y1 - y0)) / 20_000


class GeoJsonLayer(Layer):
    """A Leaflet GeoJSON overlay styled and explained in the browser from feature properties.

    Properties read: ``_c`` colour, ``_f`` fill colour, ``_r`` point radius, ``_w`` line
    width, ``_d`` dash pattern; ``popup`` names a JS function (properties -> HTML).
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJSON(null, {
            pointToLayer: function (f, ll) {
                return L.circleMarker(ll, {radius: f.properties._r || 4});
            },
            style: function (f) {
                var p = f.properties;
                return {color: p._c || "#555", fillColor: p._f || p._c || "#555",
                        weight: p._w === undefined ? 1 : p._w, opacity: 0.95,
                        fillOpacity: p._fo === undefined ? 0.8 : p._fo, dashArray: p._d || null};
            },
            onEachFeature: function (f, layer) {
                layer.bindPopup(function () { return {{ this.popup }}(f.properties); },
                                {maxWidth: 420});
                if (f.properties.name) { layer.bindTooltip(buqueEsc(f.properties.name)); }
            }
        });
        {{ this.get_name() }}.addData({{ this.data }});
        {% endmacro %}
    """)

    def __init__(self, data: str, name: str, popup: str, show: bool = True) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "BuqueGeoJson"
        self.data = _script_safe(data)
        self.popup = popup


BASEMAP_BUDGET = 12 * 2**20  # bytes of basemap tiles one HTML map may embed
BLANK_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
             "2mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


class BasemapLayer(Layer):
    """Tiles embedded in the page (``z/x/y`` -> data URI), under the overlays."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }}_tiles = {{ this.tiles }};
        var {{ this.get_name() }} = new (L.TileLayer.extend({
            getTileUrl: function (c) {
                return {{ this.get_name() }}_tiles[c.z + "/" + c.x + "/" + c.y] || {{ this.blank }};
            }
        }))("", {{ this.options }});
        {% endmacro %}
    """)

    def __init__(self, tiles: dict[str, str], name: str, options: dict[str, Any]) -> None:
        super().__init__(name=name, overlay=False, control=True, show=True)
        self._name = "BuqueBasemap"
        self.tiles = _script_safe(json.dumps(tiles))
        self.blank = json.dumps(BLANK_PNG)
        self.options = _script_safe(json.dumps(options, ensure_ascii=False))


def basemap_tiles(path: Path, bounds: tuple[float, float, float, float],
                  budget: int = BASEMAP_BUDGET) -> tuple[dict[str, str], int, int, Any]:
    """The raster basemap's tiles covering ``bounds``, zoom by zoom from its lowest while they
    fit in ``budget`` bytes: (``z/x/y`` -> data URI, lowest and deepest zoom embedded, the
    basemap). Raises BasemapError for a vector basemap (Leaflet draws no vector tiles here)."""
    from buque.geo.basemap import BasemapError, lonlat_to_tile, open_basemap

    bm = open_basemap(path)
    if bm.kind != "raster":
        raise BasemapError(f"{path}: a vector basemap is drawn on /map but not in the HTML "
                         "export (give a raster PMTiles or MBTiles)")
    mime = bm.media
    out: dict[str, str] = {}
    used, deepest = 0, None
    b0 = max(bounds[0], bm.bounds[0]), max(bounds[1], bm.bounds[1])
    b1 = min(bounds[2], bm.bounds[2]), min(bounds[3], bm.bounds[3])
    for z in range(bm.minzoom, bm.maxzoom + 1):
        (x0, y1), (x1, y0) = lonlat_to_tile(*b0, z), lonlat_to_tile(*b1, z)
        level: dict[str, str] = {}
        size = 0
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                body = bm.tile(z, x, y)
                if body:
                    size += len(body) * 4 // 3
                    if used + size > budget:
                        break
                    level[f"{z}/{x}/{y}"] = f"data:{mime};base64," + base64.b64encode(body).decode()
            if used + size > budget:
                break
        if used + size > budget:
            break
        out.update(level)
        used += size
        deepest = z
    if deepest is None:
        raise BasemapError(f"{path}: not even its lowest zoom fits in {budget:,} bytes")
    return out, bm.minzoom, deepest, bm


def add_basemap(m: folium.Map, path: Path, bounds: tuple[float, float, float, float],
                lang: str) -> list[str]:
    """Draw the raster basemap in ``path`` under the map's layers; notes for the user."""
    tiles, z0, z1, bm = basemap_tiles(path, bounds)
    size = bm.tile_size
    opts = {"minNativeZoom": z0, "maxNativeZoom": z1, "maxZoom": 22, "tileSize": size,
            "zoomOffset": -1 if size == 512 else 0, "attribution": _esc(bm.attribution)}
    BasemapLayer(tiles, "底图" if lang == "zh" else "Basemap", opts).add_to(m)
    notes = []
    if z1 < bm.maxzoom:
        notes.append(f"basemap embedded down to zoom {z1} of {bm.maxzoom} "
                     f"({len(tiles)} tiles; deeper levels would exceed "
                     f"{BASEMAP_BUDGET // 2**20} MiB)")
    return notes


class Attribution(MacroElement):
    """Adds a text to the map's attribution control (the data licence)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this._parent.get_name() }}.attributionControl.addAttribution({{ this.text }});
        {% endmacro %}
    """)

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "BuqueAttribution"
        self.text = _script_safe(json.dumps(text, ensure_ascii=False))


POPUP_JS = """
function buqueEsc(s) {
  return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
  });
}
function buqueNum(x, d) {
  if (x === null || x === undefined || x === "" || isNaN(x)) { return ""; }
  return Number(x).toLocaleString("zh-CN", {maximumFractionDigits: d});
}
function buqueVillagePopup(p) {
  var T = BUQUE.t, h = "<div class='bq-pop'><b>" + buqueEsc(p.name) + "</b> <small>" +
    buqueEsc(p.code) + "</small><br>" + buqueEsc(BUQUE.levels[p.level] || p.level) + " · " +
    buqueEsc(p.county) + " " + buqueEsc(p.township);
  if (p.population !== null && p.population !== undefined) {
    h += "<br>" + T.population + " " + buqueNum(p.population, 0);
  }
  if (p.households !== null && p.households !== undefined) {
    h += " · " + T.households + " " + buqueNum(p.households, 0);
  }
  if (p.poor === 1 || p.poor === true) {
    h += "<br>" + T.poor + (p.exit_year ? " · " + T.exit_year + " " + p.exit_year : "");
  }
  h += "<table>";
  BUQUE.inds.forEach(function (ind) {
    var st = p[ind.key];
    if (st === null || st === undefined) { return; }
    var d = p[ind.key + "_distance_m"], ev = p[ind.key + "_ev"], item = p[ind.key + "_item"];
    h += "<tr><td>" + buqueEsc(ind.label) + "</td><td><span class='bq-st' style='background:" +
      BUQUE.colours[st] + "'>" + buqueEsc(BUQUE.status[st] || st) + "</span></td><td>";
    if (d !== null && d !== undefined) { h += T.distance + " " + buqueNum(d, 0) + " m"; }
    if (ev) { h += "<br><small>" + T.nearest + " " + buqueEsc(ev) + "</small>"; }
    if (item) {
      h += "<br>" + T.remedy + " " + buqueEsc(item) + " " + buqueNum(p[ind.key + "_qty"], 3) +
        " " + buqueEsc(p[ind.key + "_unit"]) + " · " + T.cost + " " +
        buqueNum(p[ind.key + "_cost"], 0) + " " + T.yuan;
    }
    h += "</td></tr>";
  });
  return h + "</table></div>";
}
function buqueFeaturePopup(p) {
  var h = "<div class='bq-pop'><b>" + buqueEsc(p.name || p.id) + "</b> <small>" +
    buqueEsc(p.id) + "</small><table>";
  Object.keys(p).forEach(function (k) {
    if (k.charAt(0) === "_" || k === "name" || k === "id") { return; }
    if (p[k] === null || p[k] === undefined || p[k] === "") { return; }
    h += "<tr><td>" + buqueEsc(k) + "</td><td>" + buqueEsc(p[k]) + "</td></tr>";
  });
  return h + "</table></div>";
}
"""

CSS = """
.bq-pop table {border-collapse: collapse; margin-top: 4px; font-size: 12px}
.bq-pop td {padding: 2px 6px 2px 0; vertical-align: top; border-top: 1px solid #eee}
.bq-st {color: #fff; padding: 0 4px; border-radius: 3px; white-space: nowrap}
.bq-box {background: rgba(255,255,255,0.93); padding: 6px 10px; border-radius: 4px;
         box-shadow: 0 1px 4px rgba(0,0,0,0.3); font: 12px/1.45 "Noto Sans CJK SC",
         "Microsoft YaHei", "PingFang SC", sans-serif}
.bq-title {position: absolute; top: 10px; left: 54px; z-index: 1000; max-width: 60%}
.bq-title h1 {font-size: 17px; margin: 0 0 2px 0}
.bq-legend {position: absolute; bottom: 28px; right: 10px; z-index: 1000}
.bq-legend i {display: inline-block; width: 12px; height: 12px; margin-right: 6px;
              vertical-align: -1px; border: 1px solid #555}
.bq-legend b {display: block; margin-top: 4px}
.leaflet-container {background: #fbfbf8}
"""


def _per_indicator(data: ReportData) -> pd.DataFrame:
    """Evidence id and remedy per village and indicator, one wide row per village (pivot)."""
    g = data.gaps[["village_code", "indicator", "evidence_id"]]
    ev = g.pivot(index="village_code", columns="indicator", values="evidence_id")
    ev.columns = [f"{k}_ev" for k in ev.columns]
    parts = [ev]
    p = data.projects.drop_duplicates(["village_code", "indicator"])
    if len(p):
        rem = p.pivot(index="village_code", columns="indicator",
                      values=["item", "quantity", "unit", "cost"])
        rem.columns = [f"{k}_{'qty' if f == 'quantity' else f}" for f, k in rem.columns]
        for c in rem.columns:
            if c.endswith(("_qty", "_cost")):
                rem[c] = pd.to_numeric(rem[c], errors="coerce")
        parts.append(rem)
    return pd.concat(parts, axis=1)


def village_layer(data: ReportData, lang: str) -> gpd.GeoDataFrame:
    v = data.villages
    keep = ["code", "name", "level", "county", "township", "population", "households", "poor",
            "exit_year", "n_missing"] + [c for k in data.indicators for c in (k, f"{k}_distance_m")]
    out = gpd.GeoDataFrame(v[[c for c in keep if c in v.columns]].copy(), geometry=v.geometry,
                           crs=v.crs)
    for c in (f"{k}_distance_m" for k in data.indicators):
        out[c] = out[c].round(0)
    extra = _per_indicator(data).reindex(out["code"].to_numpy())
    for c in extra.columns:
        out[c] = extra[c].to_numpy()
    single = data.indicators[0] if len(data.indicators) == 1 else None
    if single:
        order = ["met", "unknown", "missing"]
        colours = np.array([STATUS_COLOURS[k] for k in order] + ["#dddddd"], dtype=object)
        st = v[single].astype("string").fillna("")
        cls = np.select([(st == k).to_numpy(dtype=bool) for k in order], [0, 1, 2], 3)
    else:
        colours = np.array(GAP_COLOURS, dtype=object)
        cls = gap_classes(v, data.indicators)
    admin = (v["level"] == "admin").to_numpy(dtype=bool)
    out["_c"] = np.where(v.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy(), "#ffffff",
                         "#333333")
    out["_f"] = colours[cls]
    out["_r"] = np.where(admin, 7, 5)
    out["_w"] = 1
    out["_fo"] = 0.85
    return out.iloc[np.argsort(cls, kind="stable")]


def feature_layers(data: ReportData, lang: str) -> list[tuple[str, gpd.GeoDataFrame]]:
    """(name, styled GeoDataFrame) per infrastructure layer."""
    out = []
    for kind, g in data.layers.items():
        if g.empty:
            continue
        g = g.copy()
        ind = next((k for k in data.indicators if data.indicator(k).layer == kind), None)
        ev = g.get(f"evidence_{ind}", pd.Series("pass", index=g.index)).fillna("unknown") \
            .astype(str).to_numpy()
        ok = ev == "pass"
        if kind == "roads":
            g["_c"] = np.select([ok, ev == "fail"], [ROAD["pass"][0], ROAD["fail"][0]],
                                ROAD["unknown"][0])
            g["_w"] = np.where(ok, 2.5, 1.5)
        elif kind == "power":
            g["_c"] = POWER
            g["_w"] = 1.5
            g["_d"] = "6 4"
            g["_r"] = 3
        else:
            colour = {"water": WATER, "clinics": CLINIC, "broadband": TOWER}.get(kind, "#555555")
            g["_c"] = colour
            g["_f"] = np.where(ok, colour, "#ffffff")
            g["_r"] = 4 if kind != "clinics" else 5
            g["_w"] = 1.5
            g["_fo"] = np.where(g.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy(), 0.15,
                                0.9)
        label = t(f"layer_{kind}", lang) if kind in ("roads", "power", "water", "clinics",
                                                     "broadband") else kind
        out.append((label, g))
    return out


def _legend_html(data: ReportData, lang: str) -> str:
    single = data.indicators[0] if len(data.indicators) == 1 else None
    if single:
        ind = data.indicator(single)
        head = t("legend_status", lang, label=ind.label_zh if lang == "zh" else ind.label_en)
        items = [(STATUS_COLOURS[k], t(k, lang)) for k in ("met", "unknown", "missing")]
    else:
        head = t("legend_villages", lang)
        items = list(zip(GAP_COLOURS, class_labels(lang), strict=True))
    rows = "".join(f"<div><i style='background:{c}'></i>{_esc(lab)}</div>" for c, lab in items)
    infra = [(ROAD["pass"][0], t("road_pass", lang)), (ROAD["fail"][0], t("road_fail", lang)),
             (POWER, t("power_line", lang)), (WATER, t("water_pass", lang)),
             (CLINIC, t("clinic_pass", lang)), (TOWER, t("tower", lang))]
    kinds = {"roads": (0, 1), "power": (2,), "water": (3,), "clinics": (4,), "broadband": (5,)}
    shown = sorted(i for k in data.layers for i in kinds.get(k, ()))
    rows2 = "".join(f"<div><i style='background:{infra[i][0]}'></i>{_esc(infra[i][1])}</div>"
                    for i in shown)
    return (f"<div class='bq-box bq-legend'><b>{_esc(head)}</b>{rows}"
            + (f"<b>{_esc(t('legend_infra', lang))}</b>{rows2}" if rows2 else "") + "</div>")


def _esc(s: Any) -> str:
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def build_map(data: ReportData, lang: str = "zh", basemap: Path | None = None,
              notes: list[str] | None = None) -> folium.Map:
    """The folium map of ``data`` with no external resources (over an own raster basemap
    embedded in the page, when given)."""
    x0, y0, x1, y1 = data.villages.total_bounds
    m = folium.Map(location=[(y0 + y1) / 2, (x0 + x1) / 2], zoom_start=11, tiles=None,
                   control_scale=True, prefer_canvas=True)
    if basemap is not None:
        found = add_basemap(m, basemap, (x0, y0, x1, y1), lang)
        if notes is not None:
            notes.extend(found)
    m.default_js = []
    m.default_css = []
    js, css = leaflet_assets()
    root = m.get_root()
    root.header.add_child(Element(f"<style>{_script_safe(css)}</style>"), name="leaflet_css")
    root.header.add_child(Element(f"<script>{_script_safe(js)}</script>"), name="leaflet_js")
    root.header.add_child(Element(f"<style>{CSS}</style>"), name="buque_css")
    config = {
        "inds": [{"key": k, "label": data.indicator(k).label_zh if lang == "zh"
                  else data.indicator(k).label_en} for k in data.indicators],
        "status": {k: t(k, lang) for k in STATUSES},
        "colours": STATUS_COLOURS,
        "levels": {"admin": t("level_admin", lang), "natural": t("level_natural", lang)},
        "t": {k: t(k, lang) for k in ("population", "households", "poor", "exit_year",
                                      "distance", "nearest", "remedy", "cost", "yuan")},
    }
    root.header.add_child(Element("<script>var BUQUE = " + _script_safe(json.dumps(
        config, ensure_ascii=False)) + ";" + POPUP_JS + "</script>"), name="buque_js")
    tol = tolerance_of(data)
    for label, g in feature_layers(data, lang):
        GeoJsonLayer(to_geojson(g, tol), label, "buqueFeaturePopup").add_to(m)
    villages = village_layer(data, lang)
    GeoJsonLayer(to_geojson(villages, tol), t("villages", lang), "buqueVillagePopup").add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    m.fit_bounds([[y0, x0], [y1, x1]])
    man = data.manifest
    title = place_name(data, lang) + (" " if lang == "zh" else " — ") + t("gap_map", lang)
    sub = " · ".join([t("run_date", lang, date=str(man.get("created", ""))[:10]),
                      profile_label(data.profile, lang),
                      t("run", lang, run_id=man.get("run_id", ""))])
    m.get_root().html.add_child(Element(
        f"<div class='bq-box bq-title'><h1>{_esc(title)}</h1>{_esc(sub)}</div>"
        + _legend_html(data, lang)))
    attrib = " · ".join(_esc(a) for a in [*data.attribution,
                                          f"Buque {man.get('tool', {}).get('version', '')}"])
    Attribution(attrib).add_to(m)
    root.title = _esc(title)  # branca writes <title>{{ title }}</title> unescaped
    return m


def write_html(data: ReportData, out: Path, lang: str = "zh",
               basemap: Path | None = None) -> tuple[Path, list[str]]:
    """Write the offline map to ``out`` (one file, no external references); with notes."""
    notes: list[str] = []
    html = build_map(data, lang, basemap, notes).get_root().render()
    out.write_text(html, encoding="utf-8")
    if len(data.villages) > LARGE:
        notes.append(f"{len(data.villages):,} villages make a heavy page "
                     f"({out.stat().st_size / 2**20:,.0f} MiB); --county keeps it light")
    return out, notes
