"""How long the pure engine takes per AdmissionReview: parse + evaluate + response, on the captured fixtures.

Run: .venv/bin/python benchmarks/engine_bench.py [--policies policies] [--rounds 2000]
Prints per-fixture-kind p50/p99 in microseconds and the policy-load time. Not a test: figures vary by machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from webhook import evaluate, load_policies
from webhook.review import parse_review, response

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "admission-reviews"
CASES = {
    "pod, 1 container (0001)": "0001",
    "pod, 2 containers, denied (0012)": "0012",
    "pod, init + app (0009)": "0009",
    "deployment (0040)": "0040",
    "pod UPDATE, unchanged (0030)": "0030",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policies", default="policies")
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()

    started = time.perf_counter()
    policies = load_policies(args.policies)
    load_ms = (time.perf_counter() - started) * 1000
    print(f"policies: {len(policies.policies)} policies from {args.policies}, loaded in {load_ms:.1f} ms")
    print(f"{'case':36} {'p50 µs':>8} {'p99 µs':>8} {'patch ops':>9}")
    for label, prefix in CASES.items():
        body = next(FIXTURES.glob(f"{prefix}_*.json")).read_bytes()
        phase = "mutate" if "_mutate_" in next(FIXTURES.glob(f"{prefix}_*.json")).name else "validate"
        samples = []
        ops = 0
        for _ in range(args.rounds):
            t0 = time.perf_counter_ns()
            review = parse_review(body)
            decision = evaluate(policies, review.raw_request)
            json.dumps(response(review, decision, phase))
            samples.append((time.perf_counter_ns() - t0) / 1000)
            ops = len(decision.patch)
        samples.sort()
        p50 = statistics.median(samples)
        p99 = samples[int(len(samples) * 0.99) - 1]
        print(f"{label:36} {p50:8.0f} {p99:8.0f} {ops:9d}")


if __name__ == "__main__":
    main()
