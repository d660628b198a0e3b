"""Pod creates against the kube-apiserver from several client processes, each a few keep-alive connections.

Why processes: the clients are Python (http.client over a verified TLS context, the kubeconfig's token),
and twenty threads in one interpreter would queue for its GIL, which would show up as apiserver latency.
Each process runs `threads` connections, one per thread; a shared counter hands out pod numbers, so the
batch ends when the last pod is created whichever clients were quickest. Each process's CPU time is
reported by the caller from /proc, so a saturated client is visible rather than mistaken for a slow
apiserver.
"""

from __future__ import annotations

import contextlib
import http.client
import multiprocessing
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from apiserver_cluster import client_context

# One sample: (start, seconds, HTTP status or 0 for a connection error, patched as expected?)
Sample = tuple[float, float, int, bool]


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    token: str
    ca_pem: str
    path: str  # e.g. /api/v1/namespaces/bench/pods


@dataclass(frozen=True)
class Batch:
    total: int
    prefix: str
    template: bytes  # a pod whose name is the placeholder NAME_HERE
    marker: bytes  # a string only the patched pod contains (podgate's patch, or its replay)
    patched: bool  # whether the created pods must carry the marker


PLACEHOLDER = b"NAME_HERE"


def _client(pipe: Connection, target: Target, threads: int, counter: Any) -> None:
    context = client_context(target.ca_pem)
    headers = {
        "Authorization": f"Bearer {target.token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    connections = [
        http.client.HTTPSConnection(target.host, target.port, context=context, timeout=30)
        for _ in range(threads)
    ]
    for connection in connections:
        connection.connect()  # the handshakes happen now, never inside a timed batch

    def run(index: int, batch: Batch, out: list[Sample]) -> None:
        connection = connections[index]
        while True:
            with counter.get_lock():
                number = counter.value
                counter.value += 1
            if number >= batch.total:
                return
            body = batch.template.replace(PLACEHOLDER, f"{batch.prefix}-{number:05d}".encode())
            started = time.perf_counter()
            try:
                connection.request("POST", target.path, body=body, headers=headers)
                reply = connection.getresponse()
                data = reply.read()
                status = reply.status
            except (OSError, http.client.HTTPException):
                connection.close()  # http.client dials again on the next request
                out.append((started, time.perf_counter() - started, 0, False))
                continue
            took = time.perf_counter() - started
            out.append((started, took, status, (batch.marker in data) == batch.patched))

    while (batch := pipe.recv()) is not None:
        results: list[list[Sample]] = [[] for _ in connections]
        workers = [
            threading.Thread(target=run, args=(index, batch, results[index]))
            for index in range(len(connections))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        pipe.send([sample for samples in results for sample in samples])
    for connection in connections:
        connection.close()


class ClientPool:
    """`clients` concurrent connections spread over `processes` processes (at most one per client)."""

    def __init__(self, target: Target, clients: int, processes: int) -> None:
        # spawn, not fork: the benchmark process has threads of its own (a watch, the servers' pipes).
        context = multiprocessing.get_context("spawn")
        self.counter = context.Value("l", 0)
        processes = max(1, min(processes, clients))
        shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
        self.pipes: list[Connection] = []
        self.processes = []
        for share in shares:
            mine, theirs = context.Pipe()
            process = context.Process(target=_client, args=(theirs, target, share, self.counter), daemon=True)
            process.start()
            self.pipes.append(mine)
            self.processes.append(process)
        self.clients = clients

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes if process.pid is not None]

    def run(self, batch: Batch) -> list[Sample]:
        with self.counter.get_lock():
            self.counter.value = 0
        for pipe in self.pipes:
            pipe.send(batch)
        samples: list[Sample] = []
        for pipe in self.pipes:
            samples += pipe.recv()
        return samples

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
