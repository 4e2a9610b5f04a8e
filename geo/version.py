"""The installed Buque version (one place, imported by the engine, the run and the API)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def tool_version() -> str:
    """Buque's version as installed, or ``0+unknown`` when running from a bare source tree."""
    try:
        return version("buque")
    except PackageNotFoundError:
        return "0+unknown"
