"""The figures against the targets of issue 9, from benchmarks/results/*.json, as Markdown.

    .venv/bin/python benchmarks/report.py [--write]

Prints the tables; with --write also replaces the generated part of benchmarks/BENCHMARKS.md (between
its `figures:begin` and `figures:end` markers), so the document always shows the last run's figures
and a verdict computed from them, never one typed in by hand.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import Any

import benchlib

DOC = benchlib.REPO / "benchmarks" / "BENCHMARKS.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
MIB = 1024
STAMP = "%Y-%m-%d %H:%M"  # benchlib.machine()'s date, without its time zone


def verdict(met: bool, *measurements: dict[str, Any] | None) -> str:
    said = "**met**" if met else "**short**"
    foreign = max((m.get("foreign_cpu", 0.0) for m in measurements if m), default=0.0)
    if foreign > benchlib.NOISY_CPUS:
        return f"{said}, unreliable: {foreign} CPUs of other load during the run"
    return said


def targets(engine: dict[str, Any], server: dict[str, Any]) -> str:
    case = {(c["case"], c["endpoint"]): c for c in engine["cases"]}
    mutate, validate = case[("3-container pod", "/mutate")], case[("3-container pod", "/validate")]
    scale = engine["scaling"][-1]
    podgate = server["servers"]["podgate"]
    ratios = server["ratio_to_floor"]
    at_500 = {path: _rate(podgate, path, 500) for path in podgate["endpoints"]}
    worst_p99 = max((r["p99_ms"] for r in at_500.values() if r), default=float("nan"))
    rss = max(w["rss"] for w in podgate["memory_kib"]["workers"]) / MIB
    pss = max(w["pss"] for w in podgate["memory_kib"]["workers"]) / MIB
    ready = podgate["ready_median_s"]
    maxima = [s["endpoints"][path]["max"] for s in server["servers"].values() for path in s["endpoints"]]
    rows = [
        (
            "engine ≥ 10,000 evaluations/s/core, 3-container pod, default policies",
            f"{mutate['evals_per_s']:,}/s at /mutate ({mutate['evals_per_s'] / 10000:.2f} of target); "
            f"{validate['evals_per_s']:,}/s at /validate",
            verdict(mutate["evals_per_s"] >= 10000 and validate["evals_per_s"] >= 10000, mutate, validate),
        ),
        (
            "1,000 policies cost ≤ 2x of 10",
            f"{scale['cost_vs_10']}x (p50 {scale['p50_us']} µs vs {engine['scaling'][0]['p50_us']} µs)",
            verdict(scale["cost_vs_10"] <= 2, *engine["scaling"]),
        ),
        (
            "server throughput ≥ 0.8 of the floor",
            "; ".join(f"{path} {ratio}" for path, ratio in ratios.items()),
            verdict(min(ratios.values()) >= 0.8, *maxima),
        ),
        (
            "p99 ≤ 10 ms at 500 req/s",
            "; ".join(f"{path} {r['p99_ms']:.1f} ms" for path, r in at_500.items() if r),
            verdict(worst_p99 <= 10, *at_500.values()),
        ),
        (
            "≤ 80 MB RSS per worker",
            f"{rss:.1f} MiB RSS ({rss * 1.048576:.0f} MB), {pss:.1f} MiB PSS",
            verdict(rss * 1.048576 <= 80),
        ),
        ("ready ≤ 2 s", f"{ready:.2f} s (median of {len(podgate['ready_s'])} starts)", verdict(ready <= 2)),
    ]
    return benchlib.table(["target (2 cores)", "measured", "verdict"], rows)


def _rate(server: dict[str, Any], path: str, rate: int) -> dict[str, Any] | None:
    return next((r for r in server["endpoints"][path]["rates"] if r["offered_rps"] == rate), None)


def throughput(server: dict[str, Any]) -> str:
    podgate, floor = server["servers"]["podgate"], server["servers"]["floor"]
    rows = []
    for path in podgate["endpoints"]:
        mine, base = podgate["endpoints"][path]["max"], floor["endpoints"][path]["max"]
        rows.append(
            (
                path,
                f"{mine['achieved_rps']:.0f}",
                f"{base['achieved_rps']:.0f}",
                server["ratio_to_floor"][path],
                f"{mine['server_cpu_us_per_request']} / {base['server_cpu_us_per_request']}",
                f"{mine['p50_ms']:.1f} / {mine['p99_ms']:.1f}",
                f"{mine['generator_cpu']:.0%} / {base['generator_cpu']:.0%}",
                f"{mine.get('foreign_cpu', '?')} / {base.get('foreign_cpu', '?')}",
            )
        )
    table = benchlib.table(
        [
            "endpoint",
            "podgate req/s",
            "floor req/s",
            "podgate / floor",
            "server CPU µs per request (podgate / floor)",
            "podgate p50 / p99 ms at max",
            "generator CPU (podgate / floor run)",
            "other load, CPUs",
        ],
        rows,
    )
    wrk = server.get("wrk")
    if wrk:
        podgate_rps, floor_rps = wrk["podgate"]["rps"], wrk["floor"]["rps"]
        table += (
            f"\n\nCross-check with {wrk['tool']} (C, same CPU, 16 connections, /mutate): "
            f"podgate {podgate_rps} req/s, floor {floor_rps} req/s, ratio {wrk['ratio_to_floor']}."
        )
    return table


def fixed_rates(server: dict[str, Any]) -> str:
    podgate, floor = server["servers"]["podgate"], server["servers"]["floor"]
    rows = []
    for path in podgate["endpoints"]:
        for mine, base in zip(
            podgate["endpoints"][path]["rates"], floor["endpoints"][path]["rates"], strict=True
        ):
            kept = (
                ""
                if mine["not_sent"] == 0 and mine["achieved_rps"] >= 0.98 * mine["offered_rps"]
                else " (not kept up)"
            )
            rows.append(
                (
                    path,
                    f"{mine['offered_rps']:.0f}",
                    f"{mine['achieved_rps']:.0f}{kept}",
                    f"{mine['p50_ms']:.2f} / {mine['p99_ms']:.2f} / {mine['max_ms']:.1f}",
                    f"{base['p50_ms']:.2f} / {base['p99_ms']:.2f} / {base['max_ms']:.1f}",
                    mine["requests"],
                    f"{mine.get('foreign_cpu', '?')} / {base.get('foreign_cpu', '?')}",
                )
            )
    return benchlib.table(
        [
            "endpoint",
            "offered req/s",
            "podgate answered req/s",
            "podgate p50 / p99 / max ms",
            "floor p50 / p99 / max ms",
            "samples",
            "other load, CPUs (podgate / floor run)",
        ],
        rows,
    )


def memory(server: dict[str, Any]) -> str:
    rows = []
    for name, figures in server["servers"].items():
        workers = figures["memory_kib"]["workers"]
        rows.append(
            (
                name,
                f"{figures['workers']} x {figures['threads']} threads",
                ", ".join(f"{w['rss'] / MIB:.1f}" for w in workers),
                ", ".join(f"{w['pss'] / MIB:.1f}" for w in workers),
                f"{figures['memory_kib']['master']['rss'] / MIB:.1f}",
                f"{figures['ready_median_s']:.2f} ({', '.join(f'{t:.2f}' for t in figures['ready_s'])})",
            )
        )
    return benchlib.table(
        ["server", "workers", "worker RSS MiB", "worker PSS MiB", "master RSS MiB", "ready s, median (all)"],
        rows,
    )


def engine_tables(engine: dict[str, Any]) -> str:
    import engine_bench

    return engine_bench.report(engine)


def app_table(app: dict[str, Any] | None) -> str:
    if not app:
        return "(no benchmarks/results/app.json: run benchmarks/app_profile.py)"
    import app_profile

    return app_profile.report(app)


def setting(engine: dict[str, Any], server: dict[str, Any]) -> str:
    machine = server["machine"]
    quiet = [
        f"{name} {figures.get('busy_elsewhere_before', '?')} / {figures.get('busy_elsewhere_after', '?')}"
        for name, figures in (("engine run", engine), ("server run", server))
    ]
    rows = [
        ("when, what", _when(engine["machine"], machine)),
        ("CPU", f"{machine['cpu']}, {machine['cpus']} CPUs (server on CPU 0, load generator on CPU 1)"),
        ("memory", f"{machine['memory_gib']} GiB"),
        ("system", f"{machine['os']}, kernel {machine['kernel']}"),
        ("Python, TLS", f"Python {machine['python']}, {machine['openssl']}"),
        ("packages", ", ".join(f"{k} {v}" for k, v in machine["packages"].items())),
        ("other work on the machine, CPUs busy before / after", "; ".join(quiet)),
        ("server benchmark wall time", f"{server.get('wall_seconds', '?')} s"),
    ]
    return benchlib.table(["", ""], rows)


def _when(engine: dict[str, Any], server: dict[str, Any]) -> str:
    """One line when both parts ran together; each part's date and commit when they did not."""
    apart = abs(datetime.strptime(server["date"][:16], STAMP) - datetime.strptime(engine["date"][:16], STAMP))
    if apart < timedelta(minutes=4) and engine["commit"] == server["commit"]:  # one `make bench`
        return f"{server['date']}, commit {server['commit']}"
    return (
        f"engine part {engine['date']}, commit {engine['commit']}; "
        f"server part {server['date']}, commit {server['commit']}"
    )


