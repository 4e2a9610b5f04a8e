"""The MapLibre style of the gap map: sources are this server's tiles; nothing external."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from buque.geo.basemap import Basemap

#: style layer ids per toggleable map layer (the web map's layer switches use this)
STYLE_LAYERS = {
    "roads": ["roads-other", "roads-unknown", "roads-hard"],
    "power": ["power-lines", "power-points"],
    "water": ["water"],
    "clinics": ["clinics"],
    "broadband": ["broadband"],
    "villages": ["villages"],
    "boundaries": ["boundaries"],
}
GAP_COLOURS = ["#1a9850", "#fee08b", "#fc8d59", "#d73027", "#7f0000", "#40004b"]
#: a village with no gap but some indicator unknown (无缺口，待核实), as on the print maps
UNVERIFIED_COLOUR = "#a6a6a6"
#: circle radius of a village symbol by level, at zoom 6 and 14
VILLAGE_RADIUS = {"admin": (3, 9), "natural": (2, 6)}


def village_colour() -> list[Any]:
    """The villages' colour in gap-count mode: by the tile property ``gap_class``
    (:func:`geo.villages.gap_class`), the ``gaps`` class shaded by ``n_missing``."""
    by_count = ["step", ["coalesce", ["get", "n_missing"], 0], GAP_COLOURS[0], 1, GAP_COLOURS[1],
                2, GAP_COLOURS[2], 3, GAP_COLOURS[3], 4, GAP_COLOURS[4], 5, GAP_COLOURS[5]]
    # tiles without the property (a PostGIS store published before it): by count alone
    return ["match", ["get", "gap_class"], "met", GAP_COLOURS[0], "unverified", UNVERIFIED_COLOUR,
            by_count]


def basemap_of(request: Any) -> Basemap | None:
    """The server's own basemap (``buque serve --basemap``), if any."""
    return getattr(request.app.state, "basemap", None)


def tile_url(request: Any, bm: Basemap) -> str:
    """The basemap's tile URL template on this server."""
    base = str(request.base_url).rstrip("/")
    return f"{base}/basemap/{{z}}/{{x}}/{{y}}.{bm.fmt}"


#: colours of a vector basemap's layers, by a word in the layer's name (first match)
_VECTOR_FILL = (("water", "#b5d0e8"), ("ocean", "#b5d0e8"), ("park", "#d8e8c8"),
                ("landcover", "#e2ead2"), ("landuse", "#ebe7dc"), ("building", "#dcd6cc"))


def basemap_layers(bm: Basemap, url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The style source and layers drawing the server's basemap (ids start ``basemap``): a
    raster layer, or for vector tiles a plain fill and line per vector layer (no labels: those
    would need a glyph server)."""
    src: dict[str, Any] = {"type": bm.kind, "tiles": [url], "minzoom": bm.minzoom,
                           "maxzoom": bm.maxzoom, "bounds": list(bm.bounds),
                           "attribution": bm.attribution}
    if bm.kind == "raster":
        src["tileSize"] = bm.tile_size
        return src, [{"id": "basemap", "type": "raster", "source": "basemap"}]
    layers: list[dict[str, Any]] = []
    for vl in bm.vector_layers:
        lid = str(vl.get("id", ""))
        fill = next((c for w, c in _VECTOR_FILL if w in lid.lower()), "#e9e5da")
        line = "#b5d0e8" if "water" in lid.lower() else "#ffffff" if any(
            w in lid.lower() for w in ("road", "transport")) else "#c9c3b6"
        layers.append({"id": f"basemap-{lid}-fill", "type": "fill", "source": "basemap",
                       "source-layer": lid, "filter": ["==", ["geometry-type"], "Polygon"],
                       "paint": {"fill-color": fill}})
        layers.append({"id": f"basemap-{lid}-line", "type": "line", "source": "basemap",
                       "source-layer": lid, "filter": ["==", ["geometry-type"], "LineString"],
                       "paint": {"line-color": line, "line-width": 1}})
    return src, layers


def gap_style(tiles: dict[str, str], attribution: str, basemap: Basemap | None = None,
              basemap_url: str = "") -> dict[str, Any]:
    """Style JSON for the tile layers present (``tiles`` maps layer name -> tile URL template),
    over the server's basemap when it has one."""
    sources: dict[str, Any] = {
        k: {"type": "vector", "tiles": [url], "maxzoom": 16, "attribution": attribution}
        for k, url in tiles.items()}
    width = ["interpolate", ["linear"], ["zoom"], 8, 0.6, 12, 1.5, 16, 4]
    layers: list[dict[str, Any]] = [
        {"id": "background", "type": "background", "paint": {"background-color": "#f4f1ea"}}]
    if basemap is not None:
        sources["basemap"], under = basemap_layers(basemap, basemap_url)
        layers.extend(under)
    if "boundaries" in tiles:
        layers.append({"id": "boundaries", "type": "line", "source": "boundaries",
                       "source-layer": "boundaries",
                       "paint": {"line-color": "#6a3d9a", "line-dasharray": [4, 2],
                                 "line-width": ["match", ["get", "level"], "county", 2, 1.2]}})
    if "roads" in tiles:
        ev = ["coalesce", ["get", "evidence_road"], "unknown"]
        for lid, val, colour in (("roads-other", "fail", "#c69c6d"),
                                 ("roads-unknown", "unknown", "#cccccc"),
                                 ("roads-hard", "pass", "#444444")):
            layers.append({"id": lid, "type": "line", "source": "roads", "source-layer": "roads",
                           "filter": ["==", ev, val],
                           "paint": {"line-color": colour, "line-width": width}})
    if "power" in tiles:
        layers.append({"id": "power-lines", "type": "line", "source": "power",
                       "source-layer": "power", "filter": ["==", ["geometry-type"], "LineString"],
                       "paint": {"line-color": "#ff8c00", "line-width": width,
                                 "line-dasharray": [3, 2]}})
        layers.append({"id": "power-points", "type": "circle", "source": "power",
                       "source-layer": "power", "filter": ["==", ["geometry-type"], "Point"],
                       "paint": {"circle-color": "#ff8c00", "circle-radius": 3}})
    for kind, colour in (("water", "#2b83ba"), ("clinics", "#c51b7d"), ("broadband", "#018571")):
        if kind in tiles:
            layers.append({"id": kind, "type": "circle", "source": kind, "source-layer": kind,
                           "paint": {"circle-color": colour, "circle-stroke-color": "#fff",
                                     "circle-stroke-width": 1,
                                     "circle-radius": ["interpolate", ["linear"], ["zoom"],
                                                       8, 2, 14, 5]}})
    if "villages" in tiles:
        layers.append({
            "id": "villages", "type": "circle", "source": "villages", "source-layer": "villages",
            "paint": {
                "circle-color": village_colour(),
                "circle-radius": ["interpolate", ["linear"], ["zoom"], 6,
                                  ["match", ["get", "level"], "admin", VILLAGE_RADIUS["admin"][0],
                                   VILLAGE_RADIUS["natural"][0]], 14,
                                  ["match", ["get", "level"], "admin", VILLAGE_RADIUS["admin"][1],
                                   VILLAGE_RADIUS["natural"][1]]],
                "circle-stroke-color": "#333", "circle-stroke-width": 0.6}})
    return {"version": 8, "name": "Buque gap map", "sources": sources, "layers": layers}
