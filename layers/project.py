"""Project files (TOML): which inputs, which standard, which CRS. See docs/inputs.md."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from buque.layers.errors import BuqueInputError, check_keys
from buque.layers.registers import RegisterSpec, parse_registers
from buque.layers.schema import LAYER_FIELDS

#: the keys a project may have, per table (anything else is an error with a suggestion)
TOP_KEYS = {"name", "standard", "crs", "layers", "osm", "official", "registers", "year",
            "ledger", "plan"}
LAYER_KEYS = {"path", "layer", "fields", "encoding", "crs", "lon", "lat"}
OSM_KEYS = {"path", "county", "admin_places", "natural_places", "county_admin_level",
            "township_admin_level"}
OFFICIAL_KEYS = {"path", "prefix", "encoding"}
LEDGER_KEYS = {"path", "fields", "encoding", "sheet"}


@dataclass(frozen=True)
class LayerSpec:
    """One input layer: a file (or one layer of it), its field mapping and declared CRS."""

    kind: str
    path: Path
    layer: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None
    crs: str | None = None
    lon: str | None = None
    lat: str | None = None


@dataclass(frozen=True)
class OsmSpec:
    """Derive missing layers from an OpenStreetMap extract."""

    path: Path
    county: str | None = None
    admin_places: tuple[str, ...] = ("village",)
    natural_places: tuple[str, ...] = ("hamlet", "isolated_dwelling")
    county_admin_level: str | None = None
    township_admin_level: str | None = None


@dataclass(frozen=True)
class OfficialSpec:
    """The official village list (NBS 12-digit codes) that every village must be found in."""

    path: Path
    prefixes: tuple[str, ...] = ()
    encoding: str | None = None


@dataclass(frozen=True)
class LedgerSpec:
    """The office's ledger (台账): XLSX or CSV, one row per village, a column per indicator
    (``fields`` maps ``village_code``, ``name`` and indicator keys to its columns)."""

    path: Path
    fields: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None
    sheet: str | None = None


@dataclass(frozen=True)
class Project:
    name: str
    path: Path
    standard: str
    crs: str | None
    layers: dict[str, LayerSpec]
    osm: OsmSpec | None = None
    official: OfficialSpec | None = None
    registers: dict[str, RegisterSpec] = field(default_factory=dict)
    #: the assessment year (exit checks: villages due to exit this year)
    year: int | None = None
    ledger: LedgerSpec | None = None

    @property
    def base(self) -> Path:
        return self.path.parent


def load_project(path: str | Path) -> Project:
    """Read and check a project TOML; paths are resolved relative to it."""
    path = Path(path).resolve()
    if not path.is_file():
        raise BuqueInputError(str(path), "no such project file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BuqueInputError(str(path), f"not a valid TOML project: {e}") from e
    base = path.parent
    check_keys(str(path), "top level", data, TOP_KEYS)
    for table, known in (("osm", OSM_KEYS), ("official", OFFICIAL_KEYS), ("ledger", LEDGER_KEYS)):
        if table in data and isinstance(data[table], dict):
            check_keys(str(path), f"[{table}]", data[table], known)
    layers: dict[str, LayerSpec] = {}
    if not isinstance(data.get("layers", {}), dict):
        raise BuqueInputError(str(path), "'layers' must be a table of [layers.KIND]",
                              field="layers")
    for kind, spec in data.get("layers", {}).items():
        where = f"[layers.{kind}]"
        check_keys(str(path), where, [kind], LAYER_FIELDS, what="layer kind")
        if not isinstance(spec, dict) or "path" not in spec:
            if isinstance(spec, dict) and not spec:
                continue  # an empty table only names the layer
            raise BuqueInputError(str(path), f"{where}: needs a 'path'", field="path")
        check_keys(str(path), where, spec, LAYER_KEYS)
        fields = dict(spec.get("fields", {}))
        check_keys(str(path), f"{where} fields", fields, {*LAYER_FIELDS[kind], "id"},
                   what="canonical field")
        layers[kind] = LayerSpec(kind=kind, path=(base / spec["path"]).resolve(),
                                 layer=spec.get("layer"), fields=fields,
                                 encoding=spec.get("encoding"), crs=spec.get("crs"),
                                 lon=spec.get("lon"), lat=spec.get("lat"))
    osm = None
    if "osm" in data:
        o = data["osm"]
        if "path" not in o:
            raise BuqueInputError(str(path), "[osm]: needs a 'path'", field="path")
        osm = OsmSpec(path=(base / o["path"]).resolve(), county=o.get("county"),
                      admin_places=tuple(o.get("admin_places", OsmSpec.admin_places)),
                      natural_places=tuple(o.get("natural_places", OsmSpec.natural_places)),
                      county_admin_level=_opt_str(o.get("county_admin_level")),
                      township_admin_level=_opt_str(o.get("township_admin_level")))
    official = None
    if "official" in data:
        o = data["official"]
        if "path" not in o:
            raise BuqueInputError(str(path), "[official]: needs a 'path'", field="path")
        pref = o.get("prefix", ())
        official = OfficialSpec(path=(base / o["path"]).resolve(),
                                prefixes=(pref,) if isinstance(pref, str) else tuple(pref),
                                encoding=o.get("encoding"))
    ledger = None
    if "ledger" in data:
        o = data["ledger"]
        if not isinstance(o, dict) or "path" not in o:
            raise BuqueInputError(str(path), "[ledger]: needs a 'path'", field="path")
        ledger = LedgerSpec(path=(base / o["path"]).resolve(),
                            fields={str(k): str(v) for k, v in dict(o.get("fields", {})).items()},
                            encoding=o.get("encoding"), sheet=_opt_str(o.get("sheet")))
    if "villages" not in layers and "natural_villages" not in layers and osm is None:
        raise BuqueInputError(str(path), "no village layer: give [layers.villages], "
                              "[layers.natural_villages] or an [osm] extract")
    year = data.get("year")
    if year is not None and (isinstance(year, bool) or not isinstance(year, int)
                             or not 1990 <= year <= 2100):
        raise BuqueInputError(str(path), f"year must be a year such as 2026, got {year!r}",
                              field="year")
    return Project(name=data.get("name", path.stem), path=path,
                   standard=str(data.get("standard", "national")), crs=data.get("crs"),
                   layers=layers, osm=osm, official=official,
                   registers=parse_registers(data.get("registers"), path), year=year,
                   ledger=ledger)


def _opt_str(v: object) -> str | None:
    return None if v is None else str(v)
