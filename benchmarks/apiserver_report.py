"""The apiserver benchmark's tables (benchmarks/results/apiserver.json) as Markdown, and their place in
BENCHMARKS.md: between the `apiserver:begin` and `apiserver:end` markers, like report.py's figures."""

from __future__ import annotations

import math
from typing import Any

import benchlib

DOC = benchlib.REPO / "benchmarks" / "BENCHMARKS.md"
BEGIN, END = "<!-- apiserver:begin -->", "<!-- apiserver:end -->"
# Issue 16's targets: podgate / floor at 1 client (p50), at 20 clients (avg), and at p99.
TARGET_TYPICAL, TARGET_P99 = 1.10, 1.25
LABELS = {
    "none": "no webhook",
    "floor": "floor (Go, replaying podgate's patch)",
    "floor-nopatch": "floor (Go, no patch)",
    "podgate": "podgate",
}
PROCESSES = ("webhook", "kube-apiserver", "etcd", "kube-controller-manager", "clients")


def label(side: str) -> str:
    return LABELS.get(side, side)


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def setting(data: dict[str, Any]) -> str:
    machine, settings = data["machine"], data["settings"]
    podgate = "; ".join(
        f"{side}: {s.get('workers', s.get('PODGATE_WORKERS', '?'))} workers x {s.get('threads', '?')} threads"
        for side, s in data.get("podgate_settings", {}).items()
    )
    replay = data.get("replay", {})
    replay_text = (
        "not checked (needs both the floor and podgate)"
        if not replay.get("checked")
        else f"same stored pod as podgate's: {replay['same_pod']} (bare pod), "
        f"{replay.get('same_deployment_pod', 'n/a')} (Deployment pod)"
    )
    foreign = [r["foreign_cpus_max"] for sides in data["results"].values() for r in sides.values()]
    rows = [
        ("when, what", f"{machine['date']}, commit {machine['commit']}"),
        ("CPU", f"{machine['cpu']}, {machine['cpus']} CPUs, nothing pinned: all processes share them"),
        ("control plane", "../shared/k8s: kube-apiserver and kube-controller-manager v1.36.2, etcd v3.6.13"),
        ("podgate", f"`podgate serve`, policies/, deploy/'s environment: {podgate or 'not run'}"),
        ("floor's replay of podgate's patch", f"{data.get('patch_ops', '?')} operations; {replay_text}"),
        (
            "clients",
            f"{settings['client_processes']} processes at most, one keep-alive connection per client",
        ),
        ("controller-manager client QPS", settings["kcm_qps"] or "its default (20, burst 30)"),
        (
            "load average before / after",
            f"{' '.join(data['loadavg_before'])} / {' '.join(data['loadavg_after'])}",
        ),
        (
            "other work on the machine, CPUs",
            f"{data['busy_elsewhere_before']} before; at most {max(foreign)} during a batch",
        ),
        (
            "podgate's connections cut off by its read timeout (a TLS handshake, then no request)",
            ", ".join(f"{side}: {n}" for side, n in data.get("slow_clients_cut_off", {}).items()) or "-",
        ),
        ("run time", f"{data['wall_seconds']} s (set-up {data['setup_s']} s)"),
    ]
    return benchlib.table(["", ""], rows)


def _hooks(hooks: dict[str, Any]) -> str:
    """The apiserver's mean webhook call, mutating / validating."""
    return " / ".join(f"{hooks[p]['mean_ms']:.2f}" if p in hooks else "-" for p in ("mutating", "validating"))


def _failed(hooks: dict[str, Any]) -> str:
    """Calls that failed open (mutating: the pod went on without the patch) / rejections (validating: a
    timeout failing closed, or a denial of a pod that had missed its patch)."""
    fail_open = sum(h.get("fail_open", 0) for h in hooks.values())
    rejected = sum(h.get("rejected", 0) for h in hooks.values())
    return f"{fail_open} / {rejected}"


def latency(data: dict[str, Any]) -> str:
    rows = []
    for clients, sides in data["results"].items():
        for side, r in sides.items():
            lat, hooks = r["latency_ms"], r["webhooks"]
            failed_open = sum(h.get("fail_open", 0) for h in hooks.values())
            row = [clients, label(side), r["pods"], f"{sum(r['errors'].values())} / {failed_open}"]
            row += [lat[k] for k in ("avg", "p50", "p95", "p99", "max")]
            row += [r["pods_per_s"], _hooks(hooks), r["foreign_cpus_max"]]
            rows.append(row)
    headers = [
        "clients",
        "side",
        "pods",
        "failed creates / calls failed open",
        "avg ms",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
    ]
    headers += [
        "pods/s",
        "apiserver's webhook call, mean ms (mutating / validating)",
        "other load, CPUs (max)",
    ]
    return benchlib.table(headers, rows)


def _side_ratio(sides: dict[str, Any], top: str, bottom: str, statistic: str) -> float:
    if top not in sides or bottom not in sides:
        return float("nan")
    if statistic == "pods/s":  # a rate: the slower side's is the smaller one
        return _ratio(sides[bottom]["pods_per_s"], sides[top]["pods_per_s"])
    return _ratio(sides[top]["latency_ms"][statistic], sides[bottom]["latency_ms"][statistic])


