"""podgate over real TLS against its floor: maximum throughput, latency at fixed rates, memory, start-up.

    .venv/bin/python benchmarks/server_bench.py [--seconds 5] [--rates 100,250,500,750,1000,1500] [--quick]

The real `podgate serve` (gunicorn gthread, TLS, the shipped policies/) runs pinned to CPU 0 and
picks its own worker count from that; the floor (benchmarks/floor_app.py: the same server with an
app that only decodes the review and admits) runs the same way after it. The load generator
(benchmarks/loadgen.py) runs in this process, pinned to CPU 1, over 16 kept-alive connections that
verify the certificate chain. Per server and endpoint: a closed loop for maximum throughput, then an
open loop at each fixed rate with latency counted from each request's due time. /mutate gets the
3-container test pod (answered with a patch); /validate alternates the same pod as mutated
(admitted) and fixture 0012 (denied). Writes benchmarks/results/server.json and the plot.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import benchlib
import loadgen
import plot
import servers
import workload
import wrk_check

from tests.serving_support import write_pki
from webhook import load_policies

SERVER_CPU, GENERATOR_CPU = 0, 1
CONNECTIONS = 16
# Each fixed rate runs long enough for at least this many samples, so p99 is not one unlucky request.
MIN_SAMPLES = 1000
# Time that repeating disturbed measurements may add to a run, at most.
RETRY_BUDGET = 120.0


def payloads(port: int) -> dict[str, list[bytes]]:
    shipped = load_policies(benchlib.POLICIES)
    compliant = workload.bodies("validate", 3, shipped)
    denied = workload.bodies("denied", policies=shipped)
    alternating = [body for pair in zip(compliant, denied, strict=True) for body in pair]
    return {
        "/mutate": [loadgen.encode("/mutate", port, body) for body in workload.bodies("mutate", 3, shipped)],
        "/validate": [loadgen.encode("/validate", port, body) for body in alternating],
    }


def check_answers(server: servers.Server) -> dict[str, Any]:
    """Before timing anything: each body gets the answer it should, so the figures are of real work."""
    shipped = load_policies(benchlib.POLICIES)
    expected = {
        ("/mutate", "mutate"): True,
        ("/validate", "validate"): True,
        ("/validate", "denied"): server.name == "floor",  # the floor admits everything
    }
    seen = {}
    for (path, kind), allowed in expected.items():
        status, data = server.request("POST", path, workload.bodies(kind, 3, shipped)[0])
        answer = json.loads(data)["response"] if status == 200 else {}
        ok = status == 200 and answer.get("allowed") is allowed
        if kind == "mutate" and server.name == "podgate":
            ok = ok and bool(answer.get("patch"))
        if not ok:
            raise SystemExit(f"{server.name} {path} ({kind}): unexpected answer {status} {data[:300]!r}")
        seen[f"{path} {kind}"] = "patched" if answer.get("patch") else ("allowed" if allowed else "denied")
    return seen


@dataclass
class Plan:
    """What one run measures, and how long it may take."""

    rates: list[int]
    seconds: float  # per measurement
    starts: int  # starts timed to /readyz
    min_samples: int  # per fixed rate: at low rates a run lasts longer, so p99 rests on enough requests
    quiet_wait: float  # at most this long waiting for a quiet machine before starting
    retry: benchlib.Retrier  # repeats measurements other processes disturbed


def measure_server(name: str, pki: Path, workdir: Path, plan: Plan) -> dict[str, Any]:
    server = servers.start(name, pki, workdir, SERVER_CPU)
    try:
        ready = server.ready_fields()
        figures: dict[str, Any] = {
            "workers": ready.get("workers"),
            "threads": ready.get("threads"),
            "answers": check_answers(server),
            "endpoints": {},
        }
        bodies = payloads(server.port)
        generator = loadgen.LoadGenerator(server.port, pki / "ca.pem", CONNECTIONS)
        try:
            for requests in bodies.values():  # warm-up: lazy imports, caches, TLS session state
                generator.run(requests, 1.0)
            for path, requests in bodies.items():
                figures["endpoints"][path] = endpoint(server, generator, requests, plan)
                print(f"  {name} {path}: {summary_line(figures['endpoints'][path])}", flush=True)
        finally:
            generator.close()
        figures["memory_kib"] = {
            "master": servers.memory_kib(server.process.pid),
            "workers": [servers.memory_kib(pid) for pid in server.workers()],
        }
        return figures
    finally:
        server.stop()


def endpoint(
    server: servers.Server, generator: loadgen.LoadGenerator, requests: list[bytes], plan: Plan
) -> dict[str, Any]:
    pids = [server.process.pid, *server.workers()]

    def measured(duration: float, rate: float | None) -> dict[str, Any]:
        """One run's figures, with the CPU the server used and what the rest of the machine did."""
        busy, served, own = benchlib.busy_cpu_seconds(), servers.cpu_seconds(pids), time.process_time()
        began = time.perf_counter()
        result = generator.run(requests, duration, rate)
        elapsed = time.perf_counter() - began
        server_cpu = servers.cpu_seconds(pids) - served
        foreign = benchlib.busy_cpu_seconds() - busy - server_cpu - (time.process_time() - own)
        figures = result.summary()
        figures["foreign_cpu"] = round(max(0.0, foreign) / elapsed, 2)
        figures["server_cpu_us_per_request"] = round(server_cpu / max(result.completed, 1) * 1e6)
        figures["server_cpu"] = round(server_cpu / elapsed, 2)  # cores busy; 1.0 = CPU 0 saturated
        return figures

    maximum = plan.retry(partial(measured, plan.seconds, None))
    fixed = [
        plan.retry(partial(measured, max(plan.seconds, plan.min_samples / rate), rate)) for rate in plan.rates
    ]
    return {"max": maximum, "rates": fixed}


