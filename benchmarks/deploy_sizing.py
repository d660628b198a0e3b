"""Figures behind deploy/: memory, CPU per review and latency of `podgate serve` run as deployed.

    .venv/bin/python benchmarks/deploy_sizing.py [--workers 2] [--requests 4000] [--concurrency 4]

Starts the real server (TLS, policies/, a throwaway CA, PODGATE_WORKERS as in deploy/deployment.yaml)
on a free loopback port, measures its processes idle, posts every captured AdmissionReview fixture in
turn (each to its own endpoint) from client threads that each keep one HTTPS connection alive, like
the kube-apiserver, and measures again. Prints a Markdown table for benchmarks/README-deploy.md.
The load generator shares the machine, so latency includes its CPU use. Bounded by --requests and
--max-seconds.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.serving_support import Server, fixture_files, serve, write_pki  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """The gunicorn master and its workers."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        pids.extend(int(c) for c in children)
    return pids


def memory_kib(pid: int) -> dict[str, int]:
    """Rss and Pss: forked workers share the master's pages, so Pss is what the cgroup really holds."""
    figures = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            figures[key] = int(rest.split()[0])
    return figures


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def snapshot(server: Server) -> tuple[list[int], int, int]:
    pids = tree(server.process.pid)
    figures = [memory_kib(p) for p in pids]
    return pids, sum(f["Rss"] for f in figures), sum(f["Pss"] for f in figures)


def load(server: Server, requests: int, concurrency: int, max_seconds: float) -> list[float]:
    reviews = [
        (f"/{phase}", path.read_bytes()) for phase in ("mutate", "validate") for path in fixture_files(phase)
    ]
    feed = itertools.islice(itertools.cycle(reviews), requests)
    lock = threading.Lock()
    latencies: list[float] = []
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        conn = server.connect()
        try:
            while time.monotonic() < deadline:
                with lock:
                    item = next(feed, None)
                if item is None:
                    return
                started = time.perf_counter()
                status, _ = server.post_review(item[0], item[1], conn)
                elapsed = time.perf_counter() - started
                if status != 200:
                    raise RuntimeError(f"{item[0]} answered {status}")
                with lock:
                    latencies.append(elapsed)
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--policies", type=Path, default=REPO / "policies")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="podgate-sizing-") as tmp:
        work = Path(tmp)
        with serve(args.policies.resolve(), write_pki(work), work, workers=args.workers) as server:
            time.sleep(1.0)  # let the workers finish importing before the idle reading
            pids, idle_rss, idle_pss = snapshot(server)
            cpu_before = cpu_seconds(pids)
            started = time.perf_counter()
            latencies = load(server, args.requests, args.concurrency, args.max_seconds)
            wall = time.perf_counter() - started
            cpu_used = cpu_seconds(pids) - cpu_before
            _, busy_rss, busy_pss = snapshot(server)
            metrics_bytes = sum(f.stat().st_size for f in (work / "metrics").iterdir())

    done = len(latencies)
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(done - 1, int(done * 0.99))]
    print(f"`podgate serve`, {args.workers} workers, {len(pids) - 1} worker processes, {done} reviews")
    print(f"over {args.concurrency} kept-alive connections in {wall:.1f} s ({done / wall:.0f} reviews/s)\n")
    print("| figure | value |")
    print("| --- | --- |")
    print(f"| memory idle, Pss (Rss) | {idle_pss / 1024:.1f} MiB ({idle_rss / 1024:.1f} MiB) |")
    print(f"| memory after load, Pss (Rss) | {busy_pss / 1024:.1f} MiB ({busy_rss / 1024:.1f} MiB) |")
    print(f"| server CPU per review | {cpu_used / done * 1000:.2f} ms |")
    print(f"| latency p50 / p99 / max | {statistics.median(ms):.1f} / {p99:.1f} / {ms[-1]:.1f} ms |")
    print(f"| prometheus multiprocess files | {metrics_bytes / 1024:.0f} KiB |")


if __name__ == "__main__":
    main()
