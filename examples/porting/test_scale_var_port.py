"""A porter's own test: the Equinox port of the layer trains exactly like the NNX original.

Run it with `pytest examples/porting`. `shared.assert_cross_validated` trains both
implementations of the spec in every loop and raises `AssertionError` naming the first step
and leaf where they part, both values and their ULP distance.
"""

from __future__ import annotations

import pytest
from scale_var import SPEC
from scale_var_equinox import EquinoxScaleVar
from scale_var_equinox_buggy import BuggyEquinoxScaleVar
from scale_var_nnx import NNXScaleVar

import shared


def test_equinox_port_matches_nnx_step_by_step():
    result = shared.assert_cross_validated(
        SPEC, [NNXScaleVar, EquinoxScaleVar], steps=20, optimizer="adam", loops=["harness"]
    )
    assert all(pair.bitwise for pair in result.pairs)


def test_the_porting_bug_is_named_where_it_first_shows():
    with pytest.raises(AssertionError, match=r"step 1, state\.var\[\d+\]: .* ULP apart"):
        shared.assert_cross_validated(
            SPEC, [NNXScaleVar, BuggyEquinoxScaleVar], steps=20, loops=["harness"]
        )
