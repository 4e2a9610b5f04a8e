"""Hooks for the schemathesis CLI (loaded through ``SCHEMATHESIS_HOOKS``; public hook API, no
pytest integration involved)."""

from __future__ import annotations

import schemathesis


def inverted_latitudes(bbox: object) -> bool:
    """A bbox whose minimum latitude is above its maximum: schema-valid (JSON Schema cannot
    relate two items of one array) but not a box, so the API answers 400 by design."""
    if bbox is None:
        return False
    try:
        nums = [float(x) for x in (bbox.split(",") if isinstance(bbox, str) else bbox)]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return False
    return len(nums) >= 4 and nums[1] > nums[3]


@schemathesis.hook
def filter_query(ctx, query) -> bool:
    """Generate no inverted bbox: it would be a schema-valid request that is rightly refused."""
    return not inverted_latitudes((query or {}).get("bbox"))
