"""The HTTP client that POSTs webhook bodies to customer endpoints.

One `Transport` per worker process, shared by all its threads. It keeps keep-alive
connections per host, connects only to addresses netguard has checked (at connect
time, so DNS rebinding can't sneak in), never follows redirects, holds one deadline
over the whole exchange, and turns every network failure into a `Response` with a
readable `error` instead of an exception.

It is a small HTTP/1.1 client on plain sockets: a POST is one send and, for the usual
short answer, one recv, at a fraction of the CPU urllib3 or http.client would spend.

Request bodies and headers (signatures) are never logged.
"""

from __future__ import annotations

import collections
import functools
import ipaddress
import logging
import os
import re
import select
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from tnt.netguard import UnsafeURL, resolve_checked

log = logging.getLogger(__name__)

MAX_HEADERS = 100  # response header lines, as http.client
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 4096
_MAX_LINE = 65536  # longest response head or chunk-size line, as http.client
_READ_CHUNK = 65536
_WATCH_GRANULARITY = 0.01  # s; the watchdog wakes at most this often


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


class _Failure(Exception):
    """A failure we name ourselves: str(e) is the reason. A `late` one (a broken answer) reads
    "Connection closed mid-response" once the status line has arrived."""

    def __init__(self, reason: str, late: bool = False):
        super().__init__(reason)
        self.late = late


class _Disconnected(_Failure):
    """Closed before the first byte of an answer: on a reused connection, the keep-alive race."""

    def __init__(self) -> None:
        super().__init__("Connection closed without a response", late=True)


_STALE = (_Disconnected, ConnectionResetError, BrokenPipeError)
_BAD_HEADER = "Invalid request header"  # never echoes the header: it may be a signature
_TOO_MANY_HEADERS = "Too many response headers (more than 100)"
_LINE_TOO_LONG = "Response header line too long"
_INVALID = "Invalid HTTP response"
_CUT = "Connection closed mid-response"


class _Attempt:
    """One post's deadline, and the socket the watchdog shuts down when it passes.

    Connected sockets are blocking: the watchdog's shutdown is what ends a wait that would
    outlast the deadline. A watched socket is closed only after `detach` or `finish`, so the
    watchdog never shuts down a file descriptor number that was reused meanwhile.
    """

    __slots__ = ("deadline", "allow_loopback", "lock", "sock", "expired", "done")

    def __init__(self, deadline: float, allow_loopback: bool):
        self.deadline = deadline
        self.allow_loopback = allow_loopback
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.expired = False
        self.done = False

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def attach(self, sock: socket.socket) -> None:
        with self.lock:
            self.sock = sock
            if self.expired:
                _shutdown(sock)

    def detach(self) -> None:
        with self.lock:
            self.sock = None

    def expire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.expired = True
            if self.sock is not None:
                _shutdown(self.sock)

    def finish(self) -> bool:
        """Stop watching; False if the deadline passed (the socket may be shut down)."""
        with self.lock:
            self.done = True
            self.sock = None
            return not self.expired


