"""What `podgate audit` found, and its three forms: a table (`-o wide`), JSON, and PolicyReports.

The PolicyReports are `wgpolicyk8s.io/v1alpha2`, one per namespace (kubernetes-sigs/wg-policy-prototypes,
policy-report/apis/wgpolicyk8s.io/v1alpha2): a result per violation (`fail` for enforce and audit rules,
as Kyverno reports an Audit-mode rule, `warn` for warn rules) and a `pass` per validation rule that judged
an object and found nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from webhook.cli.report import table
from webhook.engine.decision import Decision
from webhook.policy.model import Action

REPORT_API = "wgpolicyk8s.io/v1alpha2"
REPORT_NAME = "podgate"
SOURCE = "podgate"
RESULT_OF = {Action.ENFORCE: "fail", Action.AUDIT: "fail", Action.WARN: "warn"}


@dataclass(frozen=True)
class Finding:
    """One object the audit judged: where it is, and the engine's decision about it."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    decision: Decision

    @property
    def verdict(self) -> str:
        return self.decision.outcome

    def violations(self) -> list[dict[str, str]]:
        return [
            {"policy": v.policy, "rule": v.rule, "action": str(v.action), "message": v.message}
            for v in self.decision.violations
        ]


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    counts = Counter(f.verdict for f in findings)
    return {"objects": len(findings), **{v: counts.get(v, 0) for v in ("admitted", "warned", "denied")}}


def render_table(findings: Sequence[Finding], *, wide: bool) -> str:
    """One row per object that breaks a validation rule (any action), naming the policies it breaks;
    the rest are only counted. Wide adds how many changes podgate would make to it, and every message."""
    shown = [f for f in findings if f.decision.violations]
    headers = ["NAMESPACE", "KIND", "NAME", "VERDICT", "POLICIES"]
    if wide:
        headers += ["CHANGES", "MESSAGES"]
    rows = []
    for f in shown:
        broken = ",".join(sorted({v.policy for v in f.decision.violations}))
        row = [f.namespace, f.kind, f.name, f.verdict, broken]
        if wide:
            messages = [str(v) for v in f.decision.violations] + list(f.decision.warnings)
            row += [str(len(f.decision.changes)), " | ".join(messages)]
        rows.append(row)
    return table(headers, rows) if rows else "no violations"


def render_json(findings: Sequence[Finding]) -> str:
    document = {
        "summary": summary(findings),
        "objects": [
            {
                "apiVersion": f.api_version,
                "kind": f.kind,
                "namespace": f.namespace,
                "name": f.name,
                "uid": f.uid,
                "verdict": f.verdict,
                "violations": f.violations(),
                "warnings": list(f.decision.warnings),
                "changes": [
                    {"policy": c.policy, "rule": c.rule, "path": c.path, "message": c.message}
                    for c in f.decision.changes
                ],
            }
            for f in findings
        ],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def policy_reports(findings: Sequence[Finding], now: float) -> list[dict[str, Any]]:
    """One PolicyReport per namespace, in namespace order; `now` (Unix seconds) stamps every result."""
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        by_namespace.setdefault(f.namespace, []).extend(_results(f, int(now)))
    reports = []
    for namespace in sorted(by_namespace):
        results = by_namespace[namespace]
        counts = Counter(r["result"] for r in results)
        reports.append(
            {
                "apiVersion": REPORT_API,
                "kind": "PolicyReport",
                "metadata": {
                    "name": REPORT_NAME,
                    "namespace": namespace,
                    "labels": {"app.kubernetes.io/managed-by": "podgate"},
                },
                "summary": {k: counts.get(k, 0) for k in ("pass", "fail", "warn", "error", "skip")},
                "results": results,
            }
        )
    return reports


def render_policy_reports(findings: Sequence[Finding], now: float) -> str:
    return yaml.safe_dump_all(policy_reports(findings, now), sort_keys=False, default_flow_style=False)


def _results(f: Finding, seconds: int) -> list[dict[str, Any]]:
    subject = {"apiVersion": f.api_version, "kind": f.kind, "namespace": f.namespace, "name": f.name}
    if f.uid:
        subject["uid"] = f.uid
    results = []
    failed = set()
    for v in f.decision.violations:
        failed.add((v.policy, v.rule))
        results.append(_result(v.policy, v.rule, RESULT_OF[v.action], v.message, subject, seconds, v.action))
    for policy, rule in f.decision.checked:
        if (policy, rule) not in failed:
            results.append(_result(policy, rule, "pass", "", subject, seconds, None))
    return results


def _result(
    policy: str,
    rule: str,
    result: str,
    message: str,
    subject: Mapping[str, str],
    seconds: int,
    action: Action | None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "source": SOURCE,
        "policy": policy,
        "rule": rule,
        "result": result,
        "scored": True,
        "timestamp": {"seconds": seconds, "nanos": 0},
        "resources": [dict(subject)],
    }
    if message:
        entry["message"] = message
    if action is not None:
        entry["properties"] = {"action": str(action)}
    return entry
