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


def read_documents(text: str, file: str) -> tuple[list[Document], list[PolicyIssue]]:
    """Every non-empty document of a YAML stream; syntax errors and duplicate keys as issues."""
    documents: list[Document] = []
    issues: list[PolicyIssue] = []
    loader = yaml.SafeLoader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[Path, int] = {(): node.start_mark.line + 1}
            issues.extend(_walk(node, (), lines, file))
            data = loader.construct_document(node)
            if data is not None:
                documents.append(Document(data, lines, index))
            index += 1
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 0
        issues.append(PolicyIssue(file, line, "", f"invalid YAML: {error.problem or error}"))
    except yaml.YAMLError as error:
        issues.append(PolicyIssue(file, 0, "", f"invalid YAML: {error}"))
    finally:
        loader.dispose()
    return documents, issues


def _walk(node: yaml.Node, path: Path, lines: dict[Path, int], file: str) -> Iterator[PolicyIssue]:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
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
