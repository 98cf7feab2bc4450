"""The HTTP client that POSTs webhook bodies to customer endpoints.

One `Transport` per worker process, shared by all its threads. It keeps keep-alive
connections per host, connects only to addresses netguard has checked (at connect
time, so DNS rebinding can't sneak in), never follows redirects, holds one deadline
over the whole exchange, and turns every network failure into a `Response` with a
readable `error` instead of an exception.

Request bodies and headers (signatures) are never logged.
"""

from __future__ import annotations

import heapq
import http.client
import ipaddress
import itertools
import os
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    LocationValueError,
    ProtocolError,
    URLSchemeUnknown,
)
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError

from tnt.netguard import UnsafeURL, resolve_checked

MAX_HEADERS = 100
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 4096
_READ_CHUNK = 65536


@dataclass
class Response:
    """The outcome of one POST. Success (2xx) is for the caller to decide; see `ok`."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error: str | None = None
    duration_ms: int = 0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


class _Attempt:
    """One post's deadline, and the socket the watchdog shuts down when it passes."""

    __slots__ = ("deadline", "allow_loopback", "lock", "sock", "owned", "expired", "done", "reused")

    def __init__(self, deadline: float, allow_loopback: bool):
        self.deadline = deadline
        self.allow_loopback = allow_loopback
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.owned: socket.socket | None = None
        self.expired = False
        self.done = False
        self.reused = False

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def attach(self, sock: socket.socket) -> None:
        with self.lock:
            self.sock = sock
            if self.expired:
                _shutdown(sock)

    def detach(self) -> bool:
        """Forget the socket (its connection goes back to the pool). False if it was shut down."""
        with self.lock:
            self.sock = None
            return not self.expired

    def adopt(self, sock: socket.socket) -> bool:
        """Take over closing the watched socket: its connection was closed (e.g. the response said
        Connection: close) while the body is still being read from it."""
        with self.lock:
            if self.done or self.sock is not sock:
                return False
            self.owned = sock
            return True

    def expire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.expired = True
            if self.sock is not None:
                _shutdown(self.sock)

    def finish(self) -> None:
        with self.lock:
            self.done = True
            self.sock = None
            owned, self.owned = self.owned, None
        if owned is not None:
            owned.close()


def _shutdown(sock: socket.socket) -> None:
    # shutdown() wakes a recv/send blocked in another thread; close() would not.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Watchdog:
    """One thread that expires attempts at their deadlines (per-socket timeouts reset on every
    byte, so a server trickling a byte a second would otherwise hold a worker forever)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Attempt]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def watch(self, attempt: _Attempt) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tnt-deadlines", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (attempt.deadline, next(self._seq), attempt))
            if self._heap[0][2] is attempt:
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                if self._stopped:
                    return
                _, _, attempt = heapq.heappop(self._heap)
            attempt.expire()


_local = threading.local()


def _current_attempt() -> _Attempt:
    attempt = getattr(_local, "attempt", None)
    if attempt is None:
        # Only reachable if the pool is used outside Transport.post: fail safe, no loopback.
        attempt = _Attempt(time.monotonic() + 10.0, allow_loopback=False)
    return attempt


class _GuardedConnectionMixin:
    """Connects only to netguard-checked addresses, under the current attempt's deadline.

    The Host header and the TLS server name stay the URL's host: only the socket's
    target is the checked IP.
    """

    _watch_sock: socket.socket | None = None
    _served = 0

    def _new_conn(self) -> socket.socket:
        attempt = _current_attempt()
        ips = _resolve_within_deadline(self._dns_host, self.port, attempt)
        sock = _connect_first(ips, self.port, attempt, self.socket_options)
        self._close_watch_sock()
        # A dup of the fd stays valid after ssl.wrap_socket detaches the original socket,
        # so the watchdog can shut down the TLS handshake and every later read.
        self._watch_sock = sock.dup()
        self._served = 0
        attempt.attach(self._watch_sock)
        return sock

    def request(self, *args, **kwargs) -> None:
        attempt = _current_attempt()
        attempt.reused = self.sock is not None and self._served > 0
        if self._watch_sock is not None:
            attempt.attach(self._watch_sock)
        super().request(*args, **kwargs)

    def getresponse(self):
        response = super().getresponse()
        self._served += 1
        return response

    def close(self) -> None:
        super().close()
        self._close_watch_sock()

    def _close_watch_sock(self) -> None:
        watch, self._watch_sock = self._watch_sock, None
        if watch is None:
            return
        # http.client closes the connection as soon as a "Connection: close" response starts,
        # but the body is still read from the socket: the deadline must still be able to cut it.
        attempt = getattr(_local, "attempt", None)
        if attempt is None or not attempt.adopt(watch):
            watch.close()


_resolver_lock = threading.Lock()
_resolver: ThreadPoolExecutor | None = None


def _forget_resolver() -> None:
    # A forked child has the parent's executor but none of its threads.
    global _resolver, _resolver_lock
    _resolver, _resolver_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_resolver)


def _resolve_within_deadline(host: str, port: int, attempt: _Attempt) -> list[str]:
    """resolve_checked, but a stuck DNS server can't outlast the attempt's deadline.

    getaddrinfo can't be interrupted, so names are resolved on a small shared pool and
    waited for with the time left. IP literals need no DNS and are resolved in place.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return resolve_checked(host, port, allow_loopback=attempt.allow_loopback)
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            _resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tnt-resolve")
    future = _resolver.submit(resolve_checked, host, port, allow_loopback=attempt.allow_loopback)
    try:
        return future.result(timeout=max(attempt.remaining(), 0.0))
    except TimeoutError:
        future.cancel()
        raise TimeoutError(f"resolving {host} timed out") from None


