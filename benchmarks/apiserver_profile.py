"""Where a podgate worker's CPU goes while a real kube-apiserver calls it, under the pod-create load.

    .venv/bin/pip install -e '.[bench]'        # py-spy; perf (linux-perf) is used too when it is installed
    .venv/bin/python benchmarks/apiserver_profile.py [--seconds 45] [--clients 20] [--side podgate]

Sets up what apiserver_bench.py sets up (the control plane of ../shared/k8s, podgate as deploy/ ships
it, deploy/'s webhook configurations), registers podgate, and keeps `--clients` clients creating
test-labelled pods while two samplers watch the gunicorn master and its workers for `--seconds`:

- `py-spy record --gil`: the Python stack of whichever thread holds the GIL, i.e. runs Python. Each
  sample is charged to the innermost frame that belongs to a known part of the request path (gunicorn's
  worker loop, its HTTP parsing, Werkzeug, Flask, podgate's view, the review's parsing, the engine,
  metrics, logging, TLS); frames of anything else (copy, json, re, ...) count for
  the part that called them.
- `perf record -e cpu-clock`: all of the workers' CPU by shared object (the interpreter, the kernel,
  OpenSSL, orjson, libc), which py-spy cannot see.

Prints the tables; writes results/apiserver-profile-SIDE-cCLIENTS.json, and the raw samples (py-spy's
collapsed stacks, perf.data) to /tmp/podgate-apiserver-profile/.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
from apiserver_load import Batch, ClientPool
from apiserver_rig import MARKER, SET_LABEL, Options, Rig

PY_SPY = Path(sys.executable).parent / "py-spy"
# (part, pattern on "function (file:line)"), tried on the innermost frame first; the first that matches wins.
# The patterns name modules, not packages, so they hold before and after webhook/ is regrouped.
PARTS: list[tuple[str, re.Pattern[str]]] = [
    (part, re.compile(pattern))
    for part, pattern in (
        ("TLS (the ssl module)", r"/ssl\.py"),
        ("metrics", r"prometheus_client/|webhook/(server/)?metrics\.py"),
        ("logging (podgate's line)", r"/logging/|webhook/(server/)?logs\.py"),
        ("podgate: parse the review, build the answer",
         r"webhook/(server/|kube/)?(review|request|jsoncodec)\.py"),
        ("podgate: engine", r"webhook/(engine|rules|mutators|validators|policy|kube|decision|match|index|"
                            r"patch|pods|quantity|selector|limits|workloads|optout|k8snames)"),
        ("podgate: view, socket deadline, reload",
         r"webhook/(server/)?(app|serving|tls|reload|settings)\.py"),
        ("Flask", r"/flask/"),
        ("Werkzeug", r"/werkzeug/"),
        ("gunicorn: HTTP parsing, response writing", r"gunicorn/http/"),
        ("gunicorn: worker loop, HTTP parsing, heartbeat", r"gunicorn/"),
        ("thread hand-off (concurrent.futures, threading)", r"concurrent/futures|threading\.py|queue\.py"),
        ("socket and selector calls", r"/socket\.py|/selectors\.py"),
    )
]  # fmt: skip


def part_of(frames: list[str]) -> str:
    """The part a sample is charged to; `frames` are outermost first, as py-spy writes them."""
    for frame in reversed(frames):
        for part, pattern in PARTS:
            if pattern.search(frame):
                return part
    return "other"


def summarize(raw: Path) -> dict[str, Any]:
    """py-spy's raw (collapsed) output: `process ...;process ...;thread (tid): name;frame;... count`."""
    parts: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text:
            continue
        count = int(count_text)
        stack = stack_text.split(";")
        thread = next((entry for entry in stack if entry.startswith("thread ")), "")
        frames = [entry for entry in stack if not entry.startswith(("process ", "thread "))]
        parts[part_of(frames)] += count
        functions[frames[-1] if frames else "?"] += count
        threads["request threads" if "ThreadPoolExecutor" in thread else "other threads (gthread loop)"] += (
            count
        )
        total += count
    return {
        "samples": total,
        "parts": {name: round(100 * n / total, 1) for name, n in parts.most_common()},
        "threads": {name: round(100 * n / total, 1) for name, n in threads.most_common()},
        "top_functions": [(_short(name), round(100 * n / total, 1)) for name, n in functions.most_common(25)],
    }


def _short(frame: str) -> str:
    """`function (/long/path/site-packages/pkg/mod.py:12)` -> `function (pkg/mod.py:12)`."""
    return re.sub(r"\((?:.*/site-packages/|.*/lib/python3\.\d+/|.*?/(?=webhook/))", "(", frame)


def native(perf_data: Path) -> dict[str, Any]:
    """perf's view of the same window: the workers' CPU by shared object (OpenSSL, the interpreter, the
    kernel, ...) and the top symbols. py-spy only sees the interpreter's frames; this sees all of it."""

    def report(sort: str, limit: str) -> list[tuple[str, float]]:
        command = ["perf", "report", "-i", str(perf_data), "--stdio", "--no-children", "--sort", sort]
        done = subprocess.run(
            [*command, "--percent-limit", limit], capture_output=True, text=True, check=True
        )
        return _perf_rows(done.stdout)

    return {"by_object": report("dso", "0.5"), "top_symbols": report("dso,sym", "1")[:25]}


