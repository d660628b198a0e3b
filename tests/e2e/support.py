"""What every part of the suite shares: free ports, waiting, and a broken set-up told from a failing case."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Broken(RuntimeError):
    """The suite could not do what a case needs (a command failed, a server did not answer): not an
    AssertionError, so a broken set-up never reads as a podgate failure."""


def ensure(condition: object, message: str) -> None:
    if not condition:
        raise Broken(message)


def free_port() -> int:
    """A port nobody listens on now. Chosen by the kernel, so parallel runs (and the default 6443, 2379, ...
    of anyone else's control plane) are not hit; the small race until the server binds it is accepted."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; on timeout raise TimeoutError naming `what` and the
    last value (not an AssertionError: a slow set-up is not a podgate failure)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last: {value!r})")
        time.sleep(interval)
