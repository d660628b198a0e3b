"""Hypothesis strategies for bad input: AdmissionReviews mutated from the captured fixtures, and raw bodies.

A review starts as a real capture (tests/fixtures/admission-reviews), is recast as another kind,
operation or apiVersion, and then has nodes at any depth replaced, dropped or duplicated. Values that
JSON text can carry but Python's json cannot build (deep nesting, 1e999, NaN) are spliced into the body
as text. The policy-file strategies are in tests/policy_strategies.py.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from webhook.kube.pods import TEMPLATE_PATHS

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "admission-reviews"
REVIEWS: tuple[str, ...] = tuple(f.read_text() for f in sorted(FIXTURES.glob("*.json")))

# Cases run, by fuzz test; tests/conftest.py prints them at the end of the session.
CASES: Counter[str] = Counter()

KINDS = (*TEMPLATE_PATHS, "Unknown", "ConfigMap", "", "pod", "PodTemplate")
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT") * 3 + ("PATCH", "", "create")
API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1", "admission.k8s.io/v2", "v1")
SUBRESOURCES = ("", "status", "ephemeralcontainers", "scale")
# Strings that break naive code: direction overrides, combining marks, NUL, emoji sequences, zero
# widths, BOMs, lone surrogates (json.dumps writes them as \ud800 escapes), pointer and glob syntax.
ODD_STRINGS = (
    "\u202eevil\u202c",
    "e\u0301\u0301\u0301",
    "\x00",
    "a\x00b",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",
    "\u200b",
    "\ufeff",
    "\u0130\u0131\u212a",
    "line\nbreak",
    "tab\there",
    '"quoted"',
    "back\\slash",
    "/",
    "~1",
    "~",
    "-",
    "*",
    "..",
    "",
    " ",
    "None",
    "true",
)
# Quantities the apiserver refuses, and values that are no quantity at all (huge exponents and
# numbers of thousands of digits included: exact arithmetic on them would stall a worker).
BAD_QUANTITIES = (
    "abc",
    "-1",
    "1e999",
    "1e-999",
    "",
    " ",
    "1.5.5",
    "1Ki2",
    "0x10",
    "+-1",
    "1e",
    "e3",
    ".",
    "1 cpu",
    "100m" * 30,
    "9" * 400,
    "9" * 5000,
    "1e99999999",
    "1e-99999999",
    "\u0661\u0660\u0660m",
    "1E3",
    "-0",
    0,
    -3,
    1.5,
    1e308,
    2**70,
    True,
    None,
    [],
    ["1"],
    {"cpu": "1"},
)
HUGE_LENGTHS = (1_000, 65_536, 1_048_576)

# Raw JSON text spliced in where a sentinel string stands: "\ue000name:arg\ue000".
_SENTINEL = re.compile(r'"(?:\ue000|\\ue000)([a-z-]+):(\d*)(?:\ue000|\\ue000)"')
RAW_TOKENS = {
    "deep-list": lambda n: "[" * n + "]" * n,
    "deep-object": lambda n: '{"a":' * n + "1" + "}" * n,
    "big-int": lambda n: "1" + "0" * n,
    "exponent": lambda n: f"1e{n}",
    "nan": lambda n: "NaN",
    "infinity": lambda n: "-Infinity" if n % 2 else "Infinity",
    "duplicate-key": lambda n: '{"name": "a", "name": ' + str(n) + "}",
}


def raw(name: str, arg: int = 0) -> str:
    return f"\ue000{name}:{arg}\ue000"


# Built once: building a strategy (a recursive one especially) costs more than drawing from it.
ODD_TEXT = st.sampled_from(ODD_STRINGS) | st.text(max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | ODD_TEXT
)
# A wrong value for any node: any JSON type, nested a little, huge, deep, or not JSON at all.
VALUES = st.one_of(
    st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
        max_leaves=6,
    ),
    st.just(None),
    st.builds(dict),  # fresh each time: a shared {} that a later mutation fills would leak between cases
    st.builds(list),
    st.sampled_from(HUGE_LENGTHS).map(lambda n: "x" * n),
    st.builds(
        raw,
        st.sampled_from(sorted(RAW_TOKENS)),
        # Around the limits: jsoncodec.MAX_DEPTH (254), Python's recursion (1,000), orjson's (1,024).
        st.sampled_from([1, 10, 100, 253, 255, 600, 990, 1010, 1023, 1025, 2000, 5000]),
    ),
)
PICKS = st.randoms(use_true_random=False)


def paths(node: Any) -> Iterator[tuple[str | int, ...]]:
    """Every path below `node` (iteratively: fixtures are shallow, but mutated ones need not be)."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), node)]
    while stack:
        path, value = stack.pop()
        children = (
            value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        )
        for key, child in children:
            yield (*path, key)
            stack.append(((*path, key), child))


