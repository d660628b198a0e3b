"""Policy sets of a given size for the scaling benchmark: the shipped policies plus generated team policies.

A cluster with a thousand policies is mostly per-team policies: each one scoped to its team's
namespace or to pods carrying its team's label, with the ordinary rule types (resource defaults,
required requests, labels, tolerations). A pod from one team is judged against all of them but
matched by almost none, so this set measures what scale costs: matching every policy, not running
more rules. One generated policy in a hundred does match the benchmark pod (by its test label) and
runs a validation that passes, so the decision stays the same at every size.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import benchlib

# Policies per generated file: platform teams keep one file per team or area, not one huge file.
PER_FILE = 25
MATCHING_EVERY = 100

HEADER = "apiVersion: podgate.io/v1alpha1\nkind: Policy\n"

RULES = (
    """\
    - name: team-resources
      resources:
        defaults:
          cpu: {{request: 250m, limit: 500m}}
          memory: {{request: 512Mi, limit: 512Mi}}
        whenRequestExceedsLimit: raiseLimit
    - name: team-requests
      action: warn
      requireRequests:
        resources: [cpu, memory, ephemeral-storage]
""",
    """\
    - name: team-labels
      labels:
        defaults:
          app.kubernetes.io/part-of: {team}
    - name: team-labels-present
      action: enforce
      requireLabels:
        keys: [app.kubernetes.io/name, app.kubernetes.io/part-of]
        allowedValues:
          app.kubernetes.io/env: [test, staging, production]
""",
    """\
    - name: team-nodes
      tolerations:
        add:
          - {{key: dedicated, operator: Equal, value: {team}, effect: NoSchedule}}
          - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 60}}
    - name: team-requests
      action: audit
      requireRequests:
        resources: [cpu, memory]
""",
)

# Scoped away from the benchmark pod: by namespace (team-NNN) or by a team label it lacks.
BY_NAMESPACE = """\
  match:
    namespaces: ["{team}", "{team}-*"]
"""
BY_LABEL = """\
  match:
    selector:
      matchLabels:
        podgate.io/team: {team}
"""
# The odd one that applies: pods labelled as test, a rule the benchmark pod satisfies.
MATCHING = """\
  match:
    selector:
      matchLabels:
        app.kubernetes.io/env: test
  rules:
    - name: name-label-present
      action: audit
      requireLabels:
        keys: [app.kubernetes.io/name]
"""


def policy(index: int) -> str:
    team = f"team-{index:03d}"
    head = f"{HEADER}metadata:\n  name: {team}-defaults\nspec:\n  description: Defaults of {team}.\n"
    if index % MATCHING_EVERY == 0:
        return head + MATCHING
    scope = BY_NAMESPACE if index % 2 else BY_LABEL
    return head + scope.format(team=team) + "  rules:\n" + RULES[index % len(RULES)].format(team=team)


def shipped_count() -> int:
    """How many policies the shipped files hold (a Preset document counts as one)."""
    return sum(text.count("\napiVersion:") + text.startswith("apiVersion:") for text in _shipped_texts())


def _shipped_texts() -> list[str]:
    return [path.read_text() for path in _shipped_files()]


def _shipped_files() -> list[Path]:
    # The loader skips *-test.yaml and subdirectories: those hold the policies' own test cases.
    return sorted(p for p in benchlib.POLICIES.glob("*.yaml") if not p.name.endswith("-test.yaml"))


def write_policy_set(directory: Path, total: int) -> Path:
    """`directory` holding the shipped policies plus generated ones, `total` in all."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in _shipped_files():
        shutil.copy(path, directory / path.name)
    generated = [policy(index) for index in range(max(0, total - shipped_count()))]
    for start in range(0, len(generated), PER_FILE):
        chunk = generated[start : start + PER_FILE]
        (directory / f"teams-{start // PER_FILE:03d}.yaml").write_text("---\n".join(chunk))
    return directory


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1])
    write_policy_set(target, int(sys.argv[2]) if len(sys.argv) > 2 else 100)
    print(f"wrote {target}")
