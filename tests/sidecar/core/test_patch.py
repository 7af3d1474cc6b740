from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.codec import drop_nulls
from sidecar.core.patch import apply_merge_patch, json_equal, merge_patch

# JSON values without null members in objects (the sidecar's states never hold any).
scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=4), values, max_size=6)


@given(objects, objects)
def test_merge_patch_applied_gives_the_new_object(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert json_equal(apply_merge_patch(old, merge_patch(old, new)), new)


@given(objects)
def test_merge_patch_of_equal_objects_is_empty(obj: dict[str, Any]) -> None:
    assert merge_patch(obj, obj) == {}


def test_merge_patch_removes_with_null_and_recurses_into_objects() -> None:
    old = {"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2], "gone": True}
    new = {"a": 1, "b": {"x": 1, "y": 3}, "c": [1, 2, 3], "added": "yes"}
    assert merge_patch(old, new) == {"b": {"y": 3}, "c": [1, 2, 3], "gone": None, "added": "yes"}


def test_merge_patch_tells_json_types_apart() -> None:
    assert merge_patch({"a": 1}, {"a": True}) == {"a": True}
    assert merge_patch({"a": 0}, {"a": False}) == {"a": False}
    assert merge_patch({"a": 1}, {"a": 1.0}) == {}
    assert merge_patch({"a": {"x": 1}}, {"a": [1]}) == {"a": [1]}


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7386, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_apply_merge_patch_follows_rfc_7386_examples(target: Any, patch: Any, result: Any) -> None:
    assert apply_merge_patch(target, patch) == result


def test_drop_nulls_keeps_nulls_inside_arrays() -> None:
    assert drop_nulls({"a": None, "b": {"c": None, "d": 1}, "e": [None, {"f": None}]}) == {
        "b": {"d": 1},
        "e": [None, {}],
    }
