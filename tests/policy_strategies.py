"""Hypothesis strategies for bad policy files: the shipped policies/*.yaml, broken as text, as YAML, as bytes.

Text damage: truncation, flipped characters, tabs, repeated lines (duplicate keys), tags such as
!!python/object, anchors and aliases (billion laughs, a recursive alias), extra and empty documents,
deep nesting and huge documents. Tree damage: any node replaced by a wrong type, null, an odd string.
Byte damage: invalid UTF-8, other encodings. Used by tests/test_fuzz_policies.py.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import strategies as st

from tests.serving_support import PINNED_POLICIES
from tests.strategies import ODD_STRINGS, PICKS, get, paths

POLICIES = Path(__file__).resolve().parent.parent / "policies"
SOURCES: tuple[tuple[str, str], ...] = (
    *((f.name, f.read_text()) for f in sorted(POLICIES.glob("*.yaml"))),
    ("pinned.yaml", PINNED_POLICIES),
    # The ready policies of policies/library/: every rule type and parameter the shipped ones leave out.
    *((f"library-{f.name}", f.read_text()) for f in sorted(POLICIES.glob("library/*.yaml"))),
)
# A YAML "billion laughs": nine levels of ten aliases each; expanded, 10**9 strings.
ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)
TAGS = (
    "!!python/object:os.system",
    "!!python/object/apply:os.system ['true']",
    "!!python/name:os.system",
    "!!binary",
    "!!timestamp",
    "!!set",
    "!!omap",
    "!!float",
    "!!int",
    "!!null",
    "!custom",
    "!<tag:example.com,2000:x>",
)
CHARACTERS = (
    "\t",
    ":",
    "-",
    "[",
    "{",
    "}",
    "&",
    "*",
    "!",
    "%",
    "@",
    "`",
    "|",
    ">",
    "'",
    '"',
    "#",
    "?",
    ",",
    "\x00",
    "\x07",
    "\x85",
    "\ufeff",
    "\u2028",
    "\r",
    "\n",
    " ",
)
SNIPPETS = (
    ALIAS_BOMB,
    "r: &r [*r]\n",
    "m: &m {self: *m}\n",
    "x: *undefined\n",
    "<<: {kind: Policy}\n",
    "<<: *nothing\n",
    "? [a, b]\n: c\n",
    "? {a: 1}\n: c\n",
    "1: one\ntrue: yes\nnull: nothing\n",
    "on: yes\n",
    "deep: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep: " + "{a: " * 300 + "1" + "}" * 300 + "\n",
    "".join("  " * i + f"k{i}:\n" for i in range(400)) + "  " * 400 + "leaf\n",
    "huge: [" + ", ".join(["1"] * 100_000) + "]\n",
    "long: " + "x" * 1_000_000 + "\n",
    "date: 2024-01-01\n",
    "%YAML 1.1\n---\n",
    "%TAG ! tag:example.com,2000:\n---\n",
    "--- !!str\n",
    "...\n",
    "---\n",
    "--- \n---\n",
    "- just\n- a\n- list\n",
    "just a string\n",
    "\ufeff",
    "'unterminated\n",
    'key: "\\x"\n',
)


@st.composite
def texts(draw: st.DrawFn) -> tuple[str, str]:
    """(file name, text): a shipped policy file with 1 to 3 kinds of damage."""
    name, text = draw(st.sampled_from(SOURCES))
    # Text damage mostly breaks the YAML; tree damage alone reaches the schema and the rules.
    kinds = draw(st.sampled_from([[_text_damage], [_tree_damage], [_text_damage, _tree_damage]]))
    for _ in range(draw(st.integers(1, 3))):
        text = draw(st.sampled_from(kinds))(draw, text)
    return name, text


def _text_damage(draw: st.DrawFn, text: str) -> str:
    pick = draw(PICKS)
    lines = text.splitlines(keepends=True) or [""]
    at = pick.randrange(len(lines))
    what = draw(st.sampled_from(["truncate", "flip", "tab", "repeat", "tag", "snippet", "split", "indent"]))
    if what == "truncate":
        return text[: pick.randrange(len(text) + 1)]
    if what == "flip":
        position = pick.randrange(len(text) + 1)
        return text[:position] + draw(st.sampled_from(CHARACTERS)) + text[position + 1 :]
    if what == "tab":
        lines[at] = "\t" + lines[at].lstrip(" ")
    elif what == "repeat":
        lines.insert(at, lines[at])
    elif what == "tag" and ": " in lines[at]:
        key, _, value = lines[at].partition(": ")
        lines[at] = f"{key}: {draw(st.sampled_from(TAGS))} {value}"
    elif what == "snippet":
        snippet = draw(st.sampled_from(SNIPPETS))
        indent = len(lines[at]) - len(lines[at].lstrip(" "))
        lines.insert(at, "".join(" " * indent + line for line in snippet.splitlines(keepends=True)))
    elif what == "split":
        lines.insert(at, draw(st.sampled_from(["---\n", "--- \n---\n", "...\n", "---\n...\n"])))
    else:
        lines[at] = " " * pick.randrange(1, 9) + lines[at]
    return "".join(lines)


EXTREME_INTS = st.sampled_from([0, -1, 2**31, 2**63, 2**70, 10**30]) | st.integers()
EXTREME_STRINGS = st.sampled_from(["", " ", "x" * 100_000, "9" * 40, "1e400", "-1", "*", "a/b/c", "A" * 64])
WRONG_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([s for s in ODD_STRINGS if "\x00" not in s])
    | st.text(max_size=10)
    | st.dates(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
)


def _tree_damage(draw: st.DrawFn, text: str) -> str:
    """Parse, replace or drop one node at any depth, dump again: wrong types where the schema looks."""
    if "&" in text or len(text) > 100_000:
        return text  # aliases would expand as the paths are listed; huge files are text damage enough
    try:
        documents = list(yaml.safe_load_all(text))
    except Exception:  # whatever breaks PyYAML here, the loader meets as text damage
        return text
    every = list(paths(documents))
    if not every:
        return text
    pick = draw(PICKS)
    # Half the time a scalar: that is where a value the right type but the wrong size hides.
    scalars = [p for p in every if isinstance(get(documents, p), int | str)]
    path = pick.choice(scalars if scalars and pick.random() < 0.5 else every)
    parent = get(documents, path[:-1])
    old = parent[path[-1]]
    if draw(st.integers(0, 4)) == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(old, int | str) and not isinstance(old, bool) and draw(st.booleans()):
        # The right type with an extreme value: what a schema's "type" alone lets through.
        parent[path[-1]] = draw(EXTREME_INTS if isinstance(old, int) else EXTREME_STRINGS)
    else:
        parent[path[-1]] = draw(WRONG_VALUES)
    try:
        return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=draw(st.booleans()))
    except Exception:  # not every tree can be written back (keys that are lists)
        return text


@st.composite
def raw_files(draw: st.DrawFn) -> bytes:
    """A policy file's bytes: mostly damaged text, some with invalid UTF-8 or in another encoding."""
    _, text = draw(texts())
    data = text.encode("utf-8", "surrogatepass")
    what = draw(st.sampled_from(["utf-8", "utf-8", "flip", "invalid", "utf-16", "latin-1", "bom"]))
    if what == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    elif what == "invalid":
        at = draw(st.integers(0, len(data)))
        data = (
            data[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80"]))
            + data[at:]
        )
    elif what == "utf-16":
        data = text.encode("utf-16", "surrogatepass")
    elif what == "latin-1":
        data = text.replace("a", "\u00e4").encode("latin-1", "replace")
    elif what == "bom":
        data = b"\xef\xbb\xbf" + data
    return data
