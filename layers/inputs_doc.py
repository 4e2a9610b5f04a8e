"""``docs/inputs.md``, made from :mod:`layers.schema`, the project keys, the coordinate column
names and the bundled national profile, so the document cannot drift from the code.

Regenerate with ``python -m layers.inputs_doc > docs/inputs.md`` (tests/test_docs.py fails
when the file differs from what this module makes).
"""

from __future__ import annotations

from buque.layers.errors import REPORT_COLUMNS
from buque.layers.profile import LEVELS, load_profile
from buque.layers.project import LAYER_KEYS, LEDGER_KEYS, OFFICIAL_KEYS, OSM_KEYS, TOP_KEYS
from buque.layers.readers import LAT_NAMES, LON_NAMES
from buque.layers.schema import (
    FALSE_STRINGS,
    FIELD_DOCS,
    GEOMETRY_FAMILIES,
    LAYER_FIELDS,
    TRUE_STRINGS,
    TYPE_DOCS,
)

LAYER_DOCS = {
    "villages": "administrative villages (行政村)",
    "natural_villages": "natural villages, hamlets (自然村/组)",
    "roads": "roads",
    "power": "power lines and points (transformers, substations)",
    "water": "water sources, taps, wells and service-area polygons",
    "clinics": "village clinics",
    "broadband": "towers, masts, fibre nodes and coverage polygons",
    "boundaries": "county and township outlines (maps only)",
}


def _code(values) -> str:
    return ", ".join(f"`{v}`" for v in values)


def render() -> str:
    out = ["# Input layers", "",
           "<!-- made by `python -m layers.inputs_doc > docs/inputs.md` from layers/schema.py; "
           "do not edit by hand -->", "",
           "A project (TOML) names its input layers; each layer's columns are mapped to the "
           "canonical fields below with `fields = { canonical = \"SOURCE\" }`. Any field may be "
           "absent (it is then null, never guessed), except a village's `code`.", "",
           "## Project keys", "",
           f"- top level: {_code(sorted(TOP_KEYS))}",
           f"- `[layers.KIND]`: {_code(sorted(LAYER_KEYS))}",
           f"- `[osm]`: {_code(sorted(OSM_KEYS))}",
           f"- `[official]`: {_code(sorted(OFFICIAL_KEYS))}",
           f"- `[ledger]`: {_code(sorted(LEDGER_KEYS))} (see docs/verify.md)", "",
           "An unknown key anywhere (a misspelt `standrad`, `[layers.road]`) is an error naming "
           "the file and the key, with the closest known key.", "",
           "## Coordinates of tables (CSV, Parquet without geometry)", "",
           f"- longitude: {_code(LON_NAMES)}",
           f"- latitude: {_code(LAT_NAMES)}", "",
           "Names are matched ignoring case and surrounding blanks, first match wins. `X`/`Y` "
           "are taken as east/north as in GIS; a survey table whose X is the northing (测量坐标) "
           "names its columns with `lon = \"...\"` and `lat = \"...\"` in the layer.", "",
           "## Types", ""]
    out += [f"- `{t}`: {d}" for t, d in TYPE_DOCS.items()]
    out += ["", f"True: {_code(sorted(TRUE_STRINGS))}; false: {_code(sorted(FALSE_STRINGS))} "
            "(case ignored).", "", "## Layers", ""]
    for kind, fields in LAYER_FIELDS.items():
        out += [f"### `{kind}`: {LAYER_DOCS[kind]}", "",
                f"Geometry: {', '.join(GEOMETRY_FAMILIES[kind])} (multi-part too).", "",
                "| field | type | meaning |", "|---|---|---|"]
        names = dict(fields) if "id" in fields or kind in ("villages", "natural_villages") \
            else {"id": "string", **fields}
        for name, typ in names.items():
            out.append(f"| `{name}` | {typ} | {FIELD_DOCS[name]} |")
        out.append("")
    prof = load_profile("national")
    out += ["## What counts as evidence (bundled `national` profile)", "",
            "| indicator | layer | levels | evidence |", "|---|---|---|---|"]
    for key, ind in prof.indicators.items():
        ev = "; ".join(_cond(c) for c in ind.evidence) or "any feature"
        out.append(f"| `{key}` {ind.label_zh} | `{ind.layer}` | {', '.join(ind.levels)} | {ev} |")
    out += ["", f"Village levels: {_code(LEVELS)}. An indicator whose levels have no villages "
            "in a run is not assessed (said in `warnings.csv` and the printed summary), unless "
            "the profile gives it `fallback = \"admin\"`: it is then assessed at the "
            "administrative village, and the manifest's `fallback` says so.", "",
            "## Rows set aside: `rejected.csv` and `warnings.csv`", "",
            f"Columns: {_code(REPORT_COLUMNS)}.", "",
            "- `row` is the line a spreadsheet shows for the input row: the header is line 1, "
            "the first data row line 2 (for GIS files, the feature's position + 1 the same "
            "way). A warning about a whole layer has no row.",
            "- `code` and `name` are the row's own (a village's `code`, a feature's `id`), null "
            "where it had none.", ""]
    return "\n".join(out)


def _cond(c) -> str:
    null = c.if_null if isinstance(c.if_null, str) else _cond(c.if_null)
    return f"`{c.field}` {c.op} {_value(c.value)} (if null: {null})"


def _value(v) -> str:
    if isinstance(v, tuple):
        return ", ".join(str(x) for x in v)
    return str(v).lower() if isinstance(v, bool) else str(v)


if __name__ == "__main__":
    print(render(), end="")
