"""Training state flatten/unflatten: exact round trips (property-based) and refused skeletons."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pixloom.errors import CheckpointError
from pixloom.io.state import flatten_state, unflatten_state

_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.lists(st.floats(width=32, allow_nan=False), max_size=4).map(torch.tensor),
)
_trees = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-5, 5)), children, max_size=3),
    ),
    max_leaves=12,
)


def _same(left, right):
    if type(left) is not type(right):
        return False
    if isinstance(left, torch.Tensor):
        return left.dtype == right.dtype and torch.equal(left, right)
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, (list, tuple)):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right))
    if isinstance(left, float):
        return left.hex() == right.hex() or (math.isnan(left) and math.isnan(right))
    return left == right


@settings(max_examples=60, deadline=None)
@given(_trees)
def test_flatten_unflatten_round_trip(state):
    tensors, skeleton = flatten_state(state)
    assert _same(state, unflatten_state(skeleton, tensors))


@pytest.mark.parametrize(
    ("root", "match"),
    [
        ({"type": "tensor", "key": "t9"}, "not in the state tensors"),
        ({"type": "pickle", "value": "x"}, "unknown node type"),
        ({"type": "int", "value": "12"}, "must be an integer"),
        ({"type": "float", "hex": 3}, "float.hex"),
        ({"type": "dict", "items": [[1.5, {"type": "value", "value": None}]]}, "pairs"),
        ({"type": "list"}, "'items' list"),
    ],
)
def test_malformed_skeleton_is_refused(root, match):
    skeleton = {"format": "pixloom-state", "format_version": 1, "root": root}
    with pytest.raises(CheckpointError, match=match):
        unflatten_state(skeleton, {"t0": torch.zeros(1)} if "t9" in str(root) else {})


def test_unused_tensors_are_refused():
    tensors, skeleton = flatten_state({"a": torch.zeros(1)})
    tensors["t7"] = torch.ones(1)
    with pytest.raises(CheckpointError, match="not in the skeleton"):
        unflatten_state(skeleton, tensors)
