"""Canonical layer kinds and their fields (documented in docs/inputs.md, made from this module)."""

from __future__ import annotations

from typing import Literal

FieldType = Literal["string", "int", "float", "bool"]

#: The status of a (village, indicator) pair, in this order everywhere (codes, columns, legends).
STATUSES = ("met", "missing", "unknown")
MET, MISSING, UNKNOWN = STATUSES
#: Village levels: administrative (行政村) and natural (自然村).
LEVELS = ("admin", "natural")
#: The count columns of every summary (summary.csv, the ledger, /summary, progress).
COUNT_COLUMNS = ("assessed", *STATUSES)

#: Fields every village carries, administrative or natural.
VILLAGE_FIELDS: dict[str, FieldType] = {
    "code": "string",
    "name": "string",
    "county": "string",
    "township": "string",
    "population": "int",
    "households": "int",
    "poor": "bool",
    "exit_year": "int",
    # optional given reference point of a polygon village (its centre); else point_on_surface
    "ref_lon": "float",
    "ref_lat": "float",
}

#: Fields per layer kind; ``id`` is always present (generated from the row when absent).
LAYER_FIELDS: dict[str, dict[str, FieldType]] = {
    "villages": VILLAGE_FIELDS,
    "natural_villages": {**VILLAGE_FIELDS, "village_code": "string"},
    "roads": {"id": "string", "name": "string", "surface": "string", "width_m": "float",
              "highway": "string"},
    "power": {"id": "string", "name": "string", "kind": "string", "voltage": "string",
              "phases": "string"},
    "water": {"id": "string", "name": "string", "kind": "string", "safe": "bool"},
    "clinics": {"id": "string", "name": "string", "kind": "string", "level": "string",
                "standardized": "bool"},
    "broadband": {"id": "string", "name": "string", "kind": "string", "radius_m": "float"},
    # county / township outlines, for maps only (no indicator reads them)
    "boundaries": {"id": "string", "name": "string", "level": "string"},
}

VILLAGE_LAYERS = ("villages", "natural_villages")
FEATURE_LAYERS = tuple(k for k in LAYER_FIELDS if k not in VILLAGE_LAYERS)
LEVEL_OF_LAYER = {"villages": "admin", "natural_villages": "natural"}

#: Allowed geometry families per layer kind.
GEOMETRY_FAMILIES: dict[str, tuple[str, ...]] = {
    "villages": ("Point", "Polygon"),
    "natural_villages": ("Point",),
    "roads": ("LineString",),
    "power": ("LineString", "Point", "Polygon"),
    "water": ("Point", "Polygon", "LineString"),
    "clinics": ("Point", "Polygon"),
    "broadband": ("Point", "Polygon"),
    "boundaries": ("Polygon",),
}

TRUE_STRINGS = frozenset({"true", "t", "yes", "y", "1", "是", "有", "√", "贫困村", "x"})
FALSE_STRINGS = frozenset({"false", "f", "no", "n", "0", "否", "无", "非贫困村"})

#: What each canonical field means and which values it takes (docs/inputs.md is made from
#: this, the field lists above and the bundled profile; tests/test_docs.py keeps them in step).
FIELD_DOCS: dict[str, str] = {
    "id": "the feature's identifier; made from the row (`roads:12`) when absent",
    "code": "the village's unique code, e.g. the 12-digit NBS code (统计用区划代码); a row "
            "without one is rejected, a repeated one rejected naming the first",
    "name": "the name (村名, 自然村名, or the feature's)",
    "county": "county (县/区); natural villages take their administrative village's when absent",
    "township": "township (乡/镇/街道); natural villages take their administrative village's "
                "when absent",
    "population": "residents (a whole number)",
    "households": "households (户数, a whole number); the national profile assesses roads for "
                  "natural villages of 30+ households (unknown: assessed anyway)",
    "poor": "a poor village (贫困村); natural villages take their administrative village's "
            "when absent",
    "exit_year": "the planned or actual exit year (出列年份, e.g. 2019); natural villages take "
                 "their administrative village's when absent",
    "ref_lon": "longitude of a polygon village's given centre (its reference point); else "
               "point_on_surface is used",
    "ref_lat": "latitude of that centre",
    "village_code": "the parent administrative village's `code`; when absent: the polygon "
                    "containing the point, else the nearest administrative village",
    "surface": "road surface, as OSM `surface` (asphalt, concrete, paved, ...) or in Chinese "
               "(沥青, 水泥, 混凝土, 硬化, 砂石, ...)",
    "width_m": "pavement width in metres (`3.5`, `3.5 m` and `3,5` are read)",
    "highway": "road class (OSM `highway`, or 县道/乡道/村道 ...); informative",
    "kind": "what the feature is; power: line, minor_line, cable, transformer, substation, "
            "线路, 变压器, 台区 ...; water: tap, well, water_works, 集中供水, 自来水, 水井 ...; "
            "broadband: tower, mast, fibre node, coverage",
    "voltage": "voltage in volts, as in OSM (`10000`, `400;230`); the `power_supply` rule: "
               "a line is low-voltage when one of its voltages is ≤ 1 kV (docs/rules.md)",
    "phases": "number of phases, as OSM `phases` (`3`: three-phase, 动力电; `1`)",
    "safe": "water quality meets the standard (达标)",
    "level": "clinics: the level of the facility; boundaries: `county` or `township`",
    "standardized": "the clinic is a standardized village clinic (标准化村卫生室)",
    "radius_m": "a tower's coverage radius in metres (else the profile's default)",
}

TYPE_DOCS: dict[str, str] = {
    "string": "text (numbers read as text: `610902001003.0` becomes `610902001003`)",
    "int": "whole number; text that does not parse is left null with a warning",
    "float": "number; text that does not parse is left null with a warning",
    "bool": "true/false, 1/0 or yes/no-like text (see below); anything else is left null "
            "with a warning",
}
