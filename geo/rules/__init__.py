"""Rules as plug-ins: :data:`rules` maps a profile's ``rule = "NAME"`` to its unit.

``rules.register(MyRule())`` returns a registry with one more (see docs/rules.md); the
bundled one holds the spatial rules.
"""

from __future__ import annotations

from geo.rules.base import REASONS, Result, Rule, RuleRegistry
from geo.rules.coverage import Coverage
from geo.rules.inside_village import InsideVillage
from geo.rules.network_distance import WithinNetworkDistance
from geo.rules.power_supply import PowerSupply
from geo.rules.register import Register
from geo.rules.within_distance import WithinDistance

rules = RuleRegistry([WithinDistance(), InsideVillage(), Coverage(), WithinNetworkDistance(),
                      Register(), PowerSupply()])


def rule_of(ind: object) -> Rule:
    """The rule unit of an indicator (anything with a ``rule`` name)."""
    return rules.get(ind.rule)  # type: ignore[attr-defined]


__all__ = ["REASONS", "Result", "Rule", "RuleRegistry", "rule_of", "rules"]