def _shutdown(sock: socket.socket) -> None:
    # shutdown() wakes a recv/send blocked in another thread; close() would not. The plain
    # socket's method, also for TLS: SSLSocket.shutdown would drop the TLS state under a reader.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Watchdog:
    """One thread that expires attempts at their deadlines (per-socket timeouts reset on every
    byte, so a server trickling a byte a second would otherwise hold a worker forever).

    Deadlines are taken under the lock from one fixed timeout, so they are queued in order and
    a new one never needs to wake the thread unless it sleeps with nothing queued; finished
    attempts are dropped from the head. It wakes about once per timeout, not once per POST.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[_Attempt] = collections.deque()
        self._thread: threading.Thread | None = None
        self._until: float | None = None  # when the thread wakes next; None: when notified
        self._stopped = False

    def start(self, timeout: float, allow_loopback: bool) -> _Attempt:
        """A new attempt, watched, with `timeout` seconds from now."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tnt-deadlines", daemon=True)
                self._thread.start()
            queue = self._queue
            while queue and queue[0].done:
                queue.popleft()
            attempt = _Attempt(time.monotonic() + timeout, allow_loopback)
            queue.append(attempt)
            if self._until is None or attempt.deadline < self._until:
                self._cond.notify()
        return attempt

    def stop(self) -> None:
        """End the thread once no attempt is in flight (sockets block: their deadlines must hold)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        queue, due = self._queue, []
        while True:
            for attempt in due:
                attempt.expire()
            with self._cond:
                now, due = time.monotonic(), []
                while queue and (queue[0].done or queue[0].deadline <= now):
                    due.append(queue.popleft())
                if not due:
                    if self._stopped and not queue:
                        self._thread = None  # the next attempt starts another
                        return
                    self._until = queue[0].deadline if queue else None
                    self._cond.wait(None if self._until is None else
                                    max(self._until - now, _WATCH_GRANULARITY))


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


# A parsed URL: where to connect, and the request's first lines (request line, Host...).
_Target = collections.namedtuple("_Target", "key tls host port prefix")
_PREFIX_LINES = 3
_HOST = re.compile(r"[a-z0-9._~!$&'()*+,;=-]+").fullmatch
_AUTHORITY = re.compile(r"//([^/?#]*)")
_PATH = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*").fullmatch


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> _Target:
    """Parse an http(s) URL as urllib3 did: userinfo and fragment dropped, the host
    lower-cased and IDNA-encoded, the path percent-encoded where needed."""
    if not url[:8].lower().startswith(("http://", "https://")):
        raise _Failure("Invalid URL: use an http:// or https:// URL")
    authority = _AUTHORITY.search(url)[1].rpartition("@")[2]
    if not authority:
        raise _Failure("Invalid URL: No host specified.")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port  # hostname: lower-cased, no [brackets]
        if "[" in authority:  # IPv6, perhaps with a zone: [fe80::1%25eth0]
            address, _, zone = host.replace("%25", "%").partition("%")
            if (ipaddress.ip_address(address).version != 6 or (zone and not _HOST(zone))
                    or authority.partition("]")[2][:1] not in ("", ":")):
                raise ValueError
            host = f"{address}%{zone}" if zone else address
            host_header = f"[{host}]"
        else:
            host = host_header = host if host.isascii() else host.encode("idna").decode()
            if not _HOST(host):
                raise ValueError
    except (ValueError, UnicodeError):
        raise _Failure(f"Invalid URL: '{authority}' is not a valid host or port") from None
    tls = url[4] in "sS"
    default = 443 if tls else 80
    port = default if port is None else port
    if port != default:
        host_header = f"{host_header}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not _PATH(path):
        path = quote(path, safe="!$&'()*+,;=:@/?%~")
    prefix = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept-Encoding: identity\r\n"
    return _Target((tls, host, port), tls, host, port, prefix)


# Request header names once checked: 0 = the caller's, 1 = User-Agent, 2 = always ours.
_NAMES: dict[str, int] = {}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+").fullmatch
_OURS = {"host": 2, "content-length": 2, "transfer-encoding": 2, "accept-encoding": 2, "user-agent": 1}


_HEAD_END = re.compile(rb"\n\r?\n")
_STATUS_LINE = re.compile(r"HTTP/1\.(\S*)\s+([1-9][0-9][0-9])(\s.*)?").fullmatch  # 1: minor version
_DIGITS = re.compile(r"[0-9]+").fullmatch
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}").fullmatch


class _Reader:
    """Reads one response from a socket. Bytes read past it remain in buf[pos:]."""

    __slots__ = ("recv", "buf", "pos", "status", "headers", "keep_alive", "length", "chunked", "parts")

    def __init__(self, sock: socket.socket):
        self.recv = sock.recv
        self.buf = b""
        self.pos = 0
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.keep_alive = self.chunked = False
        self.length: int | None = None  # None: the body ends when the connection does
        self.parts: list[bytes] = []  # body read so far, for a failure mid-body

    def read_head(self) -> None:
        """Status line and headers, skipping 1xx interim answers; sets `status` last. Repeated
        names are joined with ", " under their first spelling; lines that aren't headers are
        skipped; names and values are capped."""
        status = 0
        while status < 200:
            buf, start = self.buf[self.pos:], 0
            while (end := _HEAD_END.search(buf, start)) is None:
                if buf.count(b"\n") > MAX_HEADERS + 1:  # the status line and 101 header lines
                    raise _Failure(_TOO_MANY_HEADERS)
                if len(buf) - buf.rfind(b"\n") > _MAX_LINE:
                    raise _Failure(_LINE_TOO_LONG)
                data = self.recv(_READ_CHUNK)
                if not data:
                    raise _Failure(_CUT, late=True) if buf else _Disconnected()
                start = max(len(buf) - 2, 0)  # a blank line may straddle the old end
                buf += data
            self.buf, self.pos = buf, end.end()
            head = buf[:end.start()]
            if head.count(b"\n") > MAX_HEADERS:
                raise _Failure(_TOO_MANY_HEADERS)
            if len(head) >= _MAX_LINE and max(map(len, head.split(b"\n"))) >= _MAX_LINE:
                raise _Failure(_LINE_TOO_LONG)
            lines = head.decode("latin-1").split("\n")
            if not (status_line := _STATUS_LINE(lines[0])):
                raise _Failure(_INVALID, late=True)
            status = int(status_line[2])
        headers: dict[str, str] = {}
        names: dict[str, str] = {}  # lower-case name -> name
        name = None
        for line in lines[1:]:
            if line[:1] in (" ", "\t"):  # an obsolete folded continuation
                if name is not None:
                    headers[name] = (headers[name] + " " + line.strip())[:MAX_HEADER_VALUE]
                continue
            key, colon, value = line.partition(":")
            key = key.strip()[:MAX_HEADER_NAME]
            if colon and key:
                name = names.get(lower := key.lower())
                if name is None:
                    names[lower] = name = key
                    headers[key] = value.strip()[:MAX_HEADER_VALUE]
                else:
                    headers[name] = (headers[name] + ", " + value.strip())[:MAX_HEADER_VALUE]
        connection = names.get("connection")
        self.keep_alive = status_line[1] != "0" and not (
            connection and "close" in headers[connection].lower())
        encoding, length = names.get("transfer-encoding"), names.get("content-length")
        if status in (204, 304):
            self.length = 0
        elif encoding:
            self.chunked = headers[encoding].lower().rstrip(" \t").endswith("chunked")
        elif length:
            if not _DIGITS(text := headers[length]):  # repeated: "5, 5" is fine, "5, 6" not
                values = {v.strip(" \t") for v in text.split(",")}
                if len(values) != 1 or not _DIGITS(text := values.pop()):
                    raise _Failure(_INVALID, late=True)
            self.length = int(text)
        if self.length is None and not self.chunked:
            self.keep_alive = False
        self.headers, self.status = headers, status

    def read_body(self, max_body: int) -> tuple[bytes, bool]:
        """At most max_body bytes of the body, and whether there was more."""
        if self.chunked:
            return self._chunked(max_body)
        if self.length is None:
            self.keep_alive = False
            data = self._take(max_body + 1, eof_ok=True)
            return data[:max_body], len(data) > max_body
        if self.length > max_body:
            self.keep_alive = False  # the rest is never read
            return self._take(max_body), True
        return self._take(self.length), False

    def _take(self, n: int, eof_ok: bool = False) -> bytes:
        """The next n bytes; fewer only if eof_ok and the connection closes first."""
        buf, pos = self.buf, self.pos
        if len(buf) - pos >= n:  # usually all there with the head
            self.pos = pos + n
            return buf[pos:pos + n]
        mark, parts = len(self.parts), self.parts
        parts.append(buf[pos:])
        got = len(buf) - pos
        self.buf, self.pos = b"", 0
        while got < n:
            data = self.recv(min(_READ_CHUNK, n - got))
            if not data:
                if eof_ok:
                    break
                raise _Failure(_CUT, late=True)
            parts.append(data)
            got += len(data)
        data = b"".join(parts[mark:])
        del parts[mark:]
        return data

    def _line(self) -> bytes:
        buf, pos = self.buf, self.pos
        while (end := buf.find(b"\n", pos)) < 0:
            if len(buf) - pos >= _MAX_LINE:
                raise _Failure(_LINE_TOO_LONG)
            data = self.recv(_READ_CHUNK)
            if not data:
                raise _Failure(_CUT, late=True)
            buf, pos = buf[pos:] + data, 0
        if end - pos >= _MAX_LINE:
            raise _Failure(_LINE_TOO_LONG)
        self.buf, self.pos = buf, end + 1
        return buf[pos:end].rstrip(b"\r")

    def _chunked(self, max_body: int) -> tuple[bytes, bool]:
        parts, got = self.parts, 0
        while size := self._line().partition(b";")[0].strip(b" \t"):
            if not _HEX(size):
                break
            size = int(size, 16)
            if size == 0:
                for _ in range(MAX_HEADERS + 1):  # trailer lines, ignored
                    if not self._line():
                        return b"".join(parts), False
                raise _Failure(_TOO_MANY_HEADERS)
            take = min(size, max_body + 1 - got)
            parts.append(self._take(take))
            got += take
            if got > max_body:
                self.keep_alive = False
                return b"".join(parts)[:max_body], True
            if self._line():  # the CRLF after the chunk's data
                break
        raise _Failure(_INVALID, late=True)


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
        self.max_per_host = max_per_host
        self.max_hosts = max_hosts
        self.ca_certs = ca_certs
        self._tls_context: ssl.SSLContext | None = None
        self._start()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        # (tls, host, port) -> idle connections, the least recently used host first.
        self._idle: collections.OrderedDict[tuple, list[socket.socket]] = collections.OrderedDict()
        self._watchdog = _Watchdog()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        """POST body to url; return what happened, always within `timeout` seconds."""
        if self._pid != os.getpid():
            # Forked (RQ's work horse): the watchdog thread didn't come along, and the parent's
            # sockets must not be shared. Start afresh without touching the parent's state.
            self._start()
        attempt = self._watchdog.start(self.timeout, self.allow_loopback)
        sock = reader = None
        data, truncated, error = b"", False, None
        try:
            target = _target(url)
            request = self._request(target, body, headers)
            sock = self._checkout(target.key)
            while True:
                fresh = sock is None
                if fresh:
                    sock = self._connect(target, attempt)
                else:
                    attempt.attach(sock)
                reader = _Reader(sock)
                try:
                    try:
                        for part in request:
                            sock.sendall(part)
                    except (BrokenPipeError, ConnectionResetError):
                        if not fresh:
                            raise
                        # A server may answer (413, say) and close without reading it all.
                    reader.read_head()
                    break
                except _STALE:
                    # A pooled connection the server dropped just as we reused it (the keep-alive
                    # race) fails before any response. Retry once on a fresh connection: at worst
                    # the receiver sees a duplicate, which at-least-once delivery already allows.
                    if fresh or attempt.expired:
                        raise
                    attempt.detach()
                    sock.close()
                    sock = None
            data, truncated = reader.read_body(self.max_body)
            if attempt.expired:  # its shutdown looks like the end of a body without a length
                error = self._timed_out()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a Response
            got_status = reader is not None and reader.status is not None
            error = self._reason(exc, attempt, got_status=got_status)
            if got_status:
                data = b"".join(reader.parts)
        finally:
            intact = attempt.finish()
            now = time.monotonic()
            if sock is not None:
                reusable = reader and reader.keep_alive and len(reader.buf) == reader.pos
                if intact and error is None and reusable:
                    self._checkin(target.key, sock)
                else:
                    sock.close()  # unread bytes would poison the next request on it
        return Response(
            status=reader.status if reader else None,
            headers=reader.headers if reader else {},
            body=data[: self.max_body].decode("utf-8", errors="replace"),
            error=error,
            duration_ms=int((now - attempt.deadline + self.timeout) * 1000),
            truncated=truncated,
        )

    def close(self) -> None:
        """Close pooled connections and stop the deadline thread."""
        with self._lock:
            pools = list(self._idle.values())
            self._idle.clear()
        for idle in pools:
            for sock in idle:
                sock.close()
        self._watchdog.stop()

    def _request(self, target: _Target, body: bytes, headers: dict[str, str]) -> tuple[bytes, ...]:
        """The bytes to send. Names must be tokens, and no CR, LF or NUL may come from a name or
        value (header injection): refused before anything is sent."""
        lines = [target.prefix]
        user_agent = f"User-Agent: {self.user_agent}\r\n"
        for name, value in headers.items():
            kind = _NAMES.get(name)
            if kind is None:
                if not isinstance(name, str) or not _TOKEN(name):
                    raise _Failure(_BAD_HEADER)
                kind = _OURS.get(name.lower(), 0)
                if len(_NAMES) < 1000:
                    _NAMES[name] = kind
            if kind == 2:
                continue
            if kind == 1:
                user_agent = ""
            lines.append(f"{name}: {value}\r\n")
        lines.append(f"{user_agent}Content-Length: {len(body)}\r\n\r\n")
        head = "".join(lines)
        # Each line written ends in one CRLF, so any other CR or LF came from the caller.
        expected = _PREFIX_LINES + len(lines) + (user_agent != "")
        if head.count("\n") != expected or head.count("\r") != expected or "\0" in head:
            raise _Failure(_BAD_HEADER)
        try:
            head = head.encode("latin-1")
        except UnicodeEncodeError:
            raise _Failure(_BAD_HEADER) from None
        return (head + body,) if len(body) <= _READ_CHUNK else (head, body)  # big: not copied

    def _checkout(self, key: tuple) -> socket.socket | None:
        """An idle pooled connection to reuse, or None. One that is readable was closed by the
        server (or holds bytes nobody asked for): it is closed and the next one tried."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                sock = idle.pop()
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            if not poller.poll(0):
                return sock
            sock.close()

    def _checkin(self, key: tuple, sock: socket.socket) -> None:
        """Back to the pool; closed if the pool is full. Evicts the least recently used host."""
        extra: list[socket.socket] = []
        with self._lock:
            idle = self._idle.get(key)
            if idle is None:
                idle = self._idle[key] = []
                if len(self._idle) > self.max_hosts:
                    extra = self._idle.popitem(last=False)[1]
            else:
                self._idle.move_to_end(key)
            if len(idle) < self.max_per_host:
                idle.append(sock)
            else:
                extra.append(sock)
        for other in extra:
            other.close()

    def _connect(self, target: _Target, attempt: _Attempt) -> socket.socket:
        """A new connection to a netguard-checked address, under the attempt's deadline. The Host
        header and TLS server name stay the URL's host: only the socket's target is the IP."""
        ips = _resolve_within_deadline(target.host, target.port, attempt)
        sock = _connect_first(ips, target.port, attempt, [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        log.debug("New connection to %s port %s", target.host, target.port)
        try:
            sock.settimeout(None)  # blocking from here: the watchdog bounds every wait
            if target.tls:
                sock = self._tls().wrap_socket(sock, server_hostname=target.host,
                                               do_handshake_on_connect=False)
            attempt.attach(sock)
            if target.tls:
                sock.do_handshake()
        except BaseException:
            attempt.detach()
            sock.close()
            raise
        return sock

    def _tls(self) -> ssl.SSLContext:
        # CERT_REQUIRED, the certificate checked against the URL's host, SNI sent.
        if self._tls_context is None:
            context = ssl.create_default_context(cafile=self.ca_certs)
            context.set_alpn_protocols(["http/1.1"])
            self._tls_context = context
        return self._tls_context

    def _timed_out(self) -> str:
        return f"Timed out after {self.timeout:g} s"

    def _reason(self, exc: BaseException, attempt: _Attempt, *, got_status: bool) -> str:
        """A short human reason for a transport-level failure."""
        if attempt.expired or isinstance(exc, TimeoutError):
            return self._timed_out()
        if isinstance(exc, UnsafeURL):
            if exc.kind:
                article = "an" if exc.kind[0] in "aeiou" else "a"
                return f"Refused: {exc.address} is {article} {exc.kind} address"
            return str(exc).rstrip(".")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return f"TLS error: certificate verify failed: {exc.verify_message}"
        if isinstance(exc, ssl.SSLError):
            return f"TLS error: {exc.reason or exc}"
        if isinstance(exc, _Failure) and not exc.late:
            return str(exc)
        if isinstance(exc, ConnectionRefusedError):
            return "Connection refused"
        if got_status:
            return _CUT
        if isinstance(exc, _Failure):
            return str(exc)
        if isinstance(exc, ConnectionResetError):
            return "Connection reset by the server"
        if isinstance(exc, OSError) and exc.strerror:
            return f"Connection failed: {exc.strerror}"
        # The exception's text is left out: it could quote request headers.
        return f"Request failed ({type(exc).__name__})"

