"""Registers without geometry (``[registers.KIND]`` in a project): what a register is.

A register is a table (CSV/TSV, any encoding such as GBK, or XLSX) whose rows belong to
villages by code, e.g. the 建档立卡 household register. Fields are mapped to canonical names
as for layers; with no mapping, a column is found by its canonical name or one of the usual
Chinese headers (:data:`HEADER_ALIASES`). Reading and validation: :mod:`layers.households`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from buque.layers.errors import BuqueInputError, check_keys

REGISTER_KEYS = {"path", "fields", "encoding", "sheet"}

#: canonical fields of each register kind and their types
REGISTER_FIELDS: dict[str, dict[str, str]] = {
    "households": {
        "id": "string", "village_code": "string", "members": "int", "poor": "bool",
        "exit_year": "int", "housing_grade": "grade", "housing_renovated": "bool",
        "water_safe": "bool", "school_dropouts": "int", "insured": "bool",
    },
}
#: fields a row cannot do without
REQUIRED = {"households": ("id", "village_code")}

#: usual headers of county household registers, per canonical field (used when unmapped)
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("户编号", "户主编号", "户号", "家庭编号"),
    "village_code": ("村代码", "行政村代码", "村编码", "自然村代码", "所在村代码"),
    "members": ("家庭人口", "家庭人口数", "人口数", "户人口数"),
    "poor": ("是否贫困户", "贫困户", "建档立卡"),
    "exit_year": ("脱贫年度", "脱贫年份", "计划脱贫年度"),
    "housing_grade": ("住房安全等级", "房屋等级", "危房等级", "住房等级"),
    "housing_renovated": ("是否已改造", "危房改造", "已改造"),
    "water_safe": ("饮水安全", "饮水是否安全"),
    "school_dropouts": ("辍学人数", "失学辍学人数"),
    "insured": ("是否参保", "参加医保", "参保"),
}


@dataclass(frozen=True)
class RegisterSpec:
    kind: str
    path: Path
    fields: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None
    sheet: str | None = None


def parse_registers(data: object, path: Path) -> dict[str, RegisterSpec]:
    """The ``[registers.KIND]`` tables of a project (paths relative to it)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BuqueInputError(str(path), "'registers' must be a table of [registers.KIND]",
                              field="registers")
    out = {}
    for kind, spec in data.items():
        where = f"[registers.{kind}]"
        check_keys(str(path), where, [kind], REGISTER_FIELDS, what="register kind")
        if not isinstance(spec, dict) or "path" not in spec:
            raise BuqueInputError(str(path), f"{where}: needs a 'path'", field="path")
        check_keys(str(path), where, spec, REGISTER_KEYS)
        fields = dict(spec.get("fields", {}))
        check_keys(str(path), f"{where} fields", fields, REGISTER_FIELDS[kind],
                   what="canonical field")
        out[kind] = RegisterSpec(kind=kind, path=(path.parent / spec["path"]).resolve(),
                                 fields=fields, encoding=spec.get("encoding"),
                                 sheet=spec.get("sheet"))
    return out
