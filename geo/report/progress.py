"""Progress of an export: a callback ``progress(fraction, step)`` told, as each step starts,
the fraction of the whole export done so far (0 to 1) and the step's name.

Exports take ``progress=None`` (report nothing); :func:`part` hands a sub-step its share of the
range, so nested writers (a bundle's county, its map, its PDF) report on one scale.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]


def _nothing(fraction: float, step: str) -> None:
    return None


def part(progress: Progress | None, start: float, end: float, prefix: str = "") -> Progress:
    """A callback reporting ``[0, 1]`` of a sub-step as ``[start, end]`` of ``progress``, its
    step names prefixed with ``prefix: `` when given."""
    if progress is None:
        return _nothing
    outer = progress

    def report(fraction: float, step: str) -> None:
        f = min(max(fraction, 0.0), 1.0)
        outer(start + (end - start) * f, f"{prefix}: {step}" if prefix else step)

    return report


def reporter(progress: Progress | None) -> Progress:
    """``progress``, or a callback that reports nothing."""
    return progress if progress is not None else _nothing
