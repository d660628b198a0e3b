"""One request on a connection, as gunicorn's gthread worker handles it, with fewer writes and lookups.

`RequestHandling` is the request half of podgate's worker (webhook/server/worker.py has the connections):
gthread's `handle_request` without the access log (podgate logs each review itself), with the response's
headers and body in one write and gunicorn's settings read once per worker.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from gunicorn import util
from gunicorn.http import wsgi

_date = (0, "")


def _date_line() -> str:
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, f"Date: {util.http_date(now)}\r\n")
    return _date[1]


class SettingsOnce:
    """gunicorn's Config, each setting read once. Its `__getattr__` looks a setting up and calls its
    `get()` on every access, and a request makes some thirty (the parser reads several per header line).
    A worker's settings never change: a configuration reload starts new workers."""

    def __init__(self, cfg: Any) -> None:
        self._cfg = cfg

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._cfg, name)
        setattr(self, name, value)  # found in the instance from now on, without calling __getattr__
        return value


class OneWriteResponse(wsgi.Response):  # type: ignore[misc]
    """Headers and the first body bytes in one sendall: one TLS record, one wake-up of the client's reader."""

    headers_sent: bool
    sent: int

    def default_headers(self) -> list[str]:
        # gunicorn's, with the Date line formatted once a second instead of once a response.
        connection = "upgrade" if self.upgrade else "close" if self.should_close() else "keep-alive"
        version = self.req.version
        headers = [
            f"HTTP/{version[0]}.{version[1]} {self.status}\r\n",
            f"Server: {self.version}\r\n",
            _date_line(),
            f"Connection: {connection}\r\n",
        ]
        if self.chunked:
            headers.append("Transfer-Encoding: chunked\r\n")
        return headers

    def write(self, arg: bytes) -> None:
        if self.headers_sent or self.chunked or not isinstance(arg, bytes):
            super().write(arg)
            return
        if self.response_length is not None:
            arg = arg[: max(self.response_length - self.sent, 0)]
        lines = [*self.default_headers(), *(f"{name}: {value}\r\n" for name, value in self.headers), "\r\n"]
        self.headers_sent = True
        self.sent += len(arg)
        util.write(self.sock, "".join(lines).encode("latin-1") + arg)


class RequestHandling:
    """gthread's `handle_request`, for a worker that sets `settings` (a SettingsOnce) and counts `open`."""

    alive: bool
    settings: SettingsOnce
    open: int
    worker_connections: int
    nr: int
    max_requests: int
    cfg: Any
    log: Any
    wsgi: Any

    def handle_request(self, req: Any, conn: Any) -> bool:
        """gthread's, without the access log (podgate logs each review itself) and with one write."""
        environ: dict[str, Any] = {}
        resp = None
        try:
            settings = self.settings
            settings.pre_request(self, req)
            resp, environ = wsgi.create(req, conn.sock, conn.client, conn.server, settings)
            # wsgi.create builds a plain Response; the subclass has the same fields and one method more.
            resp.__class__ = OneWriteResponse
            environ["wsgi.multithread"] = True
            self.nr += 1
            if self.nr >= self.max_requests:
                if self.alive:
                    self.log.info("Autorestarting worker after current request.")
                    self.alive = False
                resp.force_close()
            if not self.alive or not settings.keepalive or self.open >= self.worker_connections:
                resp.force_close()
            respiter = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(respiter, environ["wsgi.file_wrapper"]):
                    resp.write_file(respiter)
                else:
                    for item in respiter:
                        resp.write(item)
                resp.close()
            finally:
                if hasattr(respiter, "close"):
                    respiter.close()
            if resp.should_close():
                return False
        except OSError:
            raise  # handle() knows which are the client's doing
        except Exception:
            if resp is not None and resp.headers_sent:
                # The status is out: only closing the connection can tell the client the rest failed.
                self.log.exception("Error handling request")
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(2)
                raise StopIteration() from None
            raise
        finally:
            try:
                self.settings.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
        return True
