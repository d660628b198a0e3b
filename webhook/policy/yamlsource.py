"""YAML documents with the line of every field, so that any error can point into the file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from webhook.errors import PolicyIssue

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Document:
    data: Any
    lines: dict[Path, int] = field(repr=False)
    index: int = 0  # position in its file, for documents without a name yet


# Bounds far above any policy file, so that no file can make a load run away: nesting (PyYAML's
# composer recurses) and values per file counted with aliases expanded (a "billion laughs"
# document is a few lines of anchors that expand to 10**9 strings).
MAX_DEPTH = 64
MAX_NODES = 100_000
# Explicit tags make PyYAML build what JSON cannot hold (timestamps, sets, binary) or crash outright
# (`!!int abc`); a policy never needs one beyond quoting with !!str.
_PLAIN_TAGS = frozenset({"!", "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"})
_STRING_KEY = "tag:yaml.org,2002:str"
_KEY_MESSAGE = "keys must be strings: quote this one"


def read_documents(text: str, file: str) -> tuple[list[Document], list[PolicyIssue]]:
    """Every non-empty document of a YAML stream; syntax errors and duplicate keys as issues."""
    refused = _screen(text, file)
    if refused is not None:
        return [], [refused]
    documents: list[Document] = []
    issues: list[PolicyIssue] = []
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[Path, int] = {(): node.start_mark.line + 1}
            problems = list(_walk(node, (), lines, file))
            issues.extend(problems)
            # A document with keys that are not strings is not JSON: neither the schema nor a rule sees it.
            if not any(problem.message == _KEY_MESSAGE for problem in problems):
                data = loader.construct_document(node)
                if data is not None:
                    documents.append(Document(data, lines, index))
            index += 1
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        issues.append(
            PolicyIssue(file, line, "", f"invalid YAML: {_one_line(error.problem or error.context)}")
        )
    except yaml.reader.ReaderError as error:
        # Characters YAML forbids (NUL, most control characters); `position` indexes the text.
        line = text.count("\n", 0, error.position) + 1
        message = f"invalid YAML: character U+{error.character:04X} is not allowed"
        issues.append(PolicyIssue(file, line, "", message))
    except yaml.YAMLError as error:
        issues.append(PolicyIssue(file, 1, "", f"invalid YAML: {_one_line(error)}"))
    finally:
        if loader is not None:
            loader.dispose()
    return documents, issues


def _screen(text: str, file: str) -> PolicyIssue | None:
    """What would make loading `text` run away or crash: too deep, too many nodes, an alias to itself,
    an explicit tag. Only the event stream is read: PyYAML parses it without recursing or expanding
    aliases. Syntax errors are left to the load, which reports them.
    """
    sizes: dict[str, int] = {}  # anchor -> nodes it stands for, aliases inside it expanded
    open_anchors: list[tuple[str | None, int]] = []  # per open collection: its anchor, `nodes` at its start
    nodes = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = event.start_mark.line + 1 if event.start_mark else 1
            if isinstance(event, yaml.DocumentStartEvent):
                sizes.clear()  # anchors belong to their document; the node count to the whole file
            elif isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for anchor, _ in open_anchors):
                    return PolicyIssue(file, line, "", f"alias *{event.anchor} refers to the node it is in")
                nodes += sizes.get(str(event.anchor), 1)
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, start = open_anchors.pop()
                if anchor is not None:
                    sizes[anchor] = nodes - start
            elif isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
                if event.tag is not None and event.tag not in _PLAIN_TAGS:
                    return PolicyIssue(file, line, "", f"tag {event.tag} is not allowed: write a plain value")
                nodes += 1
                if isinstance(event, yaml.CollectionStartEvent):
                    open_anchors.append((event.anchor, nodes - 1))
                    if len(open_anchors) > MAX_DEPTH:
                        return PolicyIssue(file, line, "", f"nested deeper than {MAX_DEPTH} levels")
                elif event.anchor is not None:
                    sizes[event.anchor] = 1
            if nodes > MAX_NODES:
                return PolicyIssue(
                    file,
                    line,
                    "",
                    f"the file has over {MAX_NODES:,} values, counting what aliases repeat",
                )
    except yaml.YAMLError:
        return None
    return None


def _one_line(text: object) -> str:
    return " ".join(str(text or "syntax error").split())


def _walk(node: yaml.Node, path: Path, lines: dict[Path, int], file: str) -> Iterator[PolicyIssue]:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == _STRING_KEY):
                if key_node.tag == "tag:yaml.org,2002:merge":
                    yield from _walk(value_node, path, lines, file)
                    continue
                line = key_node.start_mark.line + 1
                yield PolicyIssue(file, line, _dotted(path), _KEY_MESSAGE)
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                # PyYAML keeps the last value silently; a repeated key is almost always a mistake.
                line = key_node.start_mark.line + 1
                yield PolicyIssue(file, line, _dotted(child), "duplicate key")
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            yield from _walk(value_node, child, lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            yield from _walk(item, child, lines, file)


def _dotted(path: Path) -> str:
    from webhook.rules import format_path

    return format_path(path)
