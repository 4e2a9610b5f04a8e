"""Standards profiles: declarative, versioned indicator definitions (TOML).

A profile is data: per indicator the village levels it applies to, the evidence filter on the
layer's attributes (three-valued: pass / fail / unknown), the rule and threshold, the deadline,
the target rate and the remedy. ``load_profile("national")`` reads a bundled profile; any other
argument is a path. Nothing about an indicator is hard-coded in the engine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from pathlib import Path
from typing import Any

from buque.geo.rules import rules
from buque.layers.errors import BuqueInputError, check_keys
from buque.layers.exit_criteria import parse_exit
from buque.layers.indicator import Condition, Indicator, NullPolicy, Profile, Remedy
from buque.layers.params import number as _number
from buque.layers.params import require as _require
from buque.layers.schema import LEVELS

STANDARDS_DIR = Path(__file__).parent / "standards"
#: the bundled rule kinds (geo.rules: one unit each)
RULES = rules.names()
OPS = ("in", "not_in", "eq", "min", "max")
QUANTITIES = ("distance_km", "count", "households")

#: the keys a profile may have, per table (besides an indicator's ``*_source`` notes)
TOP_KEYS = {"format", "extends", "name", "version", "title", "description", "indicators",
            "exit"}
#: the keys every indicator may have; each rule adds its own (``Rule.keys``)
COMMON_KEYS = {"label", "sector", "layer", "levels", "applies", "rule", "evidence", "deadline",
               "target_rate", "remedy", "upgrade", "fallback", "plan"}
INDICATOR_KEYS = COMMON_KEYS | rules.keys()
REMEDY_KEYS = {"item", "item_en", "unit", "quantity", "unit_cost", "default_quantity"}


def bundled_profiles() -> list[str]:
    return sorted(p.stem for p in STANDARDS_DIR.glob("*.toml"))


def resolve_profile_path(name_or_path: str | Path, base: Path | None = None) -> Path:
    """A bundled profile name, else a path (relative to ``base`` when given)."""
    s = str(name_or_path)
    if (STANDARDS_DIR / f"{s}.toml").is_file() and "/" not in s and not s.endswith(".toml"):
        return STANDARDS_DIR / f"{s}.toml"
    p = Path(s)
    if not p.is_absolute() and base is not None:
        p = base / p
    if not p.is_file():
        raise BuqueInputError(s, f"no such standards profile (bundled: {', '.join(bundled_profiles())})")
    return p


def load_profile(name_or_path: str | Path, base: Path | None = None) -> Profile:
    """Load a profile; ``extends = "NAME|PATH"`` merges it over a base profile, indicator by
    indicator and key by key. The content hash covers the file and its bases."""
    data, raws, path = _load_raw(name_or_path, base, seen=())
    digest = hashlib.sha256(b"\0".join(raws)).hexdigest()
    return parse_profile(data, path=str(path), content_hash=digest)


def _load_raw(name_or_path: str | Path, base: Path | None, seen: tuple[Path, ...]
              ) -> tuple[dict, list[bytes], Path]:
    path = resolve_profile_path(name_or_path, base)
    if path in seen:
        raise BuqueInputError(str(path), "profile 'extends' chain loops back to itself",
                              field="extends")
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BuqueInputError(str(path), f"not a valid TOML profile: {e}") from e
    check_profile_keys(data, str(path))
    if "extends" not in data:
        return data, [raw], path
    parent, raws, _ = _load_raw(data.pop("extends"), path.parent, (*seen, path))
    merged = {**parent, **{k: v for k, v in data.items() if k != "indicators"}}
    inds = {k: dict(v) for k, v in parent.get("indicators", {}).items()}
    for key, over in data.get("indicators", {}).items():
        inds[key] = {**inds.get(key, {}), **over}
    merged["indicators"] = inds
    return merged, [*raws, raw], path


def check_profile_keys(data: dict, path: str) -> None:
    """Unknown keys anywhere in a profile are errors naming the table and key (with the
    closest known key): a misspelt key must not silently fall back to a default."""
    check_keys(path, "top level", data, TOP_KEYS)
    inds = data.get("indicators", {})
    if not isinstance(inds, dict):
        raise BuqueInputError(path, "'indicators' must be a table of [indicators.KEY]",
                              field="indicators")
    for key, d in inds.items():
        w = f"indicators.{key}"
        if not isinstance(d, dict):
            raise BuqueInputError(path, f"{w}: must be a table")
        check_keys(path, w, [k for k in d if not k.endswith("_source")], INDICATOR_KEYS)
        if isinstance(d.get("label"), dict):
            check_keys(path, f"{w}.label", d["label"], {"zh", "en"})
        if isinstance(d.get("applies"), dict):
            check_keys(path, f"{w}.applies", d["applies"], LEVELS, what="level")
        for r in ("remedy", "upgrade"):
            if isinstance(d.get(r), dict):
                check_keys(path, f"{w}.{r}", d[r], REMEDY_KEYS)


def _condition(d: Any, where: str, path: str) -> Condition:
    if not isinstance(d, dict):
        raise BuqueInputError(path, f"{where}: a condition must be a table, got {d!r}")
    keys = {"field", "if_null", *OPS}
    fld = _require(d, "field", where, path)
    ops = [k for k in OPS if k in d]
    if len(ops) != 1:
        check_keys(path, where, d, keys)  # a misspelt operator says so, with the right one
        raise BuqueInputError(path, f"{where}: a condition needs exactly one of {OPS}, got {ops}")
    op = ops[0]
    value = d[op]
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            raise BuqueInputError(path, f"{where}: '{op}' takes a list", field=op)
        value = tuple(value)
    null = d.get("if_null", "unknown")
    if isinstance(null, dict):
        if_null: NullPolicy | Condition = _condition(null, f"{where}.if_null", path)
    elif null in ("pass", "fail", "unknown"):
        if_null = null
    else:
        raise BuqueInputError(path, f"{where}: if_null must be pass, fail, unknown or a condition",
                              field="if_null")
    check_keys(path, where, d, keys)
    return Condition(field=fld, op=op, value=value, if_null=if_null)


def _remedy(d: Any, where: str, path: str) -> Remedy:
    if not isinstance(d, dict):
        raise BuqueInputError(path, f"{where}: must be a table")
    q = _require(d, "quantity", where, path)
    if q not in QUANTITIES:
        raise BuqueInputError(path, f"{where}: quantity must be one of {QUANTITIES}", field="quantity")
    _require(d, "unit_cost", where, path)
    return Remedy(item=_require(d, "item", where, path), item_en=d.get("item_en", ""),
                  unit=_require(d, "unit", where, path), quantity=q,
                  unit_cost=_number(d, "unit_cost", where, path) or 0.0,
                  default_quantity=_number(d, "default_quantity", where, path))


def _target(d: dict, where: str, path: str) -> float:
    t = _number(d, "target_rate", where, path, default=1.0)
    if t is None or t > 1:
        raise BuqueInputError(path, f"{where}: target_rate must be between 0 and 1",
                              field="target_rate")
    return t


def parse_profile(data: dict, *, path: str = "<profile>", content_hash: str = "") -> Profile:
    """Validate a profile's raw TOML table; errors name the indicator and key."""
    if data.get("format", 1) != 1:
        raise BuqueInputError(path, f"unsupported profile format {data.get('format')!r}")
    check_profile_keys(data, path)
    inds: dict[str, Indicator] = {}
    for key, d in _require(data, "indicators", "profile", path).items():
        w = f"indicators.{key}"
        layer = _require(d, "layer", w, path)
        levels = tuple(_require(d, "levels", w, path))
        if not levels or set(levels) - set(LEVELS):
            raise BuqueInputError(path, f"{w}: levels must be among {LEVELS}", field="levels")
        rule_name = _require(d, "rule", w, path)
        if rule_name not in rules:
            raise BuqueInputError(path, f"{w}: rule must be one of {rules.names()}", field="rule")
        rule = rules.get(rule_name)
        rule.check_layer(layer, w, path)
        params = rule.parse(d, w, path)  # the rule unit validates its own keys
        fallback = d.get("fallback")
        if fallback is not None and (fallback not in LEVELS or fallback in levels):
            raise BuqueInputError(path, f"{w}: fallback must be a level among {LEVELS} other "
                                  f"than the indicator's own ({', '.join(levels)})",
                                  field="fallback")
        label = d.get("label", {})
        try:
            deadline = dt.date.fromisoformat(str(_require(d, "deadline", w, path)))
        except ValueError as e:
            raise BuqueInputError(path, f"{w}: deadline must be YYYY-MM-DD", field="deadline") from e
        applies = {lvl: _condition(c, f"{w}.applies.{lvl}", path)
                   for lvl, c in d.get("applies", {}).items()}
        inds[key] = Indicator(
            key=key, label_zh=label.get("zh", key), label_en=label.get("en", key),
            sector=d.get("sector", ""), layer=layer, levels=levels, rule=rule_name,
            evidence=tuple(_condition(c, f"{w}.evidence[{i}]", path)
                           for i, c in enumerate(d.get("evidence", []))),
            deadline=deadline, target_rate=_target(d, w, path),
            remedy=_remedy(_require(d, "remedy", w, path), f"{w}.remedy", path),
            upgrade=_remedy(d["upgrade"], f"{w}.upgrade", path) if "upgrade" in d else None,
            applies=applies, params=params, reach_m=rule.reach_m(params), fallback=fallback,
            plan=dict(d.get("plan", {})),
            sources={k: v for k, v in d.items() if k.endswith("_source")},
        )
    return Profile(name=str(_require(data, "name", "profile", path)),
                   version=str(_require(data, "version", "profile", path)),
                   title=data.get("title", ""), description=data.get("description", ""),
                   indicators=inds, content_hash=content_hash, path=path,
                   extra={"exit": parse_exit(data.get("exit"), inds, path)})
