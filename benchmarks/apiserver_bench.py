"""Pod creation through a real kube-apiserver: no webhook, the Go floor replaying podgate's patch, podgate.

    .venv/bin/python benchmarks/apiserver_bench.py [--quick] [--pods 600] [--rounds 6] [--clients 1,20]
        [--sides none,floor,podgate] [--deploy-rounds 3] [--client-processes 4] [--no-write]
    .venv/bin/python benchmarks/apiserver_bench.py --report [--quick]     # the tables from the last JSON

Starts the control plane of ../shared/k8s (etcd, kube-apiserver, kube-controller-manager) in a
directory of its own on free ports, `podgate serve` with deploy/'s settings and the shipped policies/,
and ../shared/k8s/floor-webhook replaying podgate's own patch for the benchmark pod. Registers one side
at a time with deploy/'s two webhook configurations (pointed at 127.0.0.1), confirms from the
apiserver's own metrics that the switch took effect, and creates test-labelled one-container pods over
keep-alive HTTPS connections: batches of every side interleaved, rounds rotating their order, the pods
deleted after every batch. Then a Deployment scaled from 0 to 100 replicas per side (pods created by the
controller-manager). Writes benchmarks/results/apiserver.json (--quick: results/quick/) and, after a
full run, its tables into BENCHMARKS.md between the `apiserver:begin` and `apiserver:end` markers.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import apiserver_cluster as cluster
import apiserver_report as report
import benchlib
from apiserver_load import ClientPool, Sample
from apiserver_rig import SIDES, VARIANT, Options, Rig, errors, latency_summary


def rotated(items: list[str], by: int) -> list[str]:
    """Round r starts with a different side, so drift over the run (etcd, caches, other load) is shared."""
    by %= len(items)
    return items[by:] + items[:by]


def merge_webhooks(measured: list[dict[str, dict[str, float]]], pods: int) -> dict[str, dict[str, float]]:
    """The apiserver's webhook figures of several batches as one: calls per pod, their mean duration, and
    the calls that failed open or were rejected."""
    merged = {}
    for phase in ("mutating", "validating"):
        found = [m[phase] for m in measured if phase in m]
        calls = sum(f["calls"] for f in found)
        if calls:
            merged[phase] = {
                "calls_per_pod": round(calls / pods, 3),
                "mean_ms": round(sum(f["mean_ms"] * f["calls"] for f in found) / calls, 3),
                "fail_open": sum(f["fail_open"] for f in found),
                "rejected": sum(f["rejected"] for f in found),
            }
    return merged


def merge_in_app(measured: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    merged = {}
    for endpoint in ("mutate", "validate"):
        found = [m[endpoint] for m in measured if endpoint in m]
        reviews = sum(f["reviews"] for f in found)
        if reviews:
            mean = sum(f["mean_ms"] * f["reviews"] for f in found) / reviews
            merged[endpoint] = {"reviews": reviews, "mean_ms": round(mean, 3)}
    return merged


def aggregate(batches: list[dict[str, Any]], samples: list[Sample]) -> dict[str, Any]:
    pods = sum(b["pods"] for b in batches)
    wall = sum(b["wall_s"] for b in batches)
    cpu = {name: sum(b["cpu_s"][name] for b in batches) for name in batches[0]["cpu_s"]}
    return {
        "pods": pods,
        "batches": len(batches),
        "errors": errors(samples),
        "latency_ms": latency_summary([took for _, took, _, _ in samples]),
        "pods_per_s": round(pods / wall, 1),
        "cpu_ms_per_pod": {name: round(seconds / pods * 1000, 3) for name, seconds in cpu.items()},
        "cpus_busy": {name: round(seconds / wall, 2) for name, seconds in cpu.items()},
        "webhooks": merge_webhooks([b["webhooks"] for b in batches], pods),
        "in_app": merge_in_app([b.get("in_app", {}) for b in batches]),
        "foreign_cpus_max": max(b["foreign_cpus"] for b in batches),
        "foreign_cpus_mean": round(sum(b["foreign_cpus"] * b["wall_s"] for b in batches) / wall, 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    data: dict[str, Any] = {
        "machine": benchlib.machine(),
        # Set while webhook/ is being restructured, to measure a snapshot of it: then that is what ran.
        "podgate_pythonpath": os.environ.get("PYTHONPATH"),
        "settings": {
            "sides": args.sides,
            "clients": args.clients,
            "pods_per_side_per_clients": args.pods,
            "rounds": args.rounds,
            "client_processes": args.client_processes,
            "deploy_replicas": args.deploy_replicas,
            "deploy_rounds": args.deploy_rounds,
            "kcm_qps": args.kcm_qps,
            "podgate": str(args.podgate),
        },
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
        "busy_elsewhere_before": benchlib.busy_elsewhere(1.0),
    }
    options = Options(args.sides, args.podgate, args.kcm_qps, args.keep)
    with Rig(options) as rig:
        data["setup_s"] = round(time.monotonic() - started, 1)
        data["patch_ops"] = len(rig.patch)
        data["podgate_settings"] = {s: w.settings for s, w in rig.webhooks.items() if w.kind == "podgate"}
        batches: list[dict[str, Any]] = []
        deployments: list[dict[str, Any]] = []
        samples: dict[tuple[int, str], list[Sample]] = {}
        per_batch = math.ceil(args.pods / args.rounds)
        for clients in args.clients:
            pool = ClientPool(rig.target(), clients, args.client_processes)
            try:
                for round_ in range(args.rounds):
                    for side in rotated(args.sides, round_):
                        figures, taken = rig.batch(pool, side, per_batch, f"c{clients}-r{round_}-{side}")
                        figures["round"] = round_
                        batches.append(figures)
                        samples.setdefault((clients, side), []).extend(taken)
                        _progress(figures)
                if clients == max(args.clients):
                    for round_ in range(args.deploy_rounds):
                        for side in rotated(args.sides, round_):
                            figures = rig.scale_deployment(side, args.deploy_replicas, pool)
                            figures["round"] = round_
                            deployments.append(figures)
                            print(
                                f"  deployment 0 -> {args.deploy_replicas}, {side}: {figures['seconds']} s",
                                flush=True,
                            )
            finally:
                pool.close()
        data["replay"] = rig.replay_check()
        deploy_decided = {k: v for k, v in rig.decided.items() if k.startswith("deploy-")}
        if "deploy-floor" in deploy_decided and "deploy-podgate" in deploy_decided:
            data["replay"]["same_deployment_pod"] = (
                deploy_decided["deploy-floor"] == deploy_decided["deploy-podgate"]
            )
        data["switches"] = _switch_summary(rig.switches)
    data["slow_clients_cut_off"] = rig.cut_off
    data["batches"] = batches
    data["deployments"] = deployments
    data["results"] = {
        str(clients): {
            side: aggregate(
                [b for b in batches if b["clients"] == clients and b["side"] == side],
                samples[(clients, side)],
            )
            for side in args.sides
        }
        for clients in args.clients
    }
    data["deployment"] = {
        side: _deployment_summary(rounds)
        for side in args.sides
        if (rounds := [d for d in deployments if d["side"] == side])
    }
    data["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    data["wall_seconds"] = round(time.monotonic() - started, 1)
    return data


def _progress(figures: dict[str, Any]) -> None:
    latency = figures["latency_ms"]
    hooks = ", ".join(f"{phase} {h['mean_ms']:.2f} ms" for phase, h in figures["webhooks"].items())
    print(
        f"  {figures['clients']:>2} clients, round {figures['round']}, {figures['side']:<14} "
        f"avg {latency['avg']:6.2f}  p50 {latency['p50']:6.2f}  p99 {latency['p99']:6.2f} ms  "
        f"{figures['pods'] / figures['wall_s']:6.0f} pods/s  other load {figures['foreign_cpus']}"
        f"{'  webhooks: ' + hooks if hooks else ''}",
        flush=True,
    )


def _deployment_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = sorted(r["seconds"] for r in rounds)
    replicas = rounds[0]["replicas"]
    cpu = {name: sum(r["cpu_s"][name] for r in rounds) for name in rounds[0]["cpu_s"]}
    return {
        "rounds": len(rounds),
        "seconds_median": seconds[len(seconds) // 2],
        "seconds_all": [r["seconds"] for r in rounds],
        "all_patched_as_expected": all(r["patched_as_expected"] for r in rounds),
        "cpu_ms_per_pod": {
            name: round(value / (replicas * len(rounds)) * 1000, 3) for name, value in cpu.items()
        },
        "webhooks": merge_webhooks([r["webhooks"] for r in rounds], replicas * len(rounds)),
        "foreign_cpus_max": max(r["foreign_cpus"] for r in rounds),
    }


def _switch_summary(switches: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "count": len(switches),
        "probes_max": max((s["probes"] for s in switches), default=0),
        "seconds_max": round(max((s["seconds"] for s in switches), default=0.0), 3),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run of a minute or two, into results/quick/"
    )
    parser.add_argument("--pods", type=int, help="pods per side and client count (600; --quick 120)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (6; --quick 2)")
    parser.add_argument("--clients", default="1,20", help="client counts, comma-separated (1,20)")
    parser.add_argument("--client-processes", type=int, default=4, help="processes the clients run in (4)")
    parser.add_argument(
        "--sides",
        default="none,floor,podgate",
        help=f"any of {', '.join(SIDES)} and podgate-wNtM (N workers, M threads); default none,floor,podgate",
    )
    parser.add_argument("--deploy-replicas", type=int, default=100)
    parser.add_argument("--deploy-rounds", type=int, help="Deployment scale-ups per side (3; --quick 1)")
    parser.add_argument(
        "--kcm-qps", type=int, default=1000, help="controller-manager client QPS; 0: its default (20)"
    )
    parser.add_argument("--podgate", type=Path, default=cluster.benchlib.REPO / ".venv" / "bin" / "podgate")
    parser.add_argument(
        "--kit", type=Path, default=cluster.KIT, help=f"the control-plane kit ({cluster.KIT})"
    )
    parser.add_argument("--name", default="apiserver", help="results file name (apiserver)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the working directory (logs, control plane)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument(
        "--report", action="store_true", help="only print (and write) the tables of the last run"
    )
    args = parser.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",")]
    args.sides = args.sides.split(",")
    for side in args.sides:
        if side not in SIDES and not VARIANT.match(side):
            parser.error(f"unknown side {side!r}")
    args.pods = args.pods or (120 if args.quick else 600)
    args.rounds = args.rounds or (2 if args.quick else 6)
    args.deploy_rounds = args.deploy_rounds if args.deploy_rounds is not None else (1 if args.quick else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cluster.KIT = args.kit.resolve()
    if args.report:
        data = benchlib.read_results(args.name, args.quick)
        if data is None:
            print(f"no results/{'quick/' if args.quick else ''}{args.name}.json yet", file=sys.stderr)
            return 1
    else:
        if not cluster.KIT.is_dir():
            # Not a failure of podgate: the kit is a shared directory beside the repository, which a
            # plain clone does not have. Say so, and let `make bench-apiserver` fail visibly.
            print(
                f"apiserver benchmark: no control-plane kit at {cluster.KIT}: nothing to measure against",
                file=sys.stderr,
            )
            return 2
        if not args.quick:
            data_quiet = benchlib.wait_for_quiet()
            print(f"other load before starting: {data_quiet} CPUs", flush=True)
        data = run(args)
        path = benchlib.write_results(args.name, data, args.quick)
        print(f"wrote {path.relative_to(benchlib.REPO)}")
    text = report.render(data)
    print(text)
    if not args.quick and not args.no_write and args.name == "apiserver":
        report.write(text)
        print(f"updated {report.DOC.relative_to(benchlib.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
