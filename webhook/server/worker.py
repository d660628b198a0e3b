"""podgate's gunicorn worker: gthread's request handling, but no thread ever waits for a silent client.

gunicorn's gthread worker gives a connection to a request thread on its first bytes. On a new TLS
connection those are the ClientHello: the thread does the handshake, then blocks reading a request.
Under a burst the kube-apiserver's Go client dials spare connections and parks them unused, so each
held a thread until the read timeout (10 s), and eight of them held all of deploy/'s 2 x 4 threads
while real reviews waited past the webhook's 3 s timeout (issue 16, benchmarks/BENCHMARKS.md).

Here the request threads wait on one epoll set themselves: the kernel gives each readiness to exactly
one waiting thread (EPOLLONESHOT), which serves it and puts the connection back in the set.
- A new connection's TLS handshake is done without blocking, one step per readiness; one not done
  within the read timeout of its first byte is cut off by the main thread's sweep.
- A handshaken connection waits in the set until request bytes are there, and again after each
  request; only then does a thread read it, under the read deadline of webhook/server/tls.py.
- No main loop hands a request over to a pool: the thread the kernel wakes is the one that serves it.
The main thread keeps gunicorn's heartbeat, closes connections idle past --keepalive and handshakes
past the read timeout, and on SIGTERM stops accepting, lets the requests in flight finish (up to the
graceful timeout) and closes the idle connections.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import ssl
import threading
import time
from typing import Any

from gunicorn import http, util
from gunicorn import sock as gsock
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import ThreadWorker

from webhook.server.logs import fields
from webhook.server.request_handling import RequestHandling, SettingsOnce
from webhook.server.tls import DEFAULT_READ_TIMEOUT, WebhookContext

# The longest the main thread sleeps between heartbeats and sweeps.
HOUSEKEEPING_SECONDS = 1.0
# Errors of one accept() that concern that connection only (it went away before we took it).
_ACCEPT_SKIPPED = (errno.ECONNABORTED, errno.EPROTO, errno.EPERM)


def _readable_now(fd: int) -> bool:
    """Bytes (or the client's end) wait on `fd`, without waiting for them."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class Conn:
    """One client connection: gthread's TConn fields, and where it stands while it waits in the set."""

    __slots__ = ("client", "cutoff", "expires", "fd", "handshaken", "parser", "registered", "server", "sock")

    def __init__(self, sock: Any, client: Any, server: Any, *, handshaken: bool) -> None:
        self.sock, self.client, self.server = sock, client, server
        self.fd: int = sock.fileno()
        self.parser: Any = None  # gunicorn's RequestParser, once the handshake is done
        self.handshaken = handshaken
        self.expires = 0.0  # monotonic: when the sweep closes it, if it is still waiting in the set
        self.cutoff = False  # that expiry is a read deadline (a handshake under way), not idleness
        self.registered = False

    def peer(self) -> str:
        if isinstance(self.client, tuple) and len(self.client) >= 2:
            return f"{self.client[0]}:{self.client[1]}"
        return str(self.client) or "unknown peer"


class PodgateWorker(RequestHandling, ThreadWorker):  # type: ignore[misc]
    """`podgate serve`'s worker_class. From gthread it keeps `handle` (a request's errors and their log
    lines as gthread has them) and, in RequestHandling, `handle_request`; its thread pool, poller and main
    loop are replaced (module docstring)."""

    alive: bool

    def init_process(self) -> None:
        self.epoll = select.epoll()
        self.lock = threading.Lock()
        self.parked: dict[int, Conn] = {}  # connections waiting in the epoll set, by fd
        self.open = 0  # connections accepted and not yet closed
        self.busy = 0  # request threads serving a connection
        self.listening: dict[int, tuple[Any, Any]] = {}  # fd -> (gunicorn listener, its address)
        self.paused = False  # listeners left disarmed: at worker_connections
        self.stop_r, self.stop_w = os.pipe()
        self.request_threads: list[threading.Thread] = []
        self.settings = SettingsOnce(self.cfg)  # for the per-request code: the parser, the environ, hooks
        # gthread's own init_process would build its thread pool and poller; the base one runs run().
        Worker.init_process(self)

    def handle_quit(self, sig: int, frame: Any) -> None:
        Worker.handle_quit(self, sig, frame)

    # -- the main thread --------------------------------------------------------------------------------

    def run(self) -> None:
        for listener in self.sockets:
            listener.setblocking(False)
            # Captured once: during a graceful stop the listener's name may no longer be available.
            self.listening[listener.fileno()] = (listener, listener.getsockname())
            self.epoll.register(listener.fileno(), select.EPOLLIN | select.EPOLLONESHOT)
        # Level-triggered and never read: once written, it wakes every request thread, for good.
        self.epoll.register(self.stop_r, select.EPOLLIN)
        for number in range(self.cfg.threads):
            thread = threading.Thread(target=self._serve, name=f"podgate-request-{number}", daemon=True)
            thread.start()
            self.request_threads.append(thread)
        while self.alive:
            self.notify()
            if not self.is_parent_alive():
                break
            self._sleep(self._sweep())
        self._stop()

    def _sleep(self, seconds: float) -> None:
        """Until `seconds` pass or a signal arrives (gunicorn's wake-up pipe gets a byte for each)."""
        ready, _, _ = select.select([self.PIPE[0]], [], [], seconds)
        if ready:
            try:
                while os.read(self.PIPE[0], 4096):
                    pass
            except BlockingIOError:
                pass

    def _sweep(self) -> float:
        """Close what waited too long; the seconds until the next connection would."""
        now = time.monotonic()
        soonest = now + HOUSEKEEPING_SECONDS
        expired = []
        with self.lock:
            for fd, conn in list(self.parked.items()):
                if conn.expires > now:
                    soonest = min(soonest, conn.expires)
                elif not _readable_now(fd):
                    expired.append(self.parked.pop(fd))
                # Else the client has sent what was asked of it, and its turn comes when a thread is
                # free: time waiting for a busy thread is not charged to the client.
        for conn in expired:
            if conn.cutoff:
                seconds = self._read_timeout(conn)
                self.log.warning("slow client cut off", extra=fields(peer=conn.peer(), readTimeout=seconds))
            self._close(conn)
        return max(soonest - now, 0.01)

    def _stop(self) -> None:
        """SIGTERM: stop accepting; answer the requests in the threads and those already sent (as gthread
        does with the ones it has queued), within the graceful timeout; close every other connection."""
        deadline = time.monotonic() + self.cfg.graceful_timeout
        for fd in self.listening:
            self._forget(fd)
        for listener in self.sockets:
            listener.close()
        with self.lock:
            sent = {fd for fd, conn in self.parked.items() if conn.handshaken and self._readable(conn)}
            idle = [self.parked.pop(fd) for fd in list(self.parked) if fd not in sent]
        for conn in idle:
            self._close(conn)
        while time.monotonic() < deadline:
            with self.lock:
                if not self.busy and sent.isdisjoint(self.parked):
                    break
            time.sleep(0.01)
        os.write(self.stop_w, b"x")
        for thread in self.request_threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        with self.lock:
            rest, self.parked = list(self.parked.values()), {}
        for conn in rest:
            self._close(conn)

    # -- the request threads ----------------------------------------------------------------------------

    def _serve(self) -> None:
        # Until the stop pipe says so: after SIGTERM (not alive) the requests already sent are still served.
        while True:
            for fd, _ in self.epoll.poll(-1, 1):
                if fd == self.stop_r:
                    return
                try:
                    if fd in self.listening:
                        self._accept(fd)
                    else:
                        self._ready(fd)
                except Exception:  # a bug here must not cost the worker a thread
                    self.log.exception("request thread error")

    def _accept(self, fd: int) -> None:
        listener, server = self.listening[fd]
        try:
            while self.open < self.worker_connections:
                try:
                    raw, client = listener.accept()
                except BlockingIOError:
                    break
                except OSError as error:
                    if error.errno in _ACCEPT_SKIPPED:
                        continue
                    # Out of file descriptors, say: leave the rest queued in the kernel for now.
                    self.log.warning("accept failed", extra=fields(error=str(error)))
                    break
                self._admit(raw, client, server)
        finally:
            with self.lock:
                if self.open >= self.worker_connections:
                    self.paused = True  # _close arms the listeners again
                elif self.alive:
                    self._arm(fd, select.EPOLLIN)

    def _admit(self, raw: Any, client: Any, server: Any) -> None:
        raw.setblocking(False)
        try:
            sock = gsock.ssl_wrap_socket(raw, self.cfg) if self.cfg.is_ssl else raw
        except OSError:
            util.close(raw)
            return
        conn = Conn(sock, client, server, handshaken=not self.cfg.is_ssl)
        with self.lock:
            self.open += 1
        if conn.handshaken:
            self._start_requests(conn)
        self._park(conn, time.monotonic() + self.cfg.keepalive)

    def _ready(self, fd: int) -> None:
        with self.lock:
            conn = self.parked.pop(fd, None)
            if conn is None:
                return  # the sweep has just closed it
            self.busy += 1
        try:
            self._serve_connection(conn)
        finally:
            with self.lock:
                self.busy -= 1

    def _serve_connection(self, conn: Conn) -> None:
        try:
            if not conn.handshaken and not self._handshake(conn):
                return
            waiting = self._readable(conn)
            # Once stopping (not alive), a request already sent is still answered, then the connection closed.
            while waiting:
                keepalive, _ = self.handle(conn)
                if not keepalive:
                    break
                if hasattr(conn.sock, "end_request"):
                    conn.sock.end_request()  # the next read starts the next request's deadline
                # A request already read in part (pipelined) is served now: epoll would not see it.
                waiting = self._buffered(conn)
            else:
                if self.alive:
                    self._park(conn, time.monotonic() + self.cfg.keepalive)
                    return
        except Exception:
            self.log.exception("request thread error")
        self._close(conn)

    def _handshake(self, conn: Conn) -> bool:
        """One step of the TLS handshake; True when it is done (else the connection is parked or closed)."""
        if not conn.cutoff:
            # Its first bytes: from now on the handshake runs against the read timeout.
            conn.cutoff = True
            conn.expires = time.monotonic() + self._read_timeout(conn)
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._park(conn, conn.expires)
            return False
        except ssl.SSLWantWriteError:
            self._park(conn, conn.expires, select.EPOLLOUT)
            return False
        except ssl.SSLError as error:
            if error.args and error.args[0] in (ssl.SSL_ERROR_EOF, ssl.SSL_ERROR_ZERO_RETURN):
                self.log.debug("ssl connection closed")
            else:
                reason = error.reason or str(error)
                self.log.warning("TLS handshake failed", extra=fields(peer=conn.peer(), error=reason))
            self._close(conn)
            return False
        except OSError as error:  # reset or gone before the handshake was done
            self.log.debug("connection lost during the TLS handshake: %s", error)
            self._close(conn)
            return False
        conn.handshaken, conn.cutoff = True, False
        # Blocking with a timeout from here on: request reads run under tls.DeadlineSocket's deadline.
        conn.sock.settimeout(self._read_timeout(conn))
        self._start_requests(conn)
        return True

    def _start_requests(self, conn: Conn) -> None:
        conn.parser = http.RequestParser(self.settings, conn.sock, conn.client)

    def _readable(self, conn: Conn) -> bool:
        """Request bytes (or the client's end) are there: reading will not wait for a silent client."""
        return self._buffered(conn) or _readable_now(conn.fd)

    def _buffered(self, conn: Conn) -> bool:
        """Bytes already read off the socket: in the HTTP parser's buffer, or decrypted by TLS."""
        buffer = conn.parser.unreader.buf
        if buffer.seek(0, os.SEEK_END):
            return True
        return isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending() > 0

    def _read_timeout(self, conn: Conn) -> float:
        context = getattr(conn.sock, "context", None)
        return context.read_timeout if isinstance(context, WebhookContext) else DEFAULT_READ_TIMEOUT

    # -- the epoll set ----------------------------------------------------------------------------------

    def _park(self, conn: Conn, expires: float, events: int = select.EPOLLIN) -> None:
        """Back into the epoll set until `events`, or until the sweep closes it at `expires`."""
        conn.expires = expires
        # In the table before it is armed: an event for it must find it there.
        with self.lock:
            self.parked[conn.fd] = conn
        try:
            if conn.registered:
                self.epoll.modify(conn.fd, events | select.EPOLLONESHOT)
            else:
                # Marked first: its first event may reach another thread, which then parks it again,
                # before register() has even returned here.
                conn.registered = True
                self.epoll.register(conn.fd, events | select.EPOLLONESHOT)
        except OSError:
            pass  # the sweep closed it in between

    def _arm(self, fd: int, events: int) -> None:
        with contextlib.suppress(OSError):
            self.epoll.modify(fd, events | select.EPOLLONESHOT)

    def _forget(self, fd: int) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.epoll.unregister(fd)

    def _close(self, conn: Conn) -> None:
        # Out of the set before the fd is closed: once closed, its number may be a new connection's.
        if conn.registered and conn.sock.fileno() == conn.fd:
            self._forget(conn.fd)
        util.close(conn.sock)
        with self.lock:
            self.open -= 1
            if self.paused and self.open < self.worker_connections and self.alive:
                self.paused = False
                for fd in self.listening:
                    self._arm(fd, select.EPOLLIN)
