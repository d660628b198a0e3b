"""Cluster facts for `podgate apply` and `podgate test`: namespace labels and LimitRanges from the input's
Namespace and LimitRange objects, `--namespace-labels`, or a cluster (`--kubeconfig`); docs/cluster.md.

Later sources win: the cluster, then the objects in the input (about to be applied), then the flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from webhook.cli.manifests import InputError, Item, Options, read_source
from webhook.errors import SettingsError
from webhook.kube.cluster import NAME_LABEL, ClusterFacts, facts_from_objects
from webhook.kube.limitrange import apply_defaults
from webhook.kube.names import dns_label_problem, label_value_problem, qualified_name_problem

HINT = "add its Namespace to the input, or give --namespace-labels or --kubeconfig (docs/cluster.md)"
CLUSTER_HINT = "it is not in the cluster; add its Namespace to the input, or give --namespace-labels"
FACT_KINDS = ("Namespace", "LimitRange")


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace-labels",
        action="append",
        default=[],
        metavar="NS=KEY=VALUE,...",
        help="the labels of namespace NS, for policies with a namespaceSelector (NS= for none); may repeat",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="read namespace labels and LimitRanges from this cluster (it lists namespaces and limitranges)",
    )
    parser.add_argument("--context", metavar="NAME", help="the kubeconfig context (default: its current one)")


def parse_namespace_labels(values: Sequence[str]) -> dict[str, dict[str, str]]:
    """`team-a=env=test,tier=web` -> {"team-a": {"env": "test", "tier": "web", <name label>}}; InputError
    names a bad one."""
    found: dict[str, dict[str, str]] = {}
    for value in values:
        namespace, sep, rest = value.partition("=")
        if not sep or not namespace:
            raise InputError(
                f"--namespace-labels {value!r}: must be NAMESPACE=KEY=VALUE,... (NAMESPACE= for none)"
            )
        problem = dns_label_problem(namespace)
        if problem:
            raise InputError(f"--namespace-labels {value!r}: namespace {namespace!r} {problem}")
        labels: dict[str, str] = {NAME_LABEL: namespace}
        for pair in filter(None, rest.split(",")):
            key, sep, label = pair.partition("=")
            problem = "must be KEY=VALUE" if not sep else qualified_name_problem(key)
            if not problem and label_value_problem(label):
                problem = f"value {label!r} {label_value_problem(label)}"
            if problem:
                raise InputError(f"--namespace-labels {value!r}: {pair!r}: {problem}")
            labels[key] = label
        found[namespace] = labels
    return found


def cluster_objects(kubeconfig: Path, context: str | None) -> list[dict[str, Any]]:
    """Every Namespace and LimitRange of the cluster, as objects."""
    from lightkube.resources.core_v1 import LimitRange, Namespace

    from webhook.server.cluster import PAGE, connect, load_config

    try:
        client = connect(load_config(kubeconfig, context))
        namespaces = [n.to_dict() for n in client.list(Namespace, chunk_size=PAGE)]
        ranges = [r.to_dict() for r in client.list(LimitRange, namespace="*", chunk_size=PAGE)]
    except SettingsError as error:
        raise InputError(str(error)) from None
    except Exception as error:  # unreachable, refused, forbidden: say which, never a traceback
        raise InputError(
            f"--kubeconfig {kubeconfig}: cannot list namespaces and limitranges: {error}"
        ) from None
    return [*namespaces, *ranges]


def build_facts(args: argparse.Namespace, objects: Iterable[Mapping[str, Any]]) -> ClusterFacts:
    """The facts from the cluster (if --kubeconfig), the input's objects, then --namespace-labels."""
    flagged = parse_namespace_labels(args.namespace_labels)
    from_cluster = cluster_objects(Path(args.kubeconfig), args.context) if args.kubeconfig else []
    facts = facts_from_objects([*from_cluster, *objects], limit_ranges_known=bool(args.kubeconfig) or None)
    labels = {**facts.namespace_labels, **{ns: MappingProxyType(found) for ns, found in flagged.items()}}
    hint = CLUSTER_HINT if args.kubeconfig else HINT
    return ClusterFacts(MappingProxyType(labels), facts.limit_ranges, facts.limit_ranges_known, hint)


def case_facts(base: ClusterFacts, items: Iterable[Item]) -> ClusterFacts:
    """`base` plus the Namespace and LimitRange objects among a test case's inputs."""
    objects = [item.request.get("object") or {} for item in items if not item.from_review]
    return facts_from_objects(objects, base=base)


def is_fact(item: Item) -> bool:
    """A Namespace or LimitRange: what the other objects are judged with, not judged itself."""
    return (item.request.get("kind") or {}).get("kind") in FACT_KINDS and not item.from_review


class ManifestReader:
    """Every source read up front, so a Namespace anywhere in the input gives its labels to every object."""

    def __init__(self, sources: Sequence[str], options: Options, args: argparse.Namespace) -> None:
        self._read: dict[str, list[Item] | InputError] = {}
        for source in sources:
            try:
                self._read[source] = read_source(source, options)
            except InputError as error:
                self._read[source] = error
        objects = [
            item.request.get("object") or {}
            for found in self._read.values()
            if isinstance(found, list)
            for item in found
            if not item.from_review
        ]
        self.facts = build_facts(args, objects)

    def items(self, source: str) -> list[Item]:
        found = self._read[source]
        if isinstance(found, InputError):
            raise found
        return found


def with_limit_range_defaults(request: Mapping[str, Any], facts: ClusterFacts) -> Mapping[str, Any]:
    """The request of a Pod manifest as the apiserver sends it: after the LimitRanger plugin's defaults."""
    obj = request.get("object")
    kind = (request.get("kind") or {}).get("kind")
    ranges = facts.limit_ranges_of(str(request.get("namespace", "")))
    if kind != "Pod" or not ranges or not isinstance(obj, dict):
        return request
    apply_defaults(obj, ranges)
    return request
