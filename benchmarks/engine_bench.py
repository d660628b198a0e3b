"""The engine on one core: what a worker does per review, without HTTP or TLS, and how it grows with policies.

    .venv/bin/python benchmarks/engine_bench.py [--rounds 3000] [--quick] [--cpu 0]

Per review, as the server does it: `parse_review(body)`, `evaluate_request(policies, review.request)`,
`response(review, decision, phase)` and the JSON encoding of the answer. Cases: fixture 0011's pod
grown to 1, 3 and 10 containers (benchmarks/workload.py), at /mutate and, after podgate's own
mutation, at /validate, against the shipped policies/; then the 3-container pod at /mutate against
10, 100 and 1,000 policies (benchmarks/policygen.py). Writes benchmarks/results/engine.json.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import benchlib
import policygen
import workload

from webhook import load_policies
from webhook.engine.evaluation import evaluate_request
from webhook.kube import jsoncodec
from webhook.policy.model import PolicySet
from webhook.server.review import Phase, parse_review, response

CONTAINERS = (1, 3, 10)
SCALES = (10, 100, 1000)
HEADLINE = 3  # the target is stated for a 3-container pod
# Time that repeating disturbed measurements may add to a run, at most.
RETRY_BUDGET = 60.0


def review_once(policies: PolicySet, body: bytes, phase: Phase) -> int:
    """Everything a worker does for one review between reading the body and writing the answer."""
    review = parse_review(body)
    decision = evaluate_request(policies, review.request, validating=phase == "validate")
    jsoncodec.dumps(response(review, decision, phase))
    return len(decision.patch)


def measure(
    policies: PolicySet, bodies: list[bytes], phase: Phase, rounds: int, seconds: float
) -> dict[str, Any]:
    """Evaluations per second and per-evaluation percentiles; at most `rounds`, at most `seconds`."""
    for index in range(max(50, rounds // 20)):  # warm-up: lazy imports, caches, the allocator's arenas
        review_once(policies, bodies[index % len(bodies)], phase)
    samples: list[float] = []
    patch_ops = 0
    clock = time.perf_counter
    busy_before, own_before = benchlib.busy_cpu_seconds(), time.process_time()
    started = clock()
    deadline = started + seconds
    for index in range(rounds):
        before = clock()
        patch_ops = review_once(policies, bodies[index % len(bodies)], phase)
        after = clock()
        samples.append(after - before)
        if after > deadline:
            break
    elapsed = clock() - started
    foreign = benchlib.busy_cpu_seconds() - busy_before - (time.process_time() - own_before)
    ordered = sorted(samples)
    return {
        "rounds": len(samples),
        "evals_per_s": round(len(samples) / elapsed),
        "p50_us": round(benchlib.percentile(ordered, 0.50) * 1e6, 1),
        "p99_us": round(benchlib.percentile(ordered, 0.99) * 1e6, 1),
        "patch_ops": patch_ops,
        "foreign_cpu": round(max(0.0, foreign) / elapsed, 2),  # other work on the machine meanwhile
    }


def breakdown(policies: PolicySet, body: bytes, rounds: int) -> dict[str, float]:
    """Median microseconds of each step of the headline case, for whoever optimizes it next."""
    review = parse_review(body)
    decision = evaluate_request(policies, review.request)
    answer = response(review, decision, "mutate")
    steps: dict[str, Callable[[], object]] = {
        "parse_review": lambda: parse_review(body),
        "evaluate": lambda: evaluate_request(policies, review.request),
        "response": lambda: response(review, decision, "mutate"),
        "json_encode": lambda: jsoncodec.dumps(answer),
    }
    medians = {}
    for name, step in steps.items():
        samples = []
        for _ in range(rounds):
            before = time.perf_counter()
            step()
            samples.append(time.perf_counter() - before)
        medians[name] = round(benchlib.percentile(sorted(samples), 0.5) * 1e6, 1)
    return medians


def scaling(rounds: int, seconds: float, retry: benchlib.Retrier) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="podgate-bench-policies-") as scratch:
        for size in SCALES:
            directory = policygen.write_policy_set(Path(scratch) / str(size), size)
            started = time.perf_counter()
            policies = load_policies(directory)
            load_ms = (time.perf_counter() - started) * 1000
            bodies = workload.bodies("mutate", HEADLINE)
            row = {"policies": len(policies.policies), "load_ms": round(load_ms, 1)}
            row.update(retry(partial(measure, policies, bodies, "mutate", rounds, seconds)))
            rows.append(row)
    base = rows[0]
    for row in rows:
        row["cost_vs_10"] = round(row["p50_us"] / base["p50_us"], 2)
        # Same answer at every size: the generated policies must not change what the pod gets.
        row["same_patch_as_10"] = row["patch_ops"] == base["patch_ops"]
    return rows


def run(rounds: int, seconds: float, retry: benchlib.Retrier) -> dict[str, Any]:
    shipped = load_policies(benchlib.POLICIES)
    cases = []
    phases: tuple[Phase, ...] = ("mutate", "validate")
    for containers in CONTAINERS:
        for phase in phases:
            bodies = workload.bodies(phase, containers, shipped)
            row: dict[str, Any] = {"case": f"{containers}-container pod", "endpoint": f"/{phase}"}
            row.update(retry(partial(measure, shipped, bodies, phase, rounds, seconds)))
            cases.append(row)
    denied = {"case": "fixture 0012 (denied)", "endpoint": "/validate"}
    refused = workload.bodies("denied", policies=shipped)
    denied.update(retry(partial(measure, shipped, refused, "validate", rounds, seconds)))
    cases.append(denied)
    steps = breakdown(shipped, workload.bodies("mutate", HEADLINE, shipped)[0], min(rounds, 2000))
    return {
        "policy_set": f"policies/ ({len(shipped.policies)} policies)",
        "cases": cases,
        "breakdown_us": steps,
        "scaling": scaling(rounds, seconds, retry),
    }


def report(results: dict[str, Any]) -> str:
    cases = benchlib.table(
        ["case", "endpoint", "evaluations/s", "p50 µs", "p99 µs", "patch ops", "other load, CPUs"],
        [
            (
                c["case"],
                c["endpoint"],
                c["evals_per_s"],
                c["p50_us"],
                c["p99_us"],
                c["patch_ops"],
                c.get("foreign_cpu", "?"),
            )
            for c in results["cases"]
        ],
    )
    scale = benchlib.table(
        ["policies", "load ms", "evaluations/s", "p50 µs", "p99 µs", "cost vs 10", "same patch"],
        [
            (
                s["policies"],
                s["load_ms"],
                s["evals_per_s"],
                s["p50_us"],
                s["p99_us"],
                s["cost_vs_10"],
                s["same_patch_as_10"],
            )
            for s in results["scaling"]
        ],
    )
    steps = ", ".join(f"{name} {us} µs" for name, us in results["breakdown_us"].items())
    return (
        f"Engine on CPU {results['cpu']}, {results['policy_set']}:\n\n{cases}\n\n"
        f"3-container /mutate, median per step: {steps}\n\n"
        f"3-container /mutate against generated policy sets:\n\n{scale}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3000, help="evaluations per case (default 3000)")
    parser.add_argument("--seconds", type=float, default=4.0, help="time cap per case (default 4)")
    parser.add_argument("--quick", action="store_true", help="500 rounds, 1 s per case: a smoke run")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU to pin to (default 0)")
    args = parser.parse_args()
    rounds, seconds = (500, 1.0) if args.quick else (args.rounds, args.seconds)
    cpu = benchlib.pin(args.cpu)
    gc.collect()
    results: dict[str, Any] = {"machine": benchlib.machine(), "cpu": cpu, "rounds": rounds}
    # A smoke run does not wait for a quiet machine; a measurement does.
    # A smoke run neither waits for a quiet machine nor repeats disturbed measurements.
    results["busy_elsewhere_before"] = benchlib.wait_for_quiet(0 if args.quick else 90)
    results.update(run(rounds, seconds, benchlib.Retrier(0 if args.quick else RETRY_BUDGET)))
    results["busy_elsewhere_after"] = benchlib.busy_elsewhere()
    path = benchlib.write_results("engine", results, quick=args.quick)
    print(report(results))
    print(f"wrote {path.relative_to(benchlib.REPO)}")


if __name__ == "__main__":
    main()
