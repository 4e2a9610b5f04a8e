"""Choosing the store a server reads runs from (kept apart from both stores, so neither
imports the other)."""

from __future__ import annotations

from typing import Any

from buque.api.store import RunStore, RunStoreBase


def open_store(settings: Any) -> RunStoreBase:
    """The store the settings name: PostGIS (``postgres``) or run archives (``data``)."""
    if getattr(settings, "postgres", None):
        from buque.api.pgstore import PgRunStore  # psycopg only when PostGIS is asked for

        return PgRunStore(settings.postgres, settings.pg_schema, preload=settings.preload)
    return RunStore(settings.data, preload=settings.preload)
