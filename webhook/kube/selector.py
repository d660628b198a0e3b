"""Kubernetes label selectors (matchLabels and matchExpressions), parsed once, evaluated against labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            # As in Kubernetes: a missing key satisfies NotIn.
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels

    def __str__(self) -> str:
        if self.operator in ("Exists", "DoesNotExist"):
            return f"{'!' if self.operator == 'DoesNotExist' else ''}{self.key}"
        values = ",".join(sorted(self.values))
        return f"{self.key} {'in' if self.operator == 'In' else 'notin'} ({values})"


@dataclass(frozen=True)
class Selector:
    """All requirements AND-ed; an empty selector matches everything, as in Kubernetes."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements) or "<everything>"


def parse_selector(raw: Mapping[str, object]) -> Selector:
    """Build a Selector from its (already schema-checked) YAML form; raises ValueError on semantic errors."""
    requirements: list[Requirement] = []
    match_labels = raw.get("matchLabels") or {}
    assert isinstance(match_labels, Mapping)
    for key, value in sorted(match_labels.items()):
        requirements.append(Requirement(str(key), "In", frozenset([str(value)])))
    expressions = raw.get("matchExpressions") or []
    assert isinstance(expressions, list)
    for index, expression in enumerate(expressions):
        operator = expression["operator"]
        values = frozenset(str(v) for v in expression.get("values") or [])
        if operator in ("In", "NotIn") and not values:
            raise ValueError(f"matchExpressions[{index}].values: must be non-empty for operator {operator}")
        if operator in ("Exists", "DoesNotExist") and values:
            raise ValueError(f"matchExpressions[{index}].values: must be empty for operator {operator}")
        requirements.append(Requirement(str(expression["key"]), operator, values))
    return Selector(tuple(requirements))


SELECTOR_SCHEMA: dict[str, object] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string", "minLength": 1},
                    "operator": {"enum": list(OPERATORS)},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
