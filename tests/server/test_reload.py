"""Hot reload: a changed policy set or certificate is built aside and swapped in; a broken one never is."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import ssl
import threading
from pathlib import Path

import pytest

from tests.serving_support import PINNED_POLICIES, write_pki
from webhook.errors import PolicyError
from webhook.server.logs import FIELDS
from webhook.server.reload import (
    CertificateSource,
    PolicySource,
    Poller,
    ReloadOutcome,
    fingerprint,
    log_outcome,
    policy_files,
)

BROKEN = """\
apiVersion: podgate.io/v1alpha1
kind: Policy
metadata:
  name: broken
spec:
  rules:
    - name: oops
      resources: {defaults: {cpu: {request: lots}}}
"""


def edited(text: str) -> str:
    """The pinned policies with another cpu default: a valid set with a different digest."""
    assert "request: 100m" in text
    return text.replace("request: 100m", "request: 200m", 1).replace("limit: 100m", "limit: 200m", 1)


def bump_mtime(path: Path) -> None:
    # Two writes within one timestamp tick must still look different to the stat check.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "resources.yaml").write_text(PINNED_POLICIES)
    return directory


def test_first_poll_loads_and_later_polls_without_changes_do_nothing(policy_dir: Path) -> None:
    source = PolicySource(policy_dir)
    assert not source.healthy() and source.current() is None
    outcome = source.poll()
    assert outcome is not None and outcome.loaded and outcome.previous is None
    current = source.current()
    assert current is not None and outcome.digest == current.digest
    assert current.names == ("requests-required", "test-defaults")
    assert source.poll() is None
    assert source.current() is current


def test_a_valid_change_is_swapped_in(policy_dir: Path) -> None:
    source = PolicySource(policy_dir)
    first = source.poll()
    assert first is not None
    (policy_dir / "resources.yaml").write_text(edited(PINNED_POLICIES))
    bump_mtime(policy_dir / "resources.yaml")
    second = source.poll()
    assert second is not None and second.loaded
    assert second.previous == first.digest != second.digest
    assert source.current() is not None and source.current().digest == second.digest  # type: ignore[union-attr]


def test_touching_a_file_without_changing_it_does_not_reload(policy_dir: Path) -> None:
    loads: list[str] = []

    def counting_loader(path: str) -> object:
        from webhook import load_policies

        loads.append(path)
        return load_policies(path)

    source = PolicySource(policy_dir, loader=counting_loader)  # type: ignore[arg-type]
    source.poll()
    bump_mtime(policy_dir / "resources.yaml")
    assert source.poll() is None
    assert len(loads) == 1


def test_a_broken_file_keeps_the_last_good_set_and_says_where(policy_dir: Path) -> None:
    source = PolicySource(policy_dir)
    good = source.poll()
    heard: list[ReloadOutcome] = []
    source.subscribe(heard.append)
    (policy_dir / "broken.yaml").write_text(BROKEN)

    outcome = source.poll()

    assert outcome is not None and not outcome.loaded and heard == [outcome]
    assert isinstance(outcome.error, PolicyError)
    assert [str(issue) for issue in outcome.error.issues] == [
        f"{policy_dir}/broken.yaml:8: spec.rules[0].resources.defaults.cpu.request: "
        "must be a quantity such as 100m or 256Mi (got 'lots')"
    ]
    assert good is not None and outcome.previous == good.digest
    assert source.healthy() and source.current() is not None
    assert source.current().digest == good.digest  # type: ignore[union-attr]
    # The same broken content is reported once, not at every poll.
    bump_mtime(policy_dir / "broken.yaml")
    assert source.poll() is None and len(heard) == 1
    # Repairing it loads the repaired set.
    (policy_dir / "broken.yaml").unlink()
    repaired = source.poll()
    assert repaired is not None and repaired.loaded and repaired.digest == good.digest


def test_a_broken_directory_at_start_leaves_the_source_unhealthy(policy_dir: Path) -> None:
    (policy_dir / "broken.yaml").write_text(BROKEN)
    source = PolicySource(policy_dir)
    outcome = source.poll()
    assert outcome is not None and not outcome.loaded and outcome.previous is None
    assert not source.healthy()


def configmap_volume(root: Path, version: str, files: dict[str, str]) -> None:
    """Lay out (or update) `root` the way the kubelet's atomic writer does for a ConfigMap volume."""
    data = root / f"..{version}"
    data.mkdir(parents=True)
    for name, text in files.items():
        (data / name).write_text(text)
    link = root / "..data_tmp"
    link.symlink_to(data.name)
    os.replace(link, root / "..data")  # the one atomic step that switches every file at once
    for name in files:
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")