def get(root: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        root = root[part]
    return root


def _parent(root: Any, path: tuple[str | int, ...]) -> Any:
    return get(root, path[:-1])


def pod_as(review: dict[str, Any], kind: str) -> None:
    """Recast a Pod review as `kind`: the pod's metadata and spec become the kind's pod template."""
    request = review["request"]
    pod = request.get("object") or {}
    request["kind"] = {"group": "apps", "version": "v1", "kind": kind}
    template_path = TEMPLATE_PATHS.get(kind, ("spec", "template"))
    if template_path:
        template = {"metadata": pod.get("metadata", {}), "spec": pod.get("spec", {})}
        obj: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": dict(pod.get("metadata", {})),
        }
        node = obj
        for part in template_path[:-1]:
            node = node.setdefault(part, {})
        node[template_path[-1]] = template
        request["object"] = obj


@st.composite
def reviews(draw: st.DrawFn) -> dict[str, Any]:
    """A captured review, recast and mutated: 1 to 4 nodes replaced, dropped or duplicated."""
    review: dict[str, Any] = json.loads(draw(st.sampled_from(REVIEWS)))
    request = review["request"]
    if draw(st.integers(0, 9)) == 0:
        review["apiVersion"] = draw(st.sampled_from(API_VERSIONS))
    if request["kind"]["kind"] == "Pod" and draw(st.booleans()):
        pod_as(review, draw(st.sampled_from(KINDS)))
    if draw(st.booleans()):
        operation = request["operation"] = draw(st.sampled_from(OPERATIONS))
        if operation in ("UPDATE", "DELETE") and draw(st.booleans()):
            request["oldObject"] = json.loads(json.dumps(request.get("object")))
        if operation in ("DELETE", "CONNECT") and draw(st.booleans()):
            request["object"] = draw(
                st.sampled_from([None, {"kind": "PodExecOptions"}, {}]).map(copy.deepcopy)
            )
        if draw(st.booleans()):
            request.pop("oldObject", None)
    if draw(st.integers(0, 3)) == 0:
        request["subResource"] = draw(st.sampled_from(SUBRESOURCES))
    for _ in range(draw(st.integers(0, 2))):
        _pod_damage(draw, request)
    for _ in range(draw(st.integers(0, 4))):
        _mutate(draw, review)
    if isinstance(request, dict) and request.get("operation") == "UPDATE" and draw(st.booleans()):
        # The same damage in both: an UPDATE compares old and new templates, as deep as they go.
        request["oldObject"] = json.loads(json.dumps(request.get("object")))
    return review


def _containers(request: dict[str, Any]) -> list[Any]:
    found = []
    for path in paths(request.get("object")):
        if path and path[-1] in ("containers", "initContainers"):
            value = get(request["object"], path)
            if isinstance(value, list):
                found.append(value)
    return found


