"""Presets: injection into matching pods, all-or-nothing conflicts, annotations, order and load errors."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from tests.conftest import evaluate_twice, fixture_request, policy_text, with_labels
from webhook import Decision, PolicySet, evaluate
from webhook.errors import PolicyError
from webhook.rules.mutators.presets import Params

JVM = {"app.kubernetes.io/runtime": "jvm"}
ANNOTATION = "podpreset.admission.kubernetes.io/podpreset-jvm-tuning"
JAVA_TOOL_OPTIONS = {
    "name": "JAVA_TOOL_OPTIONS",
    "value": "-XX:MaxRAMPercentage=75.0 -XX:+ExitOnOutOfMemoryError",
}
PRESET = """\
apiVersion: podgate.io/v1alpha1
kind: Preset
metadata:
  name: jvm-tuning
spec:
  selector:
    matchLabels: {app.kubernetes.io/runtime: jvm}
  env:
    - name: JAVA_TOOL_OPTIONS
      value: "-XX:MaxRAMPercentage=75.0 -XX:+ExitOnOutOfMemoryError"
  volumes:
    - name: jvm-tmp
      emptyDir: {sizeLimit: 256Mi}
  volumeMounts:
    - name: jvm-tmp
      mountPath: /tmp
"""
SKIPPED = "jvm-tuning.inject: preset jvm-tuning not applied, the pod is admitted without it: "


def version_of(policies: PolicySet, name: str = "jvm-tuning") -> str:
    params: Params = next(rule.params for policy, rule in policies.rules_of("preset") if policy.name == name)
    return params.version


def containers(decision: Decision, field: str = "containers") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = decision.object["spec"].get(field) or []
    return found


def test_the_shipped_preset_applies_to_a_matching_pod(default_policies: PolicySet) -> None:
    decision = evaluate_twice(default_policies, with_labels(fixture_request("0011"), **JVM))
    annotations = decision.object["metadata"]["annotations"]
    assert annotations[ANNOTATION] == version_of(default_policies)
    assert (
        annotations["example.com/note"]
        == fixture_request("0011")["object"]["metadata"]["annotations"]["example.com/note"]
    )
    # The volume once for the pod; env and mount in each container, after the container's own.
    volumes = decision.object["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["shared", "kube-api-access-2sxwl", "jvm-tmp"]
    for container in containers(decision):
        assert container["env"][-1] == JAVA_TOOL_OPTIONS
        assert container["volumeMounts"][-1] == {"name": "jvm-tmp", "mountPath": "/tmp"}
    ops = {op["path"]: op for op in decision.patch}
    assert ops["/metadata/annotations/podpreset.admission.kubernetes.io~1podpreset-jvm-tuning"]["op"] == "add"
    assert ops["/spec/volumes/-"]["value"] == {"name": "jvm-tmp", "emptyDir": {"sizeLimit": "256Mi"}}


def test_explain_names_the_preset_for_each_change() -> None:
    policies = policy_text(PRESET)
    decision = evaluate(policies, with_labels(fixture_request("0001"), **JVM))
    assert [(c.policy, c.rule, c.path, c.message) for c in decision.changes] == [
        ("jvm-tuning", "inject", "/spec/volumes/1", "volume jvm-tmp added"),
        ("jvm-tuning", "inject", "/spec/containers/0/env/0", 'container "app": env JAVA_TOOL_OPTIONS added'),
        (
            "jvm-tuning",
            "inject",
            "/spec/containers/0/volumeMounts/1",
            'container "app": volume jvm-tmp mounted at /tmp',
        ),
        (
            "jvm-tuning",
            "inject",
            "/metadata/annotations/podpreset.admission.kubernetes.io~1podpreset-jvm-tuning",
            f"preset jvm-tuning version {version_of(policies)} applied",
        ),
    ]


def test_a_pod_not_selected_gets_nothing(default_policies: PolicySet) -> None:
    decision = evaluate(default_policies, fixture_request("0011"), explain=True)
    assert ANNOTATION not in decision.object["metadata"].get("annotations", {})
    assert (
        "jvm-tuning.inject: labels do not match selector app.kubernetes.io/runtime in (jvm)"
        in decision.skipped
    )


def test_the_version_is_a_content_hash_stable_across_reloads() -> None:
    first, second = version_of(policy_text(PRESET)), version_of(policy_text(PRESET, name="other.yaml"))
    assert first == second
    spec = {
        "selector": {"matchLabels": JVM},
        "env": [JAVA_TOOL_OPTIONS],
        "volumes": [{"name": "jvm-tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
        "volumeMounts": [{"name": "jvm-tmp", "mountPath": "/tmp"}],
    }
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
    assert first == hashlib.sha256(canonical).hexdigest()[:12]
    assert version_of(policy_text(PRESET.replace("256Mi", "512Mi"))) != first


def test_a_pod_carrying_the_same_version_gets_nothing_again() -> None:
    policies = policy_text(PRESET)
    request = with_labels(fixture_request("0001"), **JVM)
    request["object"]["metadata"]["annotations"] = {ANNOTATION: version_of(policies)}
    decision = evaluate(policies, request)
    assert decision.patch == ()
    assert decision.changes == ()


def test_a_pod_carrying_an_older_version_is_brought_up_to_date_without_duplicates() -> None:
    policies = policy_text(PRESET)
    first = evaluate(policies, with_labels(fixture_request("0001"), **JVM))
    request = with_labels(fixture_request("0001"), **JVM)
    request["object"] = copy.deepcopy(dict(first.object))
    request["object"]["metadata"]["annotations"][ANNOTATION] = "0ld0ld0ld0ld"
    decision = evaluate_twice(policies, request)
    assert decision.patch == (
        {
            "op": "replace",
            "path": "/metadata/annotations/" + ANNOTATION.replace("/", "~1"),
            "value": version_of(policies),
        },
    )


EXCLUDED = {"podpreset.admission.kubernetes.io/exclude": "true"}
OPT_OUT_FOR_TEAM_ALPHA = "  allowOptOut: {groups: [team-alpha]}\n"


def _excluded_request(user: str, groups: list[str]) -> dict[str, Any]:
    request = with_labels(fixture_request("0001"), **JVM)
    request["object"]["metadata"]["annotations"] = dict(EXCLUDED)
    request["userInfo"] = {"username": user, "groups": groups}
    return request


def test_the_exclude_annotation_opts_out_only_requesters_the_preset_names() -> None:
    policies = policy_text(PRESET.replace("spec:\n", "spec:\n" + OPT_OUT_FOR_TEAM_ALPHA, 1))
    decision = evaluate(policies, _excluded_request("ann", ["team-alpha", "system:authenticated"]))
    assert decision.patch == ()
    assert decision.warnings == ()

    # Anyone else's annotation is not an exemption: the preset applies, and the pod's author is told.
    decision = evaluate_twice(policies, _excluded_request("mallory", ["system:authenticated"]))
    assert containers(decision)[0]["env"] == [JAVA_TOOL_OPTIONS]
    assert decision.warnings == (
        "jvm-tuning: annotation podpreset.admission.kubernetes.io/exclude ignored: "
        "mallory may not opt out of this policy",
    )


def test_without_allow_opt_out_the_exclude_annotation_is_ignored() -> None:
    # Even a cluster admin's: no preset grants an opt-out it does not declare.
    decision = evaluate_twice(policy_text(PRESET), _excluded_request("admin", ["system:masters"]))
    assert containers(decision)[0]["env"] == [JAVA_TOOL_OPTIONS]


def test_who_may_opt_out_is_not_part_of_the_preset_version() -> None:
    allowing = policy_text(PRESET.replace("spec:\n", "spec:\n" + OPT_OUT_FOR_TEAM_ALPHA, 1))
    assert version_of(allowing) == version_of(policy_text(PRESET))


def test_init_containers_only_when_asked() -> None:
    request = with_labels(fixture_request("0009"), **JVM)
    decision = evaluate_twice(policy_text(PRESET), request)
    assert "env" not in containers(decision, "initContainers")[0]
    assert containers(decision)[0]["env"] == [JAVA_TOOL_OPTIONS]

    with_init = PRESET.replace("  env:\n", "  initContainers: true\n  env:\n")
    decision = evaluate_twice(policy_text(with_init), request)
    (init,) = containers(decision, "initContainers")
    assert init["env"] == [JAVA_TOOL_OPTIONS]
    assert init["volumeMounts"][-1] == {"name": "jvm-tmp", "mountPath": "/tmp"}
    assert [v["name"] for v in decision.object["spec"]["volumes"]].count("jvm-tmp") == 1


def test_identical_items_already_present_are_neither_duplicated_nor_conflicts() -> None:
    request = with_labels(fixture_request("0001"), **JVM)
    spec = request["object"]["spec"]
    spec["containers"][0]["env"] = [dict(JAVA_TOOL_OPTIONS)]
    spec["volumes"].append({"name": "jvm-tmp", "emptyDir": {"sizeLimit": "256Mi"}})
    decision = evaluate_twice(policy_text(PRESET), request)
    assert decision.warnings == ()
    assert containers(decision)[0]["env"] == [JAVA_TOOL_OPTIONS]
    assert [v["name"] for v in decision.object["spec"]["volumes"]].count("jvm-tmp") == 1
    assert [c.message for c in decision.changes][:1] == ['container "app": volume jvm-tmp mounted at /tmp']


def test_fields_the_apiserver_defaults_do_not_make_a_conflict() -> None:
    preset = PRESET.replace("emptyDir: {sizeLimit: 256Mi}", "configMap: {name: jvm-config}")
    request = with_labels(fixture_request("0001"), **JVM)
    # What the apiserver stores for the same volume: defaultMode filled in.
    request["object"]["spec"]["volumes"].append(
        {"name": "jvm-tmp", "configMap": {"name": "jvm-config", "defaultMode": 420}}
    )
    decision = evaluate_twice(policy_text(preset), request)
    assert decision.warnings == ()
    assert [v["name"] for v in decision.object["spec"]["volumes"]].count("jvm-tmp") == 1


@pytest.mark.parametrize(
    ("change", "conflict"),
    [
        (
            lambda spec: spec["containers"][0].update(env=[{"name": "JAVA_TOOL_OPTIONS", "value": "-Xmx1g"}]),
            'container "app": env JAVA_TOOL_OPTIONS is already set to a different value',
        ),
        (
            lambda spec: spec["containers"][0].update(
                env=[
                    {"name": "JAVA_TOOL_OPTIONS", "valueFrom": {"configMapKeyRef": {"name": "j", "key": "o"}}}
                ]
            ),
            'container "app": env JAVA_TOOL_OPTIONS is already set to something else',
        ),
        (
            lambda spec: spec["volumes"].append({"name": "jvm-tmp", "configMap": {"name": "tmp"}}),
            "volume jvm-tmp has a different source (emptyDir in the preset, configMap in the pod)",
        ),
        (
            lambda spec: spec["volumes"].append({"name": "jvm-tmp", "emptyDir": {"medium": "Memory"}}),
            "volume jvm-tmp has a different source (different emptyDir)",
        ),
        (
            lambda spec: spec["containers"][0]["volumeMounts"].append(
                {"name": "scratch", "mountPath": "/tmp"}
            ),
            'container "app": mountPath /tmp already mounts volume scratch, the preset mounts jvm-tmp',
        ),
    ],
    ids=["env-value", "env-source", "volume-source", "volume-options", "mount-path"],
)
def test_a_conflict_skips_the_whole_preset_with_a_warning(change: Any, conflict: str) -> None:
    request = with_labels(fixture_request("0001"), **JVM)
    change(request["object"]["spec"])
    decision = evaluate(policy_text(PRESET), request)
    assert decision.allowed
    assert decision.patch == ()  # not even the parts that would not conflict
    assert decision.changes == ()
    assert decision.warnings == (SKIPPED + conflict,)


def test_a_conflict_in_one_container_of_many_is_named() -> None:
    # 0011's sidecar already mounts its shared volume at /data.
    preset = PRESET.replace("mountPath: /tmp", "mountPath: /data")
    decision = evaluate(policy_text(preset), with_labels(fixture_request("0011"), **JVM))
    assert decision.patch == ()
    assert decision.warnings == (
        SKIPPED
        + 'container "sidecar-logger": mountPath /data already mounts volume shared, '
        + "the preset mounts jvm-tmp",
    )


def _second_preset(name: str, value: str) -> str:
    return f"""\
