"""A second opinion on maximum throughput from wrk (Debian's `wrk` package), when it is installed.

The Python generator reports its own CPU use, but a generator written in C settles the question of
whether it limits the maximum. wrk runs pinned to the generator's CPU, with as many kept-alive
connections, posting the same /mutate body to each server in turn. It does not verify the server's
certificate; the handshakes happen before its clock starts, so that changes nothing measured.
Skipped (None) when wrk is not on PATH: `make bench` does not need it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import servers
import workload

LUA = """\
wrk.method = "POST"
wrk.path = "/mutate?timeout=10s"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "kube-apiserver-admission"
wrk.body = io.open("{body}", "rb"):read("*a")
"""


def cross_check(
    pki: Path, workdir: Path, server_cpu: int, generator_cpu: int, seconds: float
) -> dict[str, Any] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    body = workdir / "wrk-body.json"
    body.write_bytes(workload.bodies("mutate", 3)[0])
    script = workdir / "wrk-post.lua"
    script.write_text(LUA.format(body=body))
    figures: dict[str, Any] = {
        "tool": subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout.split(" [")[0]
    }
    for name in ("podgate", "floor"):
        server = servers.start(name, pki, workdir, server_cpu)
        try:
            command = [
                wrk,
                "-t1",
                "-c16",
                f"-d{max(2, round(seconds))}s",
                "-s",
                str(script),
                f"https://127.0.0.1:{server.port}/",
            ]
            output = subprocess.run(
                command,
                capture_output=True,
                text=True,
                check=True,
                preexec_fn=lambda: os.sched_setaffinity(0, {generator_cpu}),
            ).stdout
        finally:
            server.stop()
        rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
        figures[name] = {
            "rps": round(float(rate.group(1))) if rate else None,
            "non_2xx": int(errors.group(1)) if errors else 0,
        }
    podgate, floor = figures["podgate"]["rps"], figures["floor"]["rps"]
    figures["ratio_to_floor"] = round(podgate / floor, 2) if podgate and floor else None
    return figures