def _connect_first(ips: list[str], port: int, attempt: _Attempt, options) -> socket.socket:
    """Connect to the first checked address that answers, within the attempt's time."""
    error: OSError = ConnectionRefusedError("Connection refused")
    for ip in ips:
        remaining = attempt.remaining()
        if remaining <= 0:
            raise TimeoutError("timed out")
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            for option in options or ():
                sock.setsockopt(*option)
            sock.settimeout(remaining)
            sock.connect((ip, port))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedPoolMixin:
    def _put_conn(self, conn) -> None:
        attempt = getattr(_local, "attempt", None)
        # A connection the watchdog shut down must not be reused by another thread.
        if conn is not None and attempt is not None and not attempt.detach():
            conn.close()
        super()._put_conn(conn)


class _GuardedHTTPConnectionPool(_GuardedPoolMixin, HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(_GuardedPoolMixin, HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class Transport:
    """Thread-safe webhook POSTer with per-host keep-alive pools. Never raises for network trouble."""

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        timeout: float = 10.0,
        max_body: int = 65536,
        user_agent: str = "TalkNTalk-Webhooks/x",
        max_per_host: int = 32,
        max_hosts: int = 1000,
        ca_certs: str | None = None,
    ):
        self.allow_loopback = allow_loopback
        self.timeout = timeout
        self.max_body = max_body
        self.user_agent = user_agent
        self._pool_options = dict(num_pools=max_hosts, maxsize=max_per_host, ca_certs=ca_certs)
        self._start()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._pools = urllib3.PoolManager(
            num_pools=self._pool_options["num_pools"],
            maxsize=self._pool_options["maxsize"],
            block=False,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=self._pool_options["ca_certs"],
        )
        self._pools.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }
        self._watchdog = _Watchdog()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        """POST body to url; return what happened, always within `timeout` seconds."""
        if self._pid != os.getpid():
            # Forked (RQ's work horse): the watchdog thread didn't come along, and the parent's
            # sockets must not be shared. Start afresh without touching the parent's state.
            self._start()
        started = time.monotonic()
        attempt = _Attempt(started + self.timeout, self.allow_loopback)
        _local.attempt = attempt
        self._watchdog.watch(attempt)
        raw = None
        status = None
        response_headers: dict[str, str] = {}
        data = bytearray()
        error = None
        try:
            raw = self._open(url, body, headers, attempt)
            # The watchdog's shutdown looks like EOF to http.client, which then takes a head cut
            # short for a complete one (or a body without a length for a whole one).
            if not attempt.expired:
                status = raw.status
                response_headers = _capped_headers(raw.headers)
                while len(data) <= self.max_body:
                    chunk = raw.read(min(_READ_CHUNK, self.max_body + 1 - len(data)))
                    if not chunk:
                        break
                    data += chunk
            if attempt.expired:
                error = self._timed_out()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a Response
            error = self._reason(exc, attempt, got_status=status is not None)
        finally:
            attempt.finish()
            _local.attempt = None
            truncated = len(data) > self.max_body
            if raw is not None:
                if error or truncated:
                    raw.close()  # unread bytes would poison the next request on this connection
                raw.release_conn()
        return Response(
            status=status,
            headers=response_headers,
            body=bytes(data[: self.max_body]).decode("utf-8", errors="replace"),
            error=error,
            duration_ms=int((time.monotonic() - started) * 1000),
            truncated=truncated,
        )

    def close(self) -> None:
        """Close pooled connections and stop the deadline thread."""
        self._pools.clear()
        self._watchdog.stop()

    def _open(self, url: str, body: bytes, headers: dict[str, str], attempt: _Attempt):
        if not url.lower().startswith(("http://", "https://")):
            raise LocationValueError("use an http:// or https:// URL")
        merged = urllib3.HTTPHeaderDict({"User-Agent": self.user_agent})
        merged.update(headers)
        for try_number in (1, 2):
            wait = max(attempt.remaining(), 0.001)
            try:
                return self._pools.urlopen(
                    "POST",
                    url,
                    body=body,
                    headers=merged,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    decode_content=False,
                    release_conn=False,
                    timeout=urllib3.Timeout(connect=wait, read=wait),
                )
            except ProtocolError as exc:
                # A pooled connection the server dropped just as we reused it (the keep-alive race)
                # fails before any response. Retry once on a fresh connection: at worst the
                # receiver sees a duplicate, which at-least-once delivery already allows.
                if try_number == 1 and attempt.reused and not attempt.expired and _is_stale(exc):
                    continue
                raise
        raise AssertionError("unreachable")

    def _timed_out(self) -> str:
        return f"Timed out after {self.timeout:g} s"

    def _reason(self, exc: BaseException, attempt: _Attempt, *, got_status: bool) -> str:
        """A short human reason for a transport-level failure."""
        chain = _chain(exc)
        if attempt.expired or any(
            isinstance(e, (TimeoutError, socket.timeout, Urllib3TimeoutError)) for e in chain
        ):
            return self._timed_out()
        for e in chain:
            if isinstance(e, UnsafeURL):
                if e.kind:
                    article = "an" if e.kind[0] in "aeiou" else "a"
                    return f"Refused: {e.address} is {article} {e.kind} address"
                return str(e).rstrip(".")
            if isinstance(e, ssl.SSLCertVerificationError):
                return f"TLS error: certificate verify failed: {e.verify_message}"
            if isinstance(e, ssl.SSLError):
                return f"TLS error: {e.reason or e}"
            if isinstance(e, ssl.CertificateError):
                return f"TLS error: {e}"
        for e in chain:
            if isinstance(e, http.client.LineTooLong):
                return "Response header line too long"
            if isinstance(e, http.client.HTTPException) and "more than" in str(e) and "headers" in str(e):
                return "Too many response headers (more than 100)"  # http.client's limit
            if isinstance(e, ConnectionRefusedError):
                return "Connection refused"
            if isinstance(e, (LocationValueError, URLSchemeUnknown)):
                return f"Invalid URL: {_url_hint(e)}"
            if isinstance(e, ValueError) and str(e).startswith("Invalid header"):
                return "Invalid request header"  # not echoed: it may be a signature
        if got_status:
            return "Connection closed mid-response"
        for e in chain:
            if isinstance(e, http.client.RemoteDisconnected):
                return "Connection closed without a response"
            if isinstance(e, ConnectionResetError):
                return "Connection reset by the server"
            if isinstance(e, http.client.BadStatusLine):
                return "Invalid HTTP response"
            if isinstance(e, Urllib3SSLError):
                return f"TLS error: {e}"
            if isinstance(e, OSError) and e.strerror:
                return f"Connection failed: {e.strerror}"
        # The exception's text is left out: it could quote request headers.
        return f"Request failed ({type(exc).__name__})"


def _url_hint(exc: BaseException) -> str:
    # urllib3 prefixes its own messages with the URL or a class name; keep the reason.
    return str(exc).split(": ", 1)[-1]


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes and the errors urllib3 wraps in args or `.reason`."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo.extend(a for a in e.args if isinstance(a, BaseException))
        todo.extend(x for x in (e.__cause__, e.__context__, getattr(e, "reason", None))
                    if isinstance(x, BaseException))
    return seen


def _is_stale(exc: ProtocolError) -> bool:
    return any(
        isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError))
        for e in _chain(exc)
    )


def _capped_headers(headers) -> dict[str, str]:
    """Response headers as a plain dict, repeated names joined, bounded in count and size."""
    capped: dict[str, str] = {}
    for name in headers.keys():
        if len(capped) >= MAX_HEADERS:
            break
        capped[name[:MAX_HEADER_NAME]] = headers[name][:MAX_HEADER_VALUE]
    return capped
