"""Rules as plug-ins: :data:`rules` maps a profile's ``rule = "NAME"`` to its unit.

``rules.register(MyRule())`` returns a registry with one more (see docs/rules.md); the
bundled one holds the spatial rules.
"""

from __future__ import annotations

from buque.geo.rules.base import REASONS, Result, Rule, RuleRegistry
from buque.geo.rules.coverage import Coverage
from buque.geo.rules.inside_village import InsideVillage
from buque.geo.rules.network_distance import WithinNetworkDistance
from buque.geo.rules.power_supply import PowerSupply
from buque.geo.rules.register import Register
from buque.geo.rules.within_distance import WithinDistance

rules = RuleRegistry([WithinDistance(), InsideVillage(), Coverage(), WithinNetworkDistance(),
                      Register(), PowerSupply()])


def rule_of(ind: object) -> Rule:
    """The rule unit of an indicator (anything with a ``rule`` name)."""
    return rules.get(ind.rule)  # type: ignore[attr-defined]


__all__ = ["REASONS", "Result", "Rule", "RuleRegistry", "rule_of", "rules"]
