"""Start, watch and stop the servers under test: the real `podgate serve`, and the floor (floor_app.py).

Both run on loopback with a throwaway CA, pinned to one CPU before exec. `podgate serve` is not told
how many workers to run: it picks one per usable CPU from its affinity mask, as in a pod with a CPU
limit, and the benchmark reports what it chose (from its "ready" log line).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import benchlib
import loadgen

PODGATE = Path(sys.executable).parent / "podgate"
FLOOR = Path(__file__).resolve().parent / "floor_app.py"
READY_DEADLINE = 30.0
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    ca: Path
    log: Path
    ready_s: float = 0.0

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=loadgen.client_context(self.ca))
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            reply = conn.getresponse()
            return reply.status, reply.read()
        finally:
            conn.close()

    def workers(self) -> list[int]:
        """The gunicorn workers: the master's children."""
        children: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            children += [int(pid) for pid in (task / "children").read_text().split()]
        return children

    def ready_fields(self) -> dict[str, object]:
        """What the server said when it became ready: workers, threads, policy set."""
        for line in self.log.read_text().splitlines():
            if line.startswith("{") and '"message":"ready"' in line:
                data: dict[str, object] = json.loads(line)
                return data
        return {}

    def stop(self) -> None:
        benchlib.stop(self.process)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(name: str, pki_dir: Path, workdir: Path, cpu: int, policies: Path = benchlib.POLICIES) -> Server:
    """`name` is "podgate" or "floor"; returns once /readyz answers 200, with the time that took."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODGATE_")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.update(
        PODGATE_POLICIES=str(policies),
        PODGATE_CERT=str(pki_dir / "server.pem"),
        PODGATE_KEY=str(pki_dir / "server-key.pem"),
        PODGATE_BIND=f"127.0.0.1:{port}",
        PODGATE_METRICS_DIR=str(workdir / f"metrics-{name}-{port}"),
    )
    command = [str(PODGATE), "serve"] if name == "podgate" else [sys.executable, str(FLOOR)]
    log = workdir / f"{name}-{port}.log"
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Before exec, so the affinity is what podgate sees when it picks its worker count.
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )
    server = Server(name, process, port, pki_dir / "ca.pem", log)
    while time.perf_counter() - started < READY_DEADLINE:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if server.request("GET", "/readyz")[0] == 200:
                server.ready_s = time.perf_counter() - started
                return server
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.01)
    server.stop()
    raise RuntimeError(f"{name} was not ready in {READY_DEADLINE} s:\n{log.read_text()}")


def memory_kib(pid: int) -> dict[str, int]:
    """Rss and Pss. Workers are forked from a master that preloaded the app, so they share most of
    their pages with it: Rss counts those in every worker, Pss divides them among the sharers."""
    figures = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            figures[key.lower()] = int(rest.split()[0])
    return figures


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / TICKS
