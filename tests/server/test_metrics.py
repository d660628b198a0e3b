"""Metrics of the policy set: a lasting signal while the files do not load, and one series per set served."""

from __future__ import annotations

import os
from pathlib import Path

from tests.serving_support import PINNED_POLICIES
from webhook.server.metrics import Metrics
from webhook.server.reload import PolicySource


def samples(metrics: Metrics, prefix: str) -> dict[str, float]:
    text = metrics.render()[0].decode()
    found = {}
    for line in text.splitlines():
        # _created: when each counter was born, by the real clock; not what these tests are about.
        if line.startswith(prefix) and "_created" not in line:
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def write(path: Path, text: str, mtime: int) -> None:
    path.write_text(text)
    os.utime(path, (mtime, mtime))  # two writes within one timestamp tick must still differ


def test_the_failing_gauge_stays_up_until_a_load_succeeds(tmp_path: Path) -> None:
    now = [1.7e9]
    source = PolicySource(tmp_path, remind_every=60, clock=lambda: now[0], wall_clock=lambda: now[0])
    metrics = Metrics()
    source.subscribe(metrics.policy_reload)
    write(tmp_path / "resources.yaml", PINNED_POLICIES, 1)
    first = source.poll()
    assert first is not None and first.digest is not None
    assert samples(metrics, "podgate_policy_") == {
        'podgate_policy_reloads_total{result="loaded"}': 1.0,
        f'podgate_policy_set_info{{digest="{first.digest}"}}': 1.0,
        "podgate_policy_reload_failing": 0.0,
        "podgate_policy_last_success_timestamp_seconds": 1.7e9,
    }

    now[0] += 10
    write(tmp_path / "resources.yaml", "", 2)
    source.poll()
    now[0] += 600
    source.poll()  # a reminder: the gauge stays up, no attempt is counted
    assert samples(metrics, "podgate_policy_") == {
        'podgate_policy_reloads_total{result="loaded"}': 1.0,
        'podgate_policy_reloads_total{result="error"}': 1.0,
        f'podgate_policy_set_info{{digest="{first.digest}"}}': 1.0,
        "podgate_policy_reload_failing": 1.0,
        "podgate_policy_last_success_timestamp_seconds": 1.7e9,
    }

    write(tmp_path / "resources.yaml", PINNED_POLICIES.replace("100m", "200m"), 3)
    second = source.poll()
    assert second is not None and second.digest not in (None, first.digest)
    assert samples(metrics, "podgate_policy_") == {
        'podgate_policy_reloads_total{result="loaded"}': 2.0,
        'podgate_policy_reloads_total{result="error"}': 1.0,
        f'podgate_policy_set_info{{digest="{second.digest}"}}': 1.0,
        "podgate_policy_reload_failing": 0.0,
        "podgate_policy_last_success_timestamp_seconds": 1.7e9 + 610,
    }


def test_only_the_set_served_now_has_an_info_series() -> None:
    metrics = Metrics()
    for previous, digest in ((None, "a"), ("a", "b"), ("b", "c"), ("c", "a")):
        metrics.serving(digest, previous)
    assert samples(metrics, "podgate_policy_set_info") == {'podgate_policy_set_info{digest="a"}': 1.0}
