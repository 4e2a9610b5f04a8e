"""Canonical layer kinds and their fields (see CONTRACT.md)."""

from __future__ import annotations

from typing import Literal

FieldType = Literal["string", "int", "float", "bool"]

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
    "power": {"id": "string", "name": "string", "kind": "string", "voltage": "string"},
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
