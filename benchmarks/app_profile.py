"""Where a review's time goes inside a worker: the WSGI apps called directly, no sockets, no TLS.

    .venv/bin/python benchmarks/app_profile.py [--rounds 3000] [--profile]

The server benchmark gives server CPU per request for podgate and for the floor; this splits the
difference. Each variant answers the 3-container /mutate review on one core:
- floor: benchmarks/floor_app.py (Flask, decode, admit);
- podgate: webhook.server.app.create_app as served (multiprocess metrics files, one JSON log line per review);
- podgate without its log line, and without metrics: what each of those costs;
- engine: parse, evaluate, respond, encode, as in engine_bench.py: the part policies decide.
`--profile` prints the functions podgate's app spends the most time in (cProfile, by own time).
Writes benchmarks/results/app.json.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import benchlib
import workload

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def environ(body: bytes) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(
        path="/mutate",
        method="POST",
        base_url="https://127.0.0.1:8443",
        query_string="timeout=10s",
        data=body,
        headers=[("User-Agent", "kube-apiserver-admission"), ("Accept-Encoding", "gzip")],
        content_type="application/json",
    )
    try:
        return builder.get_environ()
    finally:
        builder.close()


def call(app: WsgiApp, template: dict[str, Any], body: bytes) -> None:
    request = dict(template)
    request["wsgi.input"] = io.BytesIO(body)
    statuses = []
    answer = app(request, lambda status, headers, *_: statuses.append(status))
    b"".join(answer)
    getattr(answer, "close", lambda: None)()
    if not statuses or not statuses[0].startswith("200"):
        raise SystemExit(f"unexpected answer: {statuses}")


def median_us(step: Callable[[int], None], rounds: int) -> float:
    for index in range(max(50, rounds // 20)):
        step(index)
    samples = []
    for index in range(rounds):
        before = time.perf_counter()
        step(index)
        samples.append(time.perf_counter() - before)
    return round(benchlib.percentile(sorted(samples), 0.5) * 1e6, 1)


def variants(log_file: Path) -> dict[str, WsgiApp]:
    from floor_app import create_floor_app

    from webhook.server import logs
    from webhook.server.app import create_app
    from webhook.server.metrics import Metrics
    from webhook.server.reload import PolicySource
    from webhook.server.settings import Settings

    class NoMetrics(Metrics):
        """The same app with its per-request metric updates removed."""

        def admission(self, *args: Any, **kwargs: Any) -> None:
            pass

        def acted(self, *args: Any, **kwargs: Any) -> None:
            pass

    logs.configure(stream=log_file.open("a"))
    source = PolicySource(benchlib.POLICIES)
    source.poll()
    settings = Settings(policies=benchlib.POLICIES)
    return {
        "floor": create_floor_app(),
        "podgate": create_app(source, settings, metrics=Metrics()),
        "podgate, no metrics": create_app(source, settings, metrics=NoMetrics()),
        "podgate, no log line": create_app(source, settings, metrics=Metrics()),
    }


def run(rounds: int, profile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="podgate-app-") as scratch:
        # As `podgate serve` does before prometheus_client is first imported: metrics go to mmap files.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = scratch
        from engine_bench import review_once

        from webhook import load_policies

        apps = variants(Path(scratch) / "podgate.log")
        bodies = workload.bodies("mutate", 3)
        templates = [environ(body) for body in bodies]
        admission_log = logging.getLogger("podgate.admission")
        medians = {}
        for name, app in apps.items():
            admission_log.disabled = name == "podgate, no log line"

            def serve(i: int, app: WsgiApp = app) -> None:
                call(app, templates[i % len(bodies)], bodies[i % len(bodies)])

            medians[name] = median_us(serve, rounds)
        admission_log.disabled = False
        policies = load_policies(benchlib.POLICIES)

        def engine(i: int) -> None:
            review_once(policies, bodies[i % len(bodies)], "mutate")

        medians["engine only"] = median_us(engine, rounds)
        top = ""
        if profile:
            podgate = apps["podgate"]

            def many() -> None:
                for i in range(rounds):
                    call(podgate, templates[i % len(bodies)], bodies[i % len(bodies)])

            profiler = cProfile.Profile()
            profiler.runcall(many)
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
            top = text.getvalue()
    return {"median_us": medians, "profile": top}


def report(results: dict[str, Any]) -> str:
    medians = results["median_us"]
    rows = [(name, us, f"{us - medians['floor']:+.0f}") for name, us in medians.items()]
    return "In-process, 3-container /mutate, one core:\n\n" + benchlib.table(
        ["variant", "median µs", "vs floor µs"], rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3000, help="requests per variant (default 3000)")
    parser.add_argument("--quick", action="store_true", help="500 requests per variant: a smoke run")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    cpu = benchlib.pin(args.cpu)
    results = run(500 if args.quick else args.rounds, args.profile)
    print(report(results))
    if results["profile"]:
        print(results["profile"])
    del results["profile"]
    results.update(cpu=cpu, machine=benchlib.machine())
    path = benchlib.write_results("app", results, quick=args.quick)
    print(f"\nwrote {path.relative_to(benchlib.REPO)}")


if __name__ == "__main__":
    main()
