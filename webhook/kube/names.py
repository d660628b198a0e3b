"""Kubernetes' naming rules (label keys and values, DNS names), in one place, with messages that say why."""

from __future__ import annotations

import re

NAME_MAX = 63
PREFIX_MAX = 253
# A label name or value: alphanumeric at both ends, '-', '_' and '.' inside (validation.IsQualifiedName).
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kubernetes' rule for env var names (validation.IsEnvVarName).
_ENV_VAR_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_NAME_RULE = "characters of A-Z, a-z, 0-9, '-', '_' or '.', starting and ending with a letter or digit"


def qualified_name_problem(key: str) -> str | None:
    """Why `key` is not a valid label, annotation or taint key; None when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "prefix before '/' must not be empty"
    if slash and (len(prefix) > PREFIX_MAX or not _DNS_SUBDOMAIN.match(prefix)):
        return f"prefix {prefix!r} must be a lowercase DNS subdomain of at most {PREFIX_MAX} characters"
    if not name or len(name) > NAME_MAX or not _NAME.match(name):
        return f"name {name!r} must be 1-{NAME_MAX} {_NAME_RULE}"
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a valid label (or taint) value; None when it is. The empty value is valid."""
    if value and (len(value) > NAME_MAX or not _NAME.match(value)):
        return f"must be at most {NAME_MAX} {_NAME_RULE}"
    return None


def dns_label_problem(name: str) -> str | None:
    """Why `name` is not a DNS-1123 label (namespace and most object names); None when it is."""
    if len(name) > NAME_MAX or not _DNS_LABEL.match(name):
        return (
            f"must be at most {NAME_MAX} lower-case letters, digits or '-', starting and ending alphanumeric"
        )
    return None


def env_var_name_problem(name: str) -> str | None:
    """Why `name` is not a valid environment variable name; None when it is."""
    if not _ENV_VAR_NAME.match(name):
        return (
            "must be a valid environment variable name: letters, digits, '_', '-' and '.', "
            f"not starting with a digit (got {name!r})"
        )
    return None
