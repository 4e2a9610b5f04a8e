"""One village class everywhere: ``gaps`` / ``unverified`` (无缺口，待核实) / ``met``, checked
against a classification written here from the statuses, in the tiles, the API, the map
style, the print maps and the HTML export."""

from __future__ import annotations

from test_tiles import _decode, _tile_of

from buque.geo.report.filters import load_report
from buque.geo.report.html import village_layer
from buque.geo.report.maps import GAP_COLOURS, gap_classes

INDICATORS = ("road", "water", "power", "clinic", "broadband")


def expected(tables) -> dict[str, str]:
    out = {}
    for row in tables.villages.to_dict("records"):
        statuses = [row.get(k) for k in INDICATORS]
        out[row["code"]] = ("gaps" if "missing" in statuses else
                            "unverified" if "unknown" in statuses else "met")
    return out


def test_demo_has_every_class(tables) -> None:
    assert set(expected(tables).values()) == {"gaps", "unverified", "met"}


def test_tiles_and_items_carry_the_class(client, tables) -> None:
    want = expected(tables)
    v = tables.villages
    tiles = {_tile_of(a, b, 9) for a, b in zip(v["ref_lon"], v["ref_lat"], strict=True)}
    seen = {}
    for x, y in tiles:
        for f in _decode(client.get(f"/tiles/villages/9/{x}/{y}.mvt"))["villages"]["features"]:
            seen[f["properties"]["code"]] = f["properties"]["gap_class"]
    assert seen == want
    fc = client.get("/collections/villages/items?limit=1000").json()
    assert {f["id"]: f["properties"]["gap_class"] for f in fc["features"]} == want


def test_style_colours_by_the_class_property(client) -> None:
    style = client.get("/styles/gaps.json").json()
    colour = next(x for x in style["layers"] if x["id"] == "villages")["paint"]["circle-color"]
    assert colour[:2] == ["match", ["get", "gap_class"]]
    pairs = dict(zip(colour[2:-1:2], colour[3:-1:2], strict=True))
    assert set(pairs) == {"met", "unverified"} and pairs["met"] != pairs["unverified"]


def test_print_and_html_maps_use_the_same_classes(demo_run, tables) -> None:
    want = expected(tables)
    data = load_report(demo_run)
    cls = gap_classes(data.villages, data.indicators)
    got = dict(zip(data.villages["code"], cls.tolist(), strict=True))
    for code, c in want.items():
        assert (got[code] == 0) == (c == "met"), code
        assert (got[code] == 1) == (c == "unverified"), code
        assert (got[code] >= 2) == (c == "gaps"), code
    layer = village_layer(data, "zh").set_index("code")
    for code, c in want.items():
        if c == "unverified":
            assert layer.loc[code, "_f"] == GAP_COLOURS[1] != GAP_COLOURS[0]