def test_a_configmap_update_swaps_the_data_symlink_and_is_picked_up(tmp_path: Path) -> None:
    root = tmp_path / "mounted"
    configmap_volume(root, "2026_11_25_00_00_00.1", {"resources.yaml": PINNED_POLICIES})
    source = PolicySource(root)
    first = source.poll()
    assert first is not None and first.loaded
    assert [p.name for p in policy_files(root)] == ["resources.yaml"]

    old = root / "..2026_11_25_00_00_00.1"
    configmap_volume(root, "2026_11_25_00_01_00.2", {"resources.yaml": edited(PINNED_POLICIES)})
    shutil.rmtree(old)
    second = source.poll()
    assert second is not None and second.loaded and second.digest != first.digest


def test_fingerprint_covers_names_and_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("x")
    b.write_text("x")
    assert fingerprint([a]) != fingerprint([b])
    before = fingerprint([a])
    a.write_text("y")
    assert fingerprint([a]) != before
    assert fingerprint([tmp_path / "absent.yaml"]) == fingerprint([tmp_path / "absent.yaml"])


def presented_certificate(context: ssl.SSLContext, ca: Path) -> bytes:
    """The certificate (DER) a fresh handshake with server `context` presents to a verifying client."""
    client = ssl.create_default_context(cafile=str(ca))
    left, right = socket.socketpair()
    with left, right:
        server_side = context.wrap_socket(left, server_side=True, do_handshake_on_connect=False)
        client_side = client.wrap_socket(right, server_hostname="localhost", do_handshake_on_connect=False)
        handshake = threading.Thread(target=server_side.do_handshake)
        handshake.start()
        client_side.do_handshake()
        handshake.join()
        der = client_side.getpeercert(binary_form=True)
        assert der is not None
        return der


def test_a_rotated_certificate_is_served_to_new_connections(tmp_path: Path) -> None:
    pki = write_pki(tmp_path / "tls")
    source = CertificateSource(pki.cert, pki.key)
    assert not source.healthy()
    assert source.poll() is not None and source.healthy()
    before = source.context()
    presented = presented_certificate(before, pki.ca)

    rotated = write_pki(tmp_path / "rotated")
    shutil.copy(rotated.cert, pki.cert)
    shutil.copy(rotated.key, pki.key)
    bump_mtime(pki.cert)
    outcome = source.poll()

    assert outcome is not None and outcome.loaded
    assert source.context() is not before
    assert presented_certificate(source.context(), rotated.ca) != presented
    # A connection made before the rotation keeps the context it was given.
    assert presented_certificate(before, pki.ca) == presented


def test_a_half_rotated_pair_keeps_the_old_certificate_until_the_key_follows(tmp_path: Path) -> None:
    pki = write_pki(tmp_path / "tls")
    source = CertificateSource(pki.cert, pki.key)
    source.poll()
    before = source.context()
    rotated = write_pki(tmp_path / "rotated")

    shutil.copy(rotated.cert, pki.cert)
    bump_mtime(pki.cert)
    half = source.poll()
    assert half is not None and not half.loaded and isinstance(half.error, ssl.SSLError)
    assert source.context() is before and source.healthy()

    shutil.copy(rotated.key, pki.key)
    bump_mtime(pki.key)
    whole = source.poll()
    assert whole is not None and whole.loaded and source.context() is not before


def test_the_server_context_refuses_tls_below_1_2(tmp_path: Path) -> None:
    pki = write_pki(tmp_path / "tls")
    source = CertificateSource(pki.cert, pki.key)
    source.poll()
    assert source.context().minimum_version == ssl.TLSVersion.TLSv1_2


