"""policies/*.yaml -> PolicySet: schema check, file:line errors, every error of a load reported at once."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from webhook.errors import PolicyError, PolicyIssue
from webhook.policy.consistency import conflicts
from webhook.policy.model import BUILTIN_POLICY, Action, Match, Policy, PolicySet, Rule
from webhook.policy.optout import DEFAULT_ANNOTATION, parse_opt_out
from webhook.policy.schema import policy_schema
from webhook.policy.scope import never_applies, parse_exclude, parse_match
from webhook.policy.yamlsource import Document, read_documents
from webhook.rules import Locator, Mutator, RuleDocument, RuleParseError, Validator
from webhook.rules.mutators import MUTATORS
from webhook.rules.validators import VALIDATORS

POLICY_SUFFIXES = (".yaml", ".yml")
# Test files of `podgate test` sit beside the policies but are not policies.
TEST_SUFFIXES = ("-test.yaml", "-test.yml")


# With no policies podgate admits every pod unchanged: an emptied file or directory must not pass for a
# policy change. `serve --allow-empty` (PODGATE_ALLOW_EMPTY) is how an operator says it is meant.
NO_POLICY_FILES = "no policy files (*.yaml, *.yml): with no policies podgate enforces nothing"
NO_DOCUMENT = "holds no policy document: delete the file to remove its policies"


def load_policies(path: str | Path, *, allow_empty: bool = False) -> PolicySet:
    """Load a policy file or a directory of them (not recursive: ConfigMap mounts are flat).

    No policy at all, or a file without a document, is a PolicyError unless `allow_empty`.
    """
    sources = read_sources(path)
    if not sources and not allow_empty:
        raise PolicyError([PolicyIssue(str(path), 0, "", NO_POLICY_FILES)])
    return parse_sources(sources, allow_empty=allow_empty)


def read_sources(path: str | Path) -> list[tuple[str, str]]:
    root = Path(path)
    if root.is_dir():
        files = sorted(
            p
            for p in root.iterdir()
            # A mounted ConfigMap holds ..data and ..<timestamp> entries beside the real names.
            if p.name.endswith(POLICY_SUFFIXES)
            and not p.name.startswith(".")
            and not p.name.endswith(TEST_SUFFIXES)
        )
    elif root.is_file():
        files = [root]
    else:
        raise PolicyError([PolicyIssue(str(path), 0, "", "no such file or directory")])
    sources = []
    issues = []
    for file in files:
        try:
            data = file.read_bytes()
        except OSError as error:
            issues.append(PolicyIssue(str(file), 0, "", f"cannot read: {error}"))
            continue
        try:
            sources.append((str(file), data.decode("utf-8")))
        except UnicodeDecodeError as error:
            # Point at the byte, as for any other error: the line is all an editor needs to find it.
            line = data.count(b"\n", 0, error.start) + 1
            column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
            message = f"not UTF-8: byte 0x{data[error.start]:02x} at column {column} cannot be decoded"
            issues.append(PolicyIssue(str(file), line, "", message))
    if issues:
        raise PolicyError(issues)
    return sources


def parse_sources(sources: Iterable[tuple[str, str]], *, allow_empty: bool = False) -> PolicySet:
    """Build a PolicySet from (file name, text) pairs, or raise PolicyError with every issue found.

    A file with no document (emptied, or only comments) is an issue unless `allow_empty`.
    """
    sources = sorted(sources)
    issues: list[PolicyIssue] = []
    policies: dict[str, tuple[Policy, str]] = {}
    for file, text in sources:
        documents, yaml_issues = read_documents(text, file)
        issues.extend(yaml_issues)
        if not documents and not yaml_issues and not allow_empty:
            issues.append(PolicyIssue(file, 1, "", NO_DOCUMENT))
        for document in documents:
            policy = _parse_document(document, file, issues)
            if policy is None:
                continue
            if policy.name == BUILTIN_POLICY:
                message = f"{BUILTIN_POLICY!r} is reserved for podgate's own checks (docs/policies.md)"
                issues.append(PolicyIssue(file, document.lines[()], "metadata.name", message))
                continue
            if policy.name in policies:
                first = policies[policy.name][1]
                issues.append(
                    PolicyIssue(
                        file,
                        document.lines[()],
                        "metadata.name",
                        f"duplicate name {policy.name!r} (first at {first})",
                    )
                )
                continue
            policies[policy.name] = (policy, policy.source)
    issues.extend(conflicts(policy for policy, _ in policies.values()))
    if issues:
        raise PolicyError([_printable(issue) for issue in issues])
    digest = hashlib.sha256()
    for file, text in sources:
        digest.update(Path(file).name.encode() + b"\0" + text.encode() + b"\0")
    ordered = tuple(policies[name][0] for name in sorted(policies))
    return PolicySet(ordered, digest.hexdigest(), tuple(file for file, _ in sources))


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = policy_schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _parse_document(document: Document, file: str, issues: list[PolicyIssue]) -> Policy | None:
    at = Locator(file, document.lines)
    problems = [i for error in _validator().iter_errors(document.data) for i in schema_issues(error, at)]
    if problems:
        issues.extend(problems)
        return None
    data = document.data
    try:
        kind = data["kind"]
        if kind != "Policy":
            modules: tuple[Mutator | Validator, ...] = (*MUTATORS, *VALIDATORS)
            module = next(m for m in modules if getattr(m, "DOCUMENT_KIND", None) == kind)
            own_kind: RuleDocument = module.parse_document(data, at)  # type: ignore[union-attr]
            return _policy_of(own_kind, module.KEY, mutates=module in MUTATORS)
        return _parse_policy(data, at, issues)
    except RuleParseError as error:
        issues.append(error.issue)
        return None


def _policy_of(document: RuleDocument, key: str, mutates: bool) -> Policy:
    """The policy of one rule that a document of its own kind (a Preset) stands for."""
    at = document.at.child("allowOptOut")
    opt_out = parse_opt_out(document.allow_opt_out, at, document.opt_out_annotation)
    match = Match(
        kinds=document.kinds,
        operations=document.operations,
        namespaces=document.namespaces,
        selector=document.selector,
    )
    rule = Rule(document.rule, key, mutates, document.params, source=document.source)
    return Policy(
        document.name,
        (rule,),
        match,
        opt_out=opt_out,
        source=document.source,
        description=document.description,
    )


def _parse_policy(data: Mapping[str, Any], at: Locator, issues: list[PolicyIssue]) -> Policy | None:
    name = data["metadata"]["name"]
    spec = data["spec"]
    match = parse_match(spec.get("match") or {}, at.child("spec", "match"))
    exclude = parse_exclude(spec.get("exclude") or {}, at.child("spec", "exclude"))
    try:
        opt_out = parse_opt_out(spec.get("allowOptOut"), at.child("spec", "allowOptOut"), DEFAULT_ANNOTATION)
    except RuleParseError as error:
        issues.append(error.issue)
        return None
    rules: list[Rule] = []
    rule_names: set[str] = set()
    for index, raw in enumerate(spec["rules"]):
        rule_at = at.child("spec", "rules", index)
        try:
            rule = _parse_rule(raw, rule_at)
        except RuleParseError as error:
            issues.append(error.issue)
            continue
        if rule.name in rule_names:
            issues.append(rule_at.issue(f"duplicate rule name {rule.name!r} in policy {name!r}", "name"))
        rule_names.add(rule.name)
        rules.append(rule)
    policy = Policy(
        name=name,
        rules=tuple(rules),
        match=match,
        exclude=exclude,
        opt_out=opt_out,
        mutate_templates=bool(spec.get("mutateTemplates", False)),
        source=at.where(),
        description=str(spec.get("description", "")),
    )
    issues.extend(never_applies(policy, at.child("spec")))
    return policy


def _parse_rule(raw: Mapping[str, Any], at: Locator) -> Rule:
    mutators = {m.KEY: m for m in MUTATORS}
    validators = {v.KEY: v for v in VALIDATORS}
    keys = [k for k in raw if k in mutators or k in validators]
    if len(keys) != 1:
        known = ", ".join([*mutators, *validators])
        found = f"got {', '.join(keys)}" if keys else "got none"
        raise at.error(f"must have exactly one rule type ({known}); {found}")
    key = keys[0]
    if key in mutators:
        if "action" in raw:
            raise at.error("only validation rules take an action; mutations always apply", "action")
        params = mutators[key].parse(raw[key], at.child(key))
        return Rule(raw["name"], key, True, params, Action.ENFORCE, at.where(), at.child(key))
    params = validators[key].parse(raw[key], at.child(key))
    action = Action(raw.get("action", "enforce"))
    return Rule(raw["name"], key, False, params, action, at.where(), at.child(key))


def schema_issues(error: jsonschema.ValidationError, at: Locator) -> list[PolicyIssue]:
    path = tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, Mapping):
        # Typos ("requets") must name the misspelt key on its own line, with what was expected.
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = sorted(schema.get("properties", {}))
        expected = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        unknown = sorted(str(k) for k in set(instance) - set(allowed))
        return [at.issue(f"unknown field{expected}", *path, key) for key in unknown]
    return [_schema_issue(error, at)]


def _schema_issue(error: jsonschema.ValidationError, at: Locator) -> PolicyIssue:
    path = tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "required":
        return at.issue(error.message.replace("is a required property", "is required"), *path)
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        article = "an" if str(expected)[0] in "aeiou" else "a"
        return at.issue(f"must be {article} {expected} (got {_show(instance)})", *path)
    if error.validator in ("enum", "const"):
        allowed_values: Any = error.validator_value
        values = list(allowed_values) if error.validator == "enum" else [allowed_values]
        return at.issue(f"must be one of {', '.join(map(_show, values))} (got {_show(instance)})", *path)
    if error.validator == "pattern":
        return at.issue(f"must match {error.validator_value} (got {_show(instance)})", *path)
    return at.issue(error.message, *path)


def _printable(issue: PolicyIssue) -> PolicyIssue:
    """The issue on one line, whatever a key holds: a "\\r" in a key must not split `podgate check`."""
    if issue.path.isprintable() and issue.message.isprintable():
        return issue
    return dataclasses.replace(issue, path=_escape(issue.path), message=_escape(issue.message))


def _escape(text: str) -> str:
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