---
apiVersion: podgate.io/v1alpha1
kind: Preset
metadata:
  name: {name}
spec:
  selector: {{}}
  env:
    - name: JAVA_TOOL_OPTIONS
      value: "{value}"
"""


@pytest.mark.parametrize(
    ("other", "applied", "skipped"),
    [("aaa-heap", "aaa-heap", "jvm-tuning"), ("zzz-heap", "jvm-tuning", "zzz-heap")],
)
def test_presets_apply_in_name_order_and_the_later_one_sees_the_earlier(
    other: str, applied: str, skipped: str
) -> None:
    policies = policy_text(PRESET + _second_preset(other, "-Xmx2g"))
    request = with_labels(fixture_request("0001"), **JVM)
    decision = evaluate_twice(policies, request)
    annotations = decision.object["metadata"]["annotations"]
    assert f"podpreset.admission.kubernetes.io/podpreset-{applied}" in annotations
    assert f"podpreset.admission.kubernetes.io/podpreset-{skipped}" not in annotations
    assert decision.warnings == (
        f"{skipped}.inject: preset {skipped} not applied, the pod is admitted without it: "
        'container "app": env JAVA_TOOL_OPTIONS is already set to a different value',
    )


def test_agreeing_presets_both_apply_without_duplicates() -> None:
    policies = policy_text(PRESET + _second_preset("other", JAVA_TOOL_OPTIONS["value"]))
    decision = evaluate_twice(policies, with_labels(fixture_request("0001"), **JVM))
    assert containers(decision)[0]["env"] == [JAVA_TOOL_OPTIONS]
    assert {k for k in decision.object["metadata"]["annotations"] if k.startswith("podpreset.")} == {
        ANNOTATION,
        "podpreset.admission.kubernetes.io/podpreset-other",
    }


def test_presets_are_for_pod_creation_only() -> None:
    policies = policy_text(PRESET)
    update = with_labels(fixture_request("0033"), **JVM)
    assert evaluate(policies, update).patch == ()
    deployment = copy.deepcopy(fixture_request("0039"))
    deployment["object"]["spec"]["template"]["metadata"]["labels"].update(JVM)
    decision = evaluate(policies, deployment)
    assert decision.patch == ()  # the pods get it when their ReplicaSet creates them
    assert decision.changes and all(change.pod_only for change in decision.changes)


def test_a_preset_name_cannot_clash_with_a_policy_name() -> None:
    clash = (
        PRESET.replace("name: jvm-tuning", "name: shared")
        + "---\n"
        + (
            "apiVersion: podgate.io/v1alpha1\nkind: Policy\nmetadata:\n  name: shared\n"
            "spec:\n  rules:\n    - {name: r, labels: {defaults: {team: web}}}\n"
        )
    )
    with pytest.raises(PolicyError) as caught:
        policy_text(clash)
    assert [str(i) for i in caught.value.issues] == [
        "test.yaml:18: metadata.name: duplicate name 'shared' (first at test.yaml:1)"
    ]


NOT_JSON = (
    "test.yaml:5: spec: must hold only strings, finite numbers (integers within 64 bits), booleans, "
    "lists and maps (quote dates)"
)


@pytest.mark.parametrize(
    ("replace", "by", "error"),
    [
        (
            "    - name: jvm-tmp\n      mountPath: /tmp",
            "    - name: jvm-tmp\n      mountPath: /tmp\n    - name: cache\n      mountPath: /cache",
            "test.yaml:17: spec.volumeMounts[1].name: "
            "mounts volume 'cache', which the preset does not define",
        ),
        (
            '      value: "-XX:MaxRAMPercentage=75.0 -XX:+ExitOnOutOfMemoryError"\n',
            "",
            "test.yaml:9: spec.env[0]: must set exactly one of value, valueFrom; got none",
        ),
        (
            "emptyDir: {sizeLimit: 256Mi}",
            "emptyDir: {}\n      configMap: {name: tmp}",
            "test.yaml:12: spec.volumes[0]: must set exactly one of emptyDir, configMap, secret, "
            "projected, downwardAPI, persistentVolumeClaim, hostPath, csi, ephemeral, nfs, image; "
            "got emptyDir, configMap",
        ),
        (
            "emptyDir: {sizeLimit: 256Mi}",
            "emptyDisk: {}",
            "test.yaml:13: spec.volumes[0].emptyDisk: unknown field (expected one of: configMap, csi, "
            "downwardAPI, emptyDir, ephemeral, hostPath, image, name, nfs, persistentVolumeClaim, "
            "projected, secret)",
        ),
        (
            "mountPath: /tmp",
            "mountPath: tmp",
            "test.yaml:16: spec.volumeMounts[0].mountPath: must match ^/ (got 'tmp')",
        ),
        (
            "name: jvm-tuning",
            "name: " + "x" * 54,
            "test.yaml:4: metadata.name: too long for the annotation "
            f"podpreset.admission.kubernetes.io/podpreset-{'x' * 54}: "
            f"name 'podpreset-{'x' * 54}' must be 1-63 characters of A-Z, a-z, 0-9, '-', '_' or '.', "
            "starting and ending with a letter or digit",
        ),
        (
            "  selector:\n    matchLabels: {app.kubernetes.io/runtime: jvm}\n",
            "",
            "test.yaml:5: spec: 'selector' is required",
        ),
        # Found by tests/test_fuzz_policies.py: each loaded, then every matching pod met the fail mode
        # (orjson cannot write an integer past 64 bits) or got null where the preset said NaN.
        ("sizeLimit: 256Mi", "sizeLimit: 18446744073709551616", NOT_JSON),
        ("sizeLimit: 256Mi", "sizeLimit: .nan", NOT_JSON),
    ],
    ids=[
        "mount-of-unknown-volume",
        "env-without-value",
        "two-volume-sources",
        "unknown-source",
        "relative-mount",
        "long-name",
        "no-selector",
        "huge-integer",
        "nan",
    ],
)
def test_load_errors_name_file_line_and_field(replace: str, by: str, error: str) -> None:
    assert replace in PRESET
    with pytest.raises(PolicyError) as caught:
        policy_text(PRESET.replace(replace, by))
    assert [str(issue) for issue in caught.value.issues] == [error]


def test_a_preset_is_not_a_policy_rule_type() -> None:
    text = (
        "apiVersion: podgate.io/v1alpha1\nkind: Policy\nmetadata:\n  name: p\n"
        "spec:\n  rules:\n    - name: r\n      preset: {env: []}\n"
    )
    with pytest.raises(PolicyError) as caught:
        policy_text(text)
    assert [str(i) for i in caught.value.issues] == [
        "test.yaml:8: spec.rules[0].preset: "
        "presets are written as documents of kind Preset, not as policy rules"
    ]


def test_a_preset_that_injects_nothing_is_a_load_error() -> None:
    text = PRESET.split("  env:\n")[0]
    with pytest.raises(PolicyError) as caught:
        policy_text(text)
    assert [str(i) for i in caught.value.issues] == [
        "test.yaml:5: spec: injects nothing: set env, envFrom, volumes or volumeMounts"
    ]


def test_env_from_and_value_from_are_injected() -> None:
    preset = PRESET.replace(
        '      value: "-XX:MaxRAMPercentage=75.0 -XX:+ExitOnOutOfMemoryError"\n',
        "      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n",
    ).replace("  volumes:", "  envFrom:\n    - configMapRef: {name: jvm-settings}\n  volumes:")
    decision = evaluate_twice(policy_text(preset), with_labels(fixture_request("0001"), **JVM))
    (container,) = containers(decision)
    assert container["env"] == [
        {"name": "JAVA_TOOL_OPTIONS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]
    assert container["envFrom"] == [{"configMapRef": {"name": "jvm-settings"}}]
    assert 'container "app": envFrom configMapRef jvm-settings added' in [c.message for c in decision.changes]
