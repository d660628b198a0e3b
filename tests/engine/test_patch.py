import copy

import jsonpatch

from webhook.engine.patch import diff, escape, pointer


def _roundtrip(a: object, b: object) -> list[dict[str, object]]:
    ops = diff(a, b)
    assert jsonpatch.apply_patch(copy.deepcopy(a), ops) == b
    return ops


def test_equal_objects_give_no_patch() -> None:
    pod = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}
    assert diff(pod, copy.deepcopy(pod)) == []


def test_keys_with_slash_and_tilde_are_escaped() -> None:
    ops = _roundtrip({"labels": {}}, {"labels": {"app.kubernetes.io/name": "web", "a~b": "c"}})
    paths = {op["path"] for op in ops}
    assert paths == {"/labels/app.kubernetes.io~1name", "/labels/a~0b"}
    assert escape("a/b~c") == "a~1b~0c"
    assert pointer("metadata", "labels", "x/y", 0) == "/metadata/labels/x~1y/0"


def test_missing_parent_is_added_whole() -> None:
    ops = _roundtrip({"metadata": {}}, {"metadata": {"labels": {"a": "1"}}})
    assert ops == [{"op": "add", "path": "/metadata/labels", "value": {"a": "1"}}]


def test_scalar_change_is_a_replace_at_its_index() -> None:
    a = {"tolerations": [{"key": "x", "tolerationSeconds": 300}, {"key": "y", "tolerationSeconds": 300}]}
    b = copy.deepcopy(a)
    b["tolerations"][1]["tolerationSeconds"] = 60
    assert _roundtrip(a, b) == [{"op": "replace", "path": "/tolerations/1/tolerationSeconds", "value": 60}]


def test_appends_and_prepends_are_adds() -> None:
    assert _roundtrip({"l": [1, 2]}, {"l": [1, 2, 3]}) == [{"op": "add", "path": "/l/-", "value": 3}]
    assert _roundtrip({"l": [1, 2]}, {"l": [7, 8, 1, 2]}) == [
        {"op": "add", "path": "/l/0", "value": 7},
        {"op": "add", "path": "/l/1", "value": 8},
    ]


def test_other_list_changes_replace_the_list() -> None:
    assert _roundtrip({"l": [1, 2, 3]}, {"l": [1, 3]}) == [{"op": "replace", "path": "/l", "value": [1, 3]}]


def test_removed_key_and_type_change() -> None:
    _roundtrip({"a": 1, "b": {"c": 1}}, {"b": "now a string"})
    _roundtrip({"a": 1}, {"a": 1.5})