def test_the_poller_polls_at_once_and_then_every_interval(policy_dir: Path) -> None:
    source = PolicySource(policy_dir)
    loaded = threading.Event()
    reloaded = threading.Event()
    source.subscribe(lambda outcome: (reloaded if loaded.is_set() else loaded).set())
    poller = Poller([source], interval=0.05)
    poller.start()
    try:
        assert loaded.wait(10), "the first poll did not happen"
        (policy_dir / "resources.yaml").write_text(edited(PINNED_POLICIES))
        bump_mtime(policy_dir / "resources.yaml")
        assert reloaded.wait(10), "the change was not picked up"
    finally:
        poller.stop()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_emptying_a_file_keeps_the_last_good_set(policy_dir: Path) -> None:
    source = PolicySource(policy_dir)
    good = source.poll()
    (policy_dir / "resources.yaml").write_text("")  # `: > resources.yaml`
    bump_mtime(policy_dir / "resources.yaml")

    outcome = source.poll()

    assert outcome is not None and isinstance(outcome.error, PolicyError)
    assert str(outcome.error) == (
        f"{policy_dir}/resources.yaml:1: holds no policy document: delete the file to remove its policies"
    )
    assert good is not None and source.current() is not None
    assert source.current().digest == good.digest  # type: ignore[union-attr]
    assert source.failing()


def test_an_emptied_directory_keeps_the_last_good_set_unless_empty_is_allowed(policy_dir: Path) -> None:
    kept, emptied = PolicySource(policy_dir), PolicySource(policy_dir, allow_empty=True)
    kept.poll()
    emptied.poll()
    (policy_dir / "resources.yaml").unlink()

    refused, allowed = kept.poll(), emptied.poll()

    assert refused is not None and str(refused.error) == (
        f"{policy_dir}: no policy files (*.yaml, *.yml): with no policies podgate enforces nothing"
    )
    assert kept.current() is not None and kept.current().names == ("requests-required", "test-defaults")  # type: ignore[union-attr]
    assert allowed is not None and allowed.loaded
    assert emptied.current() is not None and emptied.current().names == ()  # type: ignore[union-attr]
    assert not emptied.failing()


def test_a_failure_is_repeated_while_it_lasts_and_not_after(policy_dir: Path) -> None:
    clock = FakeClock()
    source = PolicySource(policy_dir, remind_every=60, clock=clock, wall_clock=lambda: 1.7e9 + clock.now)
    assert source.poll() is not None and source.loaded_at == 1.7e9 + 1000
    heard: list[ReloadOutcome] = []
    source.subscribe(heard.append)
    (policy_dir / "broken.yaml").write_text(BROKEN)
    failed = source.poll()
    assert failed is not None and not failed.reminder and failed.failing_for is None

    clock.now += 59
    assert source.poll() is None
    clock.now += 1
    reminder = source.poll()
    assert reminder is not None and reminder.reminder and reminder.failing_for == 60
    assert (reminder.error, reminder.previous, reminder.at) == (failed.error, failed.previous, 1.7e9 + 1060)
    assert source.poll() is None
    # Another broken edit is a new attempt, and the failure still dates from the first one.
    (policy_dir / "broken.yaml").write_text(BROKEN.replace("lots", "heaps"))
    bump_mtime(policy_dir / "broken.yaml")
    clock.now += 30
    again = source.poll()
    assert again is not None and not again.loaded and not again.reminder
    clock.now += 60
    later = source.poll()
    assert later is not None and later.failing_for == 150
    assert heard == [failed, reminder, again, later]

    (policy_dir / "broken.yaml").unlink()
    repaired = source.poll()
    assert repaired is not None and repaired.loaded and not source.failing()
    assert source.loaded_at == 1.7e9 + clock.now
    clock.now += 600
    assert source.poll() is None


def test_the_repeated_failure_is_logged_with_how_long_it_lasts(
    policy_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    source = PolicySource(policy_dir, remind_every=60, clock=clock)
    source.subscribe(log_outcome("policies"))
    source.poll()
    (policy_dir / "broken.yaml").write_text(BROKEN)
    source.poll()
    clock.now += 125
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="podgate.reload"):
        source.poll()
    (record,) = caplog.records
    assert record.getMessage() == "policies still do not load; still serving the last good ones"
    context = getattr(record, FIELDS)
    assert context["failingSeconds"] == 125
    assert context["problems"] == [
        f"{policy_dir}/broken.yaml:8: spec.rules[0].resources.defaults.cpu.request: "
        "must be a quantity such as 100m or 256Mi (got 'lots')"
    ]
