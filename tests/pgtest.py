"""A throwaway PostgreSQL cluster for a test module (bench/pgcluster.py), failing clearly when
PostgreSQL is not installed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


def throwaway_cluster(tag: str, needed_for: str) -> Iterator:
    """Yield a started cluster; it is removed afterwards. Use with ``yield from`` in a fixture."""
    from bench.pgcluster import Cluster, PostgresMissing

    try:
        cluster = Cluster(tag=tag)
    except PostgresMissing as e:
        pytest.fail(f"PostgreSQL is needed for {needed_for}: {e}", pytrace=False)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()