def ratios(data: dict[str, Any]) -> str:
    rows = []
    for clients, sides in data["results"].items():
        typical = "p50" if clients == "1" else "avg"
        foreign = max(r["foreign_cpus_max"] for r in sides.values())
        clean = "podgate" in sides and not sum(sides["podgate"]["errors"].values())
        for statistic, target in ((typical, TARGET_TYPICAL), ("p99", TARGET_P99), ("pods/s", None)):
            podgate_vs_floor = _side_ratio(sides, "podgate", "floor", statistic)
            verdict = ""
            if target is not None:
                verdict = "**met**" if podgate_vs_floor <= target and clean else "**short**"
                if foreign > benchlib.NOISY_CPUS:
                    verdict += f", unreliable: {foreign} CPUs of other load"
            name = statistic if target else "pods/s (inverse: the slower side's rate below)"
            floor_vs_none = _side_ratio(sides, "floor", "none", statistic)
            rows.append(
                (clients, name, floor_vs_none, podgate_vs_floor, f"≤ {target}" if target else "", verdict)
            )
    headers = ["clients", "statistic", "floor / no webhook", "podgate / floor", "target (podgate / floor)"]
    return benchlib.table([*headers, "verdict"], rows)


def calls(data: dict[str, Any]) -> str:
    """One webhook call, split: the apiserver's measure of the whole call, podgate's own `durationMs` (the
    Flask app), and the rest (TLS, gunicorn's parsing and thread hand-off, queueing for a thread or a CPU)."""
    rows = []
    for clients, sides in data["results"].items():
        if "podgate" not in sides:
            continue
        for phase, endpoint in (("mutating", "mutate"), ("validating", "validate")):
            podgate = sides["podgate"]["webhooks"].get(phase, {}).get("mean_ms", float("nan"))
            floor = sides.get("floor", {}).get("webhooks", {}).get(phase, {}).get("mean_ms", float("nan"))
            app = sides["podgate"].get("in_app", {}).get(endpoint, {}).get("mean_ms", float("nan"))
            rows.append((clients, f"/{endpoint}", floor, podgate, round(podgate - floor, 3), app,
                         round(podgate - floor - app, 3)))  # fmt: skip
    headers = [
        "clients",
        "call",
        "floor: the apiserver's call",
        "podgate: the apiserver's call",
        "podgate - floor",
    ]
    headers += [
        "podgate: in its Flask app (durationMs)",
        "podgate - floor - app: TLS, gunicorn, hand-off, queueing",
    ]
    return benchlib.table(headers, rows)


def cpu(data: dict[str, Any]) -> str:
    rows = []
    for clients, sides in data["results"].items():
        for side, r in sides.items():
            per_pod = [r["cpu_ms_per_pod"].get(p, 0.0) for p in PROCESSES]
            rows.append((clients, label(side), *(f"{ms:.2f}" for ms in per_pod), f"{sum(per_pod):.2f}"))
    return benchlib.table(["clients", "side", *PROCESSES, "sum"], rows)


def deployments(data: dict[str, Any]) -> str:
    if not data.get("deployment"):
        return "(no Deployment rounds in this run)"
    replicas = data["settings"]["deploy_replicas"]
    rows = []
    for side, d in data["deployment"].items():
        per_pod = " / ".join(f"{d['cpu_ms_per_pod'].get(p, 0.0):.2f}" for p in PROCESSES[:4])
        rows.append(
            (
                label(side),
                d["rounds"],
                d["seconds_median"],
                ", ".join(f"{s:.3f}" for s in d["seconds_all"]),
                _hooks(d["webhooks"]),
                _failed(d["webhooks"]),
                per_pod,
                "yes" if d["all_patched_as_expected"] else "**no**",
                d["foreign_cpus_max"],
            )
        )
    headers = ["side", "rounds", f"s to {replicas} pods, median", "all rounds, s"]
    headers += ["apiserver's webhook call, mean ms (mutating / validating)", "failed open / rejected calls"]
    headers += [
        "CPU ms per pod: webhook / apiserver / etcd / controller-manager",
        "last pod patched as it should be",
    ]
    return benchlib.table([*headers, "other load, CPUs (max)"], rows)


def render(data: dict[str, Any]) -> str:
    replicas = data["settings"]["deploy_replicas"]
    sections = {
        "Setting": setting(data),
        "Pod CREATE latency through the apiserver": latency(data),
        "Ratios, against issue 16's targets": ratios(data),
        "One webhook call, mean ms: what the apiserver waits for, and what podgate says it spent": calls(
            data
        ),
        "CPU per pod created, ms (from /proc, summed over each batch)": cpu(data),
        f"A Deployment scaled from 0 to {replicas} replicas (pods by the controller-manager)": deployments(
            data
        ),
    }
    return "\n\n".join(f"#### {title}\n\n{body}" for title, body in sections.items())


def write(text: str) -> None:
    doc = DOC.read_text()
    head, found, rest = doc.partition(BEGIN)
    _, ended, tail = rest.partition(END)
    if not found or not ended:
        raise SystemExit(f"{DOC} has no {BEGIN} ... {END} section")
    DOC.write_text(f"{head}{BEGIN}\n\n{text}\n\n{END}{tail}")