def _perf_rows(text: str) -> list[tuple[str, float]]:
    rows = []
    for line in text.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+(.*\S)", line)
        if match and not line.lstrip().startswith("#"):
            rows.append((re.sub(r"\s+", " ", match[2]), float(match[1])))
    return rows


def samplers(
    args: argparse.Namespace, pids: list[int], raw: Path, perf_data: Path
) -> list[subprocess.Popen[bytes]]:
    """py-spy on the gunicorn master and its workers and, where installed, perf on the same processes."""
    # --gil: only the thread holding the GIL, i.e. running Python. Without it py-spy counts every runnable
    # thread, and on a busy 2-CPU machine a thread woken from a queue or a poll waits for a CPU in state
    # R: that would read as work in queue.get and select(). --nonblocking: the workers are not paused.
    spy = [str(PY_SPY), "record", "--pid", str(pids[0]), "--subprocesses", "--gil", "--nonblocking",
           "--duration", str(args.seconds), "--rate", str(args.rate), "--format", "raw", "--full-filenames",
           "--function", "--threads", "--output", str(raw)]  # fmt: skip
    commands = [spy]
    if shutil.which("perf"):
        processes = ",".join(map(str, pids))
        perf = ["perf", "record", "--quiet", "-e", "cpu-clock", "-F", str(args.rate), "-p", processes]
        commands.append([*perf, "-o", str(perf_data), "--", "sleep", str(args.seconds)])
    return [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for command in commands
    ]


def profile(args: argparse.Namespace) -> dict[str, Any]:
    if not PY_SPY.exists():
        raise SystemExit(f"{PY_SPY} missing: .venv/bin/pip install -e '.[bench]'")
    # The raw samples are for reading with py-spy's and perf's own tools, not for the repository.
    out_dir = Path(tempfile.gettempdir()) / "podgate-apiserver-profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"{args.side}-c{args.clients}.py-spy.txt"
    perf_data = out_dir / f"{args.side}-c{args.clients}.perf.data"
    with Rig(Options([args.side], args.podgate, keep=args.keep)) as rig:
        webhook = rig.webhooks[args.side]
        pool = ClientPool(rig.target(), args.clients, args.client_processes)
        try:
            rig.batch(pool, args.side, 100, "profile-warm")  # registers, warms up and checks the side
            cpu_before = webhook.cpu()
            tools = samplers(args, webhook.pids(), raw, perf_data)
            created, started = 0, time.perf_counter()
            while any(tool.poll() is None for tool in tools):
                pool.run(Batch(200, f"profile-{created}", rig.template(), MARKER, True))
                created += 200
                rig.api.delete_pods(f"{SET_LABEL}=load")  # the worker is idle meanwhile: no samples
            seconds = time.perf_counter() - started
            cpu = webhook.cpu() - cpu_before
            for tool in tools:
                if tool.returncode:
                    error = tool.stderr.read().decode() if tool.stderr else ""
                    raise RuntimeError(f"{tool.args[0]} failed: {error}")
        finally:
            pool.close()
        figures = summarize(raw)
        figures["native"] = native(perf_data) if perf_data.exists() else None
        figures.update(
            side=args.side,
            settings=webhook.settings,
            clients=args.clients,
            seconds=round(seconds, 1),
            pods=created,
            webhook_cpus=round(cpu / seconds, 2),
            webhook_cpu_ms_per_pod=round(cpu / created * 1000, 3),
            rate=args.rate,
            machine=benchlib.machine(),
            podgate_pythonpath=os.environ.get("PYTHONPATH"),
            loadavg=Path("/proc/loadavg").read_text().split()[:3],
        )
    return figures


def render(figures: dict[str, Any]) -> str:
    head = (
        f"{figures['side']} ({figures['settings']}), {figures['clients']} clients, {figures['pods']} pods in "
        f"{figures['seconds']} s: podgate used {figures['webhook_cpus']} CPUs, "
        f"{figures['webhook_cpu_ms_per_pod']} ms per pod created (two reviews). "
        f"Load average {' '.join(figures['loadavg'])}."
    )
    parts = benchlib.table(
        ["part of the request path (py-spy --gil)", "share of Python samples"],
        [(part, f"{share}%") for part, share in figures["parts"].items()],
    )
    top = benchlib.table(
        ["innermost Python function", "share"],
        [(name, f"{share}%") for name, share in figures["top_functions"][:15]],
    )
    text = f"{head}\n\n{parts}\n\nThreads: {figures['threads']}; {figures['samples']} samples.\n\n{top}"
    if figures.get("native"):
        objects = benchlib.table(
            ["shared object (perf, cpu-clock)", "share of the workers' CPU"],
            [(name, f"{share}%") for name, share in figures["native"]["by_object"]],
        )
        symbols = benchlib.table(
            ["shared object, symbol", "share"],
            [(name, f"{share}%") for name, share in figures["native"]["top_symbols"]],
        )
        text += f"\n\n{objects}\n\n{symbols}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=45)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second (200)")
    parser.add_argument("--side", default="podgate", help="podgate or podgate-wNtM")
    parser.add_argument("--podgate", type=Path, default=benchlib.REPO / ".venv" / "bin" / "podgate")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    figures = profile(args)
    path = benchlib.write_results(f"apiserver-profile-{args.side}-c{args.clients}", figures)
    print(render(figures))
    raw = Path(tempfile.gettempdir()) / "podgate-apiserver-profile"
    print(f"\nwrote {path.relative_to(benchlib.REPO)}; raw samples in {raw}")


if __name__ == "__main__":
    main()
