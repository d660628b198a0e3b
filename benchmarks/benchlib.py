"""What every benchmark here shares: paths, CPU pinning, percentiles, the machine's description, results.

The benchmarks run as scripts (`python benchmarks/engine_bench.py`), so this directory is first on
sys.path and its modules import each other by plain name; the repository root is added for `webhook`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))

FIXTURES = REPO / "tests" / "fixtures" / "admission-reviews"
POLICIES = REPO / "policies"
RESULTS = REPO / "benchmarks" / "results"
PACKAGES = ("podgate", "flask", "werkzeug", "gunicorn", "orjson", "prometheus-client", "pyyaml", "jsonschema")


def pin(cpu: int) -> int:
    """Run this process on `cpu` only, so a measurement is one core's worth, not whatever was idle."""
    available = sorted(os.sched_getaffinity(0))
    chosen = cpu if cpu in available else available[-1]
    os.sched_setaffinity(0, {chosen})
    return chosen


def fixture(prefix: str) -> Path:
    return next(FIXTURES.glob(f"{prefix}_*.json"))


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (no interpolation: a real sample)."""
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(latencies_s: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max, in milliseconds, of latencies given in seconds."""
    ordered = sorted(latencies_s)
    return {
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p90_ms": percentile(ordered, 0.90) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": (ordered[-1] if ordered else float("nan")) * 1000,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "webhook"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    # webhook/ with uncommitted edits is what was measured, not HEAD: say so.
    return f"{head}{' + uncommitted webhook/ changes' if dirty else ''}"


def machine() -> dict[str, Any]:
    """Where and with what the figures were taken, gathered rather than typed in."""
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "openssl": __import__("ssl").OPENSSL_VERSION,
        "packages": {name: _version(name) for name in PACKAGES},
        "commit": _git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a server the benchmark started, as a cluster would, then SIGKILL it after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def busy_cpu_seconds() -> float:
    """CPU time spent by everything on the machine since boot (all CPUs, /proc/stat), in seconds.

    A measurement's share of it minus its own processes' CPU time is foreign load: another test
    suite or build on the same CPUs, which would otherwise pass for the server's own slowness.
    """
    # The "cpu" line: user nice system idle iowait irq softirq steal ...; all but idle and iowait.
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def busy_elsewhere(seconds: float = 1.0) -> float:
    """CPUs' worth of work other processes do while this one sleeps: about 0 on a quiet machine."""
    before = busy_cpu_seconds()
    time.sleep(seconds)
    return round((busy_cpu_seconds() - before) / seconds, 2)


def wait_for_quiet(limit: float = 90.0, threshold: float = 0.15) -> float:
    """Wait (at most `limit` seconds) until the machine has been idle for 2 s; returns the last reading.

    A test suite or build running beside the benchmark takes CPU from the server or the generator
    and shows up as latency; better to start late than to measure someone else's work.
    """
    deadline = time.monotonic() + limit
    busy = busy_elsewhere(2.0)
    if busy > threshold and limit > 0:
        print(f"waiting up to {limit:.0f} s for a quiet machine: {busy:.2f} CPUs busy elsewhere", flush=True)
    while busy > threshold and time.monotonic() < deadline:
        busy = busy_elsewhere(2.0)
    if busy > threshold:
        print(f"warning: the machine is not idle ({busy:.2f} CPUs busy elsewhere); figures will be noisy")
    return busy


# Other processes' CPU use above this during a measurement makes it a measurement of them.
NOISY_CPUS = 0.25


class Retrier:
    """Measures again, once the machine is quiet, what other processes disturbed; within a time budget.

    Other sessions' test suites come and go on a shared machine. A disturbed measurement is repeated
    once after waiting for quiet, until `budget` seconds have gone on repeats; the figures keep the
    last attempt's "other load", so a verdict built on a still-disturbed figure can say so.
    """

    def __init__(self, budget: float) -> None:
        self.deadline = time.monotonic() + budget

    def __call__(self, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        figures = measure()
        if figures["foreign_cpu"] > NOISY_CPUS and time.monotonic() < self.deadline:
            print(f"  other load {figures['foreign_cpu']} CPUs: measuring again once it is quiet", flush=True)
            wait_for_quiet(min(30.0, max(0.0, self.deadline - time.monotonic())))
            figures = measure()
            figures["repeated"] = True
        return figures


def results_dir(quick: bool = False) -> Path:
    """Smoke runs (--quick) write beside, not over, the figures BENCHMARKS.md shows."""
    return RESULTS / "quick" if quick else RESULTS


def write_results(name: str, data: dict[str, Any], quick: bool = False) -> Path:
    results_dir(quick).mkdir(parents=True, exist_ok=True)
    path = results_dir(quick) / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def read_results(name: str, quick: bool = False) -> dict[str, Any] | None:
    path = results_dir(quick) / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table: readable on a terminal and pasteable into BENCHMARKS.md as it is."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