def summary_line(figures: dict[str, Any]) -> str:
    top = figures["max"]
    rates = ", ".join(f"{r['offered_rps']:.0f}/s p99 {r['p99_ms']:.1f} ms" for r in figures["rates"])
    return f"max {top['achieved_rps']:.0f} req/s (generator CPU {top['generator_cpu']:.0%}); {rates}"


def ready_times(name: str, pki: Path, workdir: Path, starts: int) -> list[float]:
    times = []
    for _ in range(starts):
        server = servers.start(name, pki, workdir, SERVER_CPU)
        times.append(round(server.ready_s, 3))
        server.stop()
    return times


def run(plan: Plan) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": benchlib.machine(),
        "setup": {
            "server_cpu": SERVER_CPU,
            "generator_cpu": GENERATOR_CPU,
            "connections": CONNECTIONS,
            "seconds": plan.seconds,
            "rates": plan.rates,
        },
        "busy_elsewhere_before": benchlib.wait_for_quiet(plan.quiet_wait),
        "timer_lag_ms": loadgen.timer_lag(),
        "servers": {},
    }
    with tempfile.TemporaryDirectory(prefix="podgate-bench-") as scratch:
        workdir = Path(scratch)
        pki = write_pki(workdir / "pki").ca.parent
        for name in ("podgate", "floor"):
            print(f"{name}: serving on CPU {SERVER_CPU}, load from CPU {GENERATOR_CPU}", flush=True)
            figures = measure_server(name, pki, workdir, plan)
            figures["ready_s"] = ready_times(name, pki, workdir, plan.starts)
            figures["ready_median_s"] = statistics.median(figures["ready_s"])
            results["servers"][name] = figures
        results["wrk"] = wrk_check.cross_check(pki, workdir, SERVER_CPU, GENERATOR_CPU, plan.seconds)
    results["busy_elsewhere_after"] = benchlib.busy_elsewhere()
    podgate, floor = results["servers"]["podgate"], results["servers"]["floor"]
    results["ratio_to_floor"] = {
        path: round(
            podgate["endpoints"][path]["max"]["achieved_rps"]
            / floor["endpoints"][path]["max"]["achieved_rps"],
            2,
        )
        for path in podgate["endpoints"]
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement (default 5)")
    parser.add_argument("--rates", default="100,250,500,750,1000,1500", help="fixed rates, req/s")
    parser.add_argument("--starts", type=int, default=5, help="starts timed to /readyz (default 5)")
    parser.add_argument("--quick", action="store_true", help="1.5 s per measurement, 3 rates, 2 starts")
    args = parser.parse_args()
    if args.quick:  # a smoke run: short, and it neither waits for a quiet machine nor repeats
        plan = Plan([100, 500, 1000], 1.5, 2, 0, 0, benchlib.Retrier(0))
    else:
        rates = [int(rate) for rate in args.rates.split(",")]
        plan = Plan(rates, args.seconds, args.starts, MIN_SAMPLES, 90, benchlib.Retrier(RETRY_BUDGET))
    # This process is the load generator: keep it off the server's CPU.
    benchlib.pin(GENERATOR_CPU)
    started = time.monotonic()
    results = run(plan)
    results["wall_seconds"] = round(time.monotonic() - started)
    path = benchlib.write_results("server", results, quick=args.quick)
    image = plot.latency_vs_rate(results, benchlib.results_dir(args.quick) / "latency-vs-rate.png")
    print(f"wrote {path.relative_to(benchlib.REPO)} and {image.relative_to(benchlib.REPO)}")


if __name__ == "__main__":
    main()
