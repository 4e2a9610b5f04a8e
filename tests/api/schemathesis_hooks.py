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


def unknown_setting(values: object) -> bool:
    """A ``/whatif`` ``set`` of the documented shape naming no parameter of the profile
    (``x.y=1``): schema-valid (the keys depend on the run's profile), refused with 400 by design."""
    if not values:
        return False
    from geo.plan.params import make_params, parse_set
    from layers.errors import BuqueInputError
    from layers.profile import load_profile

    vals = values if isinstance(values, list | tuple) else [values]
    try:
        make_params(load_profile("national"), dict(parse_set(str(v)) for v in vals))
    except BuqueInputError:
        return True
    return False


@schemathesis.hook
def filter_query(ctx, query) -> bool:
    """Generate no inverted bbox and no unknown what-if parameter: they would be schema-valid
    requests that are rightly refused."""
    q = query or {}
    return not inverted_latitudes(q.get("bbox")) and not unknown_setting(q.get("set"))
