"""Benchmark `podgate serve`: worker models under kept-alive load, latency percentiles, start-up time.

    .venv/bin/python benchmarks/server_bench.py [--requests N] [--concurrency 1,4,16] [--models sync,gthread]

Starts the real server (TLS, the shipped policies, a throwaway CA) on a free loopback port for each
worker model, posts fixture 0011 to /mutate from client threads that each hold one HTTPS connection
(kept alive when the server allows it, like the kube-apiserver), and prints a Markdown table. The load
generator runs on the same machine, so absolute figures include its CPU use; compare rows, not hosts.
Bounded: at most --requests per cell and --max-seconds per cell.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.serving_support import APISERVER_HEADERS, FIXTURES, client_context, free_port, write_pki  # noqa: E402

BODY = next(FIXTURES.glob("0011_*.json")).read_bytes()


def child(model: str) -> None:
    """Run the server in this process with `model` as gunicorn's worker class (benchmark-only switch)."""
    from webhook import logs
    from webhook.cli.serve import prepare_metrics_dir
    from webhook.settings import load_settings

    settings = load_settings({}, os.environ)
    logs.configure("WARNING")
    prepare_metrics_dir(None)
    from webhook import serving

    policies, certificates = serving.open_sources(settings)
    server = serving.WebhookServer(settings, policies, certificates)
    server.cfg.set("worker_class", model)
    if model == "sync":
        server.cfg.set("threads", 1)  # gunicorn quietly turns "sync" into gthread when threads > 1
    server.cfg.set("logconfig_dict", logs.gunicorn_logconfig("WARNING"))
    server.run()


def start(
    model: str, pki_dir: Path, workers: int, threads: int
) -> tuple[subprocess.Popen[bytes], int, float]:
    pki = write_pki(pki_dir)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODGATE_")}
    env.update(
        PODGATE_POLICIES=str(REPO / "policies"),
        PODGATE_CERT=str(pki.cert),
        PODGATE_KEY=str(pki.key),
        PODGATE_BIND=f"127.0.0.1:{port}",
        PODGATE_WORKERS=str(workers),
        PODGATE_THREADS=str(threads),
    )
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", model], env=env, stderr=subprocess.DEVNULL
    )
    context = client_context(pki.ca)
    while True:
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return process, port, time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > 30 or process.poll() is not None:
            raise SystemExit(f"{model}: server did not become ready")
        time.sleep(0.01)


def load(port: int, ca: Path, concurrency: int, requests: int, max_seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    connects = [0]
    errors = [0]
    lock = threading.Lock()
    remaining = [requests]
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        context = client_context(ca)
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
        mine: list[float] = []
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] == 0:
                    break
                remaining[0] -= 1
            if conn.sock is None:
                connects[0] += 1  # http.client reconnects by itself after "Connection: close"
            began = time.perf_counter()
            try:
                conn.request("POST", "/mutate?timeout=10s", body=BODY, headers=APISERVER_HEADERS)
                reply = conn.getresponse()
                data = reply.read()
                ok = reply.status == 200 and json.loads(data)["response"]["allowed"] is True
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
            mine.append(time.perf_counter() - began)
            if not ok:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    began = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "connections": connects[0],
        "rps": len(latencies) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--models", default="sync,gthread")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0

    print(
        f"# podgate serve benchmark: {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{args.workers} workers, {args.threads} threads (gthread), fixture 0011 to /mutate\n"
    )
    print(
        "| model | concurrency | requests | errors | TLS connections | req/s | p50 ms | p99 ms | ready in s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory() as scratch:
            process, port, ready = start(model, Path(scratch), args.workers, args.threads)
            try:
                # Warm up: first requests import lazily and fill caches.
                load(port, Path(scratch) / "ca.pem", 2, 50, args.max_seconds)
                for concurrency in (int(c) for c in args.concurrency.split(",")):
                    r = load(port, Path(scratch) / "ca.pem", concurrency, args.requests, args.max_seconds)
                    print(
                        f"| {model} | {concurrency} | {r['requests']:.0f} | {r['errors']:.0f} | "
                        f"{r['connections']:.0f} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                        f"{ready:.2f} |",
                        flush=True,
                    )
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