def render(quick: bool = False) -> str:
    engine, server, app = (benchlib.read_results(n, quick) for n in ("engine", "server", "app"))
    if engine is None or server is None:
        raise SystemExit("run benchmarks/engine_bench.py and benchmarks/server_bench.py first")
    lag = server["timer_lag_ms"]
    noise = (
        f"The generator's own wake-up lag on an idle loop, its noise floor: p50 {lag['p50_ms']} ms, "
        f"p99 {lag['p99_ms']} ms, max {lag['max_ms']} ms."
    )
    sections = {
        "Machine": setting(engine, server),
        "Against the targets": targets(engine, server),
        "Engine (one core, in-process)": engine_tables(engine),
        "Server: maximum throughput (closed loop, 16 connections)": throughput(server),
        "Server: latency at fixed rates (open loop, from each request's due time)": (
            f"{fixed_rates(server)}\n\n{noise}\n\n"
            "![latency against offered rate, podgate and floor](results/latency-vs-rate.png)"
        ),
        "Memory and start-up": memory(server),
        "Inside a worker (in-process, no sockets)": app_table(app),
    }
    return "\n\n".join(f"### {title}\n\n{body}" for title, body in sections.items())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="update the figures in benchmarks/BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true", help="the smoke run's figures; never written")
    args = parser.parse_args()
    text = render(args.quick)
    print(text)
    if args.write and args.quick:
        print("\n(a --quick run's figures are not written into BENCHMARKS.md)")
    elif args.write:
        doc = DOC.read_text()
        head, _, rest = doc.partition(BEGIN)
        _, _, tail = rest.partition(END)
        if not rest:
            raise SystemExit(f"{DOC} has no {BEGIN} marker")
        DOC.write_text(f"{head}{BEGIN}\n\n{text}\n\n{END}{tail}")
        print(f"\nupdated {DOC.relative_to(benchlib.REPO)}")


if __name__ == "__main__":
    main()