def _pod_damage(draw: st.DrawFn, request: dict[str, Any]) -> None:
    """What a hand-written client gets wrong: quantities, duplicates, env, ports, labels."""
    lists = _containers(request)
    if not lists:
        return
    containers = draw(st.sampled_from(lists))
    if not containers or not isinstance(containers[0], dict):
        return
    container = containers[draw(st.integers(0, len(containers) - 1))]
    if not isinstance(container, dict):
        return
    what = draw(st.sampled_from(["quantity", "duplicate", "same-name", "env", "ports", "labels", "deep"]))
    if what == "quantity":
        resources = container.setdefault("resources", {})
        if isinstance(resources, dict):
            kind = draw(st.sampled_from(["requests", "limits"]))
            resources.setdefault(kind, {})
            if isinstance(resources[kind], dict):
                name = draw(st.sampled_from(["cpu", "memory", "ephemeral-storage", "nvidia.com/gpu"]))
                resources[kind][name] = draw(st.sampled_from(BAD_QUANTITIES).map(copy.deepcopy))
    elif what == "duplicate":
        containers.append(json.loads(json.dumps(container)))
    elif what == "same-name":
        for other in containers:
            if isinstance(other, dict):
                other["name"] = container.get("name")
    elif what == "deep":
        # Inside the pod, as deep as orjson reads: past what podgate copies, past Python's recursion.
        container["args"] = raw(
            draw(st.sampled_from(["deep-list", "deep-object"])), draw(st.sampled_from([1012, 1014]))
        )
    elif what == "env":
        container["env"] = [*(container.get("env") or []), draw(VALUES)]
    elif what == "ports":
        port = draw(st.sampled_from(["8080", "http", -1, 0, 70000, 80.5, None]))
        container["ports"] = [{"name": draw(ODD_TEXT), "containerPort": port, "protocol": "TCP"}]
    else:
        obj = request.get("object")
        if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
            labels = obj["metadata"].setdefault("labels", {})
            if isinstance(labels, dict):
                labels[draw(ODD_TEXT)] = draw(VALUES)


def _mutate(draw: st.DrawFn, review: dict[str, Any]) -> None:
    every = list(paths(review))
    if not every:
        return  # every member already dropped
    # Mostly inside the object, where the engine looks; a uniform pick (hypothesis favours index 0).
    pick = draw(PICKS)
    inside = [p for p in every if p[:2] == ("request", "object") and len(p) > 2]
    path = pick.choice(inside if inside and pick.random() < 0.8 else every)
    parent = _parent(review, path)
    action = draw(st.sampled_from(["replace", "replace", "null", "drop", "duplicate"]))
    if action == "drop":
        del parent[path[-1]]
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(json.loads(json.dumps(parent[path[-1]])))
    else:
        parent[path[-1]] = None if action == "null" else draw(VALUES)


def encode(review: Any, *, ascii_only: bool = True) -> bytes:
    """The review as JSON text, with the raw tokens spliced in; lone surrogates stay escaped or raw."""
    text = json.dumps(review, ensure_ascii=ascii_only, allow_nan=True)
    text = _SENTINEL.sub(lambda m: RAW_TOKENS[m[1]](int(m[2] or 0)), text)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """What arrives on the wire: mostly mutated reviews, some with their bytes broken."""
    body = encode(draw(reviews()), ascii_only=draw(st.booleans()))
    damage = draw(
        st.sampled_from(["none"] * 12 + ["truncate", "flip", "insert", "bom", "replace", "surrogate"])
    )
    if damage == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif damage in ("flip", "insert"):
        at = draw(st.integers(0, len(body)))
        junk = draw(
            st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\\", b'"', b"}", b"\x80"])
        )
        body = body[:at] + junk + body[at + (1 if damage == "flip" else 0) :]
    elif damage == "surrogate":
        # A lone surrogate, escaped in JSON text: Python's json reads it, orjson (and Go) do not.
        body = body.replace(b'"name": "', b'"name": "\\ud800', 1)
    elif damage == "bom":
        body = b"\xef\xbb\xbf" + body
    elif damage == "replace":
        body = draw(
            st.sampled_from(
                [
                    b"",
                    b"null",
                    b"[]",
                    b"1",
                    b'"x"',
                    b"{",
                    b"{}",
                    b"[" * 2000,
                    b"[" * 1025 + b"]" * 1025,
                    b"NaN",
                ]
            )
        )
    return body
