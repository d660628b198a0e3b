"""The one plot BENCHMARKS.md shows: latency (p50, p99) against offered request rate, podgate and floor.

Needs matplotlib (`pip install -e '.[bench]'`, which `make bench` does). A rate the server could not
keep up with (fewer answers than offered) is drawn with a hollow marker: beyond it, latency is
queueing that grows with the length of the run, not a property of the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGET_P99_MS = 10.0
STYLE = {"podgate": "tab:red", "floor": "tab:blue"}


def latency_vs_rate(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a build machine
    import matplotlib.pyplot as plt

    endpoints = list(results["servers"]["podgate"]["endpoints"])
    figure, axes = plt.subplots(1, len(endpoints), figsize=(10, 4), sharey=True)
    for axis, endpoint in zip(axes, endpoints, strict=True):
        for name, server in results["servers"].items():
            rates = server["endpoints"][endpoint]["rates"]
            offered = [r["offered_rps"] for r in rates]
            for stat, line in (("p50_ms", "-"), ("p99_ms", "--")):
                values = [r[stat] for r in rates]
                axis.plot(offered, values, line, color=STYLE[name], label=f"{name} {stat[:3]}")
                kept = [_kept_up(r) for r in rates]
                axis.scatter(
                    offered,
                    values,
                    color=[STYLE[name] if ok else "white" for ok in kept],
                    edgecolors=STYLE[name],
                    zorder=3,
                    s=22,
                )
        axis.axhline(TARGET_P99_MS, color="grey", linewidth=0.8, linestyle=":")
        axis.text(offered[0], TARGET_P99_MS * 1.08, "p99 target", color="grey", fontsize=8)
        axis.set_yscale("log")
        axis.set_title(f"POST {endpoint}")
        axis.set_xlabel("offered rate (requests/s, open loop)")
        axis.grid(True, which="both", linewidth=0.3)
    axes[0].set_ylabel("latency from due time (ms)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    machine = results["machine"]
    figure.suptitle(
        f"podgate vs floor, 1 server CPU + 1 generator CPU ({machine['cpu']}, Python {machine['python']})",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0.06, 1, 1))  # room for the legend below the axes
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _kept_up(rate: dict[str, Any]) -> bool:
    return bool(rate["not_sent"] == 0 and rate["achieved_rps"] >= 0.98 * rate["offered_rps"])


if __name__ == "__main__":
    import benchlib

    data = benchlib.read_results("server")
    if data is None:
        raise SystemExit("no benchmarks/results/server.json yet: run benchmarks/server_bench.py")
    print(latency_vs_rate(data, benchlib.RESULTS / "latency-vs-rate.png"))
