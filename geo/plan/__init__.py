"""Planning: a run's gaps in, works with costs, priorities and phases out (``buque plan``).

Modules: :mod:`~geo.plan.params` (costs and ``--set``), :mod:`~geo.plan.works` (gaps to works),
:mod:`~geo.plan.network` (extension trees), :mod:`~geo.plan.points` (upgrades, sites, verify),
:mod:`~geo.plan.budget`
(funding and phases), :mod:`~geo.plan.make` (the plan), :mod:`~geo.plan.archive` (plan.json,
works.parquet, work_villages.csv, phases.csv), :mod:`~geo.plan.apply` (a scenario run's layers),
:mod:`~geo.plan.whatif` (changed thresholds from stored distances), :mod:`~geo.plan.diff`.
"""
