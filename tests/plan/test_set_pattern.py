"""The ``/whatif`` ``set`` pattern of the OpenAPI document says exactly what is answerable:
every text it matches is accepted by the parameter parser of the same profile, and texts the
parser refuses do not match it."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from buque.geo.plan.params import make_params, parse_set, set_keys, set_pattern
from buque.layers.errors import BuqueInputError
from buque.layers.profile import load_profile

PROFILE = load_profile("national")
PATTERN = set_pattern(PROFILE)


def accepted(text: str) -> bool:
    try:
        make_params(PROFILE, dict([parse_set(text)]))
    except BuqueInputError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.from_regex(PATTERN, fullmatch=True))
def test_every_matching_text_is_accepted(text):
    assert accepted(text), text


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[a-z_]{1,12}\.[a-z_]{1,20}=[0-9]{1,4}", fullmatch=True))
def test_refused_texts_do_not_match(text):
    if not accepted(text):
        assert re.fullmatch(PATTERN, text) is None, text


def test_documented_examples():
    for text in ("water.threshold_m=1000", "road.unit_cost=800000", "county.山阳县=1.4"):
        assert re.fullmatch(PATTERN, text) and accepted(text)
    for text in ("clinic.threshold_m=1", "x.y=1", "water.radius_m=5", "road.unit_cost=-1",
                 "road.unit_cost=" + "9" * 400):
        assert not re.fullmatch(PATTERN, text) and not accepted(text), text
    assert "broadband.radius_m" in set_keys(PROFILE)
