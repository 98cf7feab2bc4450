"""The HTTP client that POSTs webhook bodies to customer endpoints.

One `Transport` per worker process, shared by all its threads. It keeps keep-alive
connections per host, connects only to addresses netguard has checked (at connect
time, so DNS rebinding can't sneak in), never follows redirects, holds one deadline
over the whole exchange, and turns every network failure into a `Response` with a
readable `error` instead of an exception.

It is a small HTTP/1.1 client of its own on plain sockets (stdlib `socket` and `ssl`):
a POST is one send and, for the usual short answer, one recv, which costs a fraction
of the CPU urllib3 or http.client spend on the same exchange.

Request bodies and headers (signatures) are never logged.
"""

from __future__ import annotations

import bisect
import collections
import functools
import ipaddress
import logging
import os
import re
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote

from tnt.netguard import UnsafeURL, resolve_checked

log = logging.getLogger(__name__)

MAX_HEADERS = 100
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 4096
_READ_CHUNK = 65536
_MAX_LINE = 65536  # longest response status, header or chunk-size line (http.client's limit)
_IDLE_CHECK = 1.0  # a pooled connection idle longer than this is checked before reuse (s)
_WATCH_GRANULARITY = 0.01  # the watchdog wakes at most this often (s)
_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


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
    """A failure we name ourselves; str(e) is the reason shown to the user.

    `late` failures (found while reading the answer) read "Connection closed mid-response"
    once a status line has arrived.
    """

    def __init__(self, reason: str, late: bool = False):
        super().__init__(reason)
        self.late = late


class _Disconnected(_Failure):
    """The server closed the connection before sending a byte of its answer."""

    def __init__(self) -> None:
        super().__init__("Connection closed without a response", late=True)


def _invalid_url(hint: str) -> _Failure:
    return _Failure(f"Invalid URL: {hint}")


_BAD_HEADER = "Invalid request header"  # never echoes the header: it may be a signature
_TOO_MANY_HEADERS = "Too many response headers (more than 100)"  # http.client's limit
_LINE_TOO_LONG = "Response header line too long"
_INVALID_RESPONSE = "Invalid HTTP response"
_CLOSED_MID_RESPONSE = "Connection closed mid-response"

# Failures on a reused connection before any answer: the server dropped it just as we reused it.
_STALE = (_Disconnected, ConnectionResetError, BrokenPipeError)


# --- the deadline ---------------------------------------------------------------------------


class _Attempt:
    """One post's deadline, and the socket the watchdog shuts down when it passes.

    Sockets are used in blocking mode once connected: the watchdog's shutdown is what ends a
    wait that would outlast the deadline. A watched socket is only closed after `detach` or
    `finish`, so the watchdog never shuts down a file descriptor that was reused meanwhile.
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
        """Stop watching the socket (it is about to be closed)."""
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
        """Stop watching. False if the deadline passed (the socket may have been shut down)."""
        with self.lock:
            self.done = True
            self.sock = None
            return not self.expired


def _shutdown(sock: socket.socket) -> None:
    # shutdown() wakes a recv/send blocked in another thread; close() would not. The plain socket
    # method also for TLS sockets: SSLSocket.shutdown would drop its TLS state under the reader.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Watchdog:
    """One thread that expires attempts at their deadlines (per-socket timeouts reset on every
    byte, so a server trickling a byte a second would otherwise hold a worker forever).

    Deadlines are taken under the lock, so with one timeout they arrive in order and a deque
    serves as the queue; finished attempts are dropped from its head as new ones come. The
    thread wakes at most every _WATCH_GRANULARITY, not once per POST.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[_Attempt] = collections.deque()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def start(self, timeout: float, allow_loopback: bool) -> _Attempt:
        """A new attempt with `timeout` seconds from now, watched."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tnt-deadlines", daemon=True)
                self._thread.start()
            attempt = _Attempt(time.monotonic() + timeout, allow_loopback)
            queue = self._queue
            while queue and queue[0].done:  # finished ones needn't wait for their deadlines
                queue.popleft()
            if queue and queue[-1].deadline > attempt.deadline:  # the timeout was shortened
                bisect.insort(queue, attempt, key=lambda a: a.deadline)
            else:
                queue.append(attempt)
            if queue[0] is attempt:
                self._cond.notify()
        return attempt

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        queue = self._queue
        while True:
            with self._cond:
                while not self._stopped:
                    if not queue:
                        self._cond.wait()
                        continue
                    delay = queue[0].deadline - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(max(delay, _WATCH_GRANULARITY))
                if self._stopped:
                    return
                now = time.monotonic()
                due = []
                while queue and queue[0].deadline <= now:
                    due.append(queue.popleft())
            for attempt in due:
                attempt.expire()


# --- connecting -----------------------------------------------------------------------------


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


class _Conn:
    """A connection (plain or TLS socket) and the pool it belongs to."""

    __slots__ = ("sock", "key", "idle_since")

    def __init__(self, sock: socket.socket, key: tuple):
        self.sock = sock
        self.key = key
        self.idle_since = 0.0

    def dropped(self) -> bool:
        """Whether the server closed this idle connection (or sent something unasked)."""
        try:
            # The plain socket method, also under TLS: a peek consumes no TLS record.
            socket.socket.recv(self.sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False  # nothing to read: still open
        except OSError:
            return True
        return True  # end of stream, or bytes nobody asked for

    def close(self) -> None:
        self.sock.close()


# --- the request ----------------------------------------------------------------------------


class _Target:
    """What a URL means to us: where to connect, and the request's first lines."""

    __slots__ = ("key", "tls", "host", "port", "prefix")

    def __init__(self, tls: bool, host: str, port: int, prefix: str):
        self.key = (tls, host, port)
        self.tls = tls
        self.host = host  # for DNS, the TLS server name and certificate check
        self.port = port
        self.prefix = prefix  # request line, Host and Accept-Encoding


_PREFIX_LINES = 3
_HOST_NAME = re.compile(r"[a-z0-9._~!$&'()*+,;=-]+").fullmatch
_PORT = re.compile(r"[0-9]{1,5}").fullmatch
_TARGET = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*").fullmatch
_TARGET_SAFE = "!$&'()*+,;=:@/?%~"


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> _Target:
    """Parse an http(s) URL. Userinfo and fragment are dropped; the path is percent-encoded
    where needed; the host is lower-cased and IDNA-encoded, as urllib3 did."""
    scheme = url[:8].lower()
    if scheme.startswith("http://"):
        tls, default_port, rest = False, 80, url[7:]
    elif scheme.startswith("https://"):
        tls, default_port, rest = True, 443, url[8:]
    else:
        raise _invalid_url("use an http:// or https:// URL")
    rest = rest.partition("#")[0]
    end = len(rest)
    for mark in "/?":
        found = rest.find(mark)
        if 0 <= found < end:
            end = found
    authority, path = rest[:end].rpartition("@")[2], rest[end:]
    if not authority:
        raise _invalid_url("No host specified.")
    bad = _invalid_url(f"'{authority}' is not a valid host or port")
    if authority.startswith("["):  # an IPv6 literal, perhaps with a zone: [fe80::1%25eth0]
        host, bracket, port_text = authority[1:].partition("]")
        host = host.lower().replace("%25", "%")
        try:
            if not bracket or ipaddress.ip_address(host.split("%")[0]).version != 6:
                raise bad
        except ValueError:
            raise bad from None
        host_header = f"[{host}]"
        if port_text and not port_text.startswith(":"):
            raise bad
        port_text = port_text[1:]
    else:
        host, _, port_text = authority.partition(":")
        try:
            host = host.lower() if host.isascii() else host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise bad from None
        if not _HOST_NAME(host):
            raise bad
        host_header = host
    if port_text:
        if not _PORT(port_text) or int(port_text) > 65535:
            raise bad
        port = int(port_text)
    else:
        port = default_port
    if port != default_port:
        host_header = f"{host_header}:{port}"
    if not path.startswith("/"):
        path = "/" + path
    if not _TARGET(path):
        path = quote(path, safe=_TARGET_SAFE)
    prefix = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept-Encoding: identity\r\n"
    return _Target(tls, host, port, prefix)


# Request header names, once checked: 0 = the caller's to send, 1 = User-Agent, 2 = ours
# (Host, Content-Length, Transfer-Encoding, Accept-Encoding are always set by us).
_NAMES: dict[str, int] = {}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+").fullmatch
_OURS = {"host", "content-length", "transfer-encoding", "accept-encoding"}


def _name_kind(name) -> int:
    if not isinstance(name, str) or not _TOKEN(name):
        raise _Failure(_BAD_HEADER)
    lower = name.lower()
    kind = 1 if lower == "user-agent" else 2 if lower in _OURS else 0
    if len(_NAMES) < 1000:
        _NAMES[name] = kind
    return kind


def _header_text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, int):
        return str(value)
    raise _Failure(_BAD_HEADER)


# --- the response ---------------------------------------------------------------------------


_HEAD_END = re.compile(rb"\n\r?\n")
_DIGITS = re.compile(r"[0-9]+").fullmatch
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}").fullmatch


class _Reader:
    """Reads one response from a socket. Bytes read past the response are kept in `buf`;
    a connection with any left over is not reused."""

    __slots__ = ("recv", "buf", "pos", "status", "headers", "keep_alive", "length", "chunked", "parts")

    def __init__(self, sock: socket.socket):
        self.recv = sock.recv
        self.buf = b""
        self.pos = 0
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self.length: int | None = None  # None: until the connection closes
        self.chunked = False
        self.parts: list[bytes] = []  # the body read so far, for a failure mid-body

    def read_head(self) -> None:
        """Read the status line and headers, skipping 1xx interim answers; sets `status` last."""
        while True:
            status, http_10, headers, names = _parse_head(self._head())
            if status >= 200:
                break
        connection = names.get("connection")
        self.keep_alive = not http_10 and not (connection and "close" in headers[connection].lower())
        encoding = names.get("transfer-encoding")
        length = names.get("content-length")
        if status in (204, 304):
            self.length = 0
        elif encoding:
            self.chunked = headers[encoding].lower().rstrip(" \t").endswith("chunked")
        elif length:
            values = {v.strip(" \t") for v in headers[length].split(",")}
            if len(values) != 1 or not _DIGITS(text := values.pop()):
                raise _Failure(_INVALID_RESPONSE, late=True)
            self.length = int(text)
        if self.length is None and not self.chunked:
            self.keep_alive = False  # the body ends when the connection does
        self.headers = headers
        self.status = status

    def _head(self) -> bytes:
        """The next response head's bytes, up to its blank line; limits checked as they arrive."""
        buf, pos = self.buf, self.pos
        start = counted = pos
        newlines = 0
        while True:
            end = _HEAD_END.search(buf, start)
            if end is not None:
                self.pos = end.end()
                return buf[pos:end.start()]
            newlines += buf.count(b"\n", counted)
            counted = len(buf)
            if newlines > MAX_HEADERS + 1:  # the status line and more than 100 header lines
                raise _Failure(_TOO_MANY_HEADERS)
            if len(buf) - max(buf.rfind(b"\n", pos) + 1, pos) >= _MAX_LINE:
                raise _Failure(_LINE_TOO_LONG)
            data = self.recv(_READ_CHUNK)
            if not data:
                if len(buf) > pos:
                    raise _Failure(_CLOSED_MID_RESPONSE, late=True)
                raise _Disconnected()
            start = max(len(buf) - 2, pos)  # a blank line may straddle the old end
            buf = self.buf = buf + data

    def read_body(self, max_body: int) -> tuple[bytes, bool]:
        """The body, at most max_body bytes of it, and whether there was more."""
        if self.chunked:
            return self._chunked(max_body)
        buf, pos, length = self.buf, self.pos, self.length
        if length is None:  # until the connection closes
            parts, got = self.parts, len(buf) - pos
            parts.append(buf[pos:])
            while got <= max_body:
                data = self.recv(_READ_CHUNK)
                if not data:
                    break
                parts.append(data)
                got += len(data)
            self.buf, self.pos = b"", 0
            body = b"".join(parts)
            return (body[:max_body], True) if got > max_body else (body, False)
        truncated = length > max_body
        if truncated:
            self.keep_alive = False  # the rest is never read
            length = max_body
        if len(buf) - pos >= length:  # usually all there with the head
            self.pos = pos + length
            return buf[pos:self.pos], truncated
        return self._exactly(length), truncated

    def leftover(self) -> bool:
        return len(self.buf) > self.pos

    def _exactly(self, n: int) -> bytes:
        buf, pos = self.buf, self.pos
        if len(buf) - pos >= n:
            self.pos = pos + n
            return buf[pos:self.pos]
        parts = self.parts
        start = len(parts)
        parts.append(buf[pos:])
        got = len(buf) - pos
        self.buf, self.pos = b"", 0
        while got < n:
            data = self.recv(min(_READ_CHUNK, n - got))
            if not data:
                raise _Failure(_CLOSED_MID_RESPONSE, late=True)
            parts.append(data)
            got += len(data)
        data = b"".join(parts[start:])
        del parts[start:]
        return data

    def _line(self) -> bytes:
        buf, pos = self.buf, self.pos
        end = buf.find(b"\n", pos)
        while end < 0:
            if len(buf) - pos > _MAX_LINE:
                raise _Failure(_LINE_TOO_LONG)
            data = self.recv(_READ_CHUNK)
            if not data:
                raise _Failure(_CLOSED_MID_RESPONSE, late=True)
            buf, pos = buf[pos:] + data, 0
            end = buf.find(b"\n")
        if end - pos >= _MAX_LINE:
            raise _Failure(_LINE_TOO_LONG)
        self.buf, self.pos = buf, end + 1
        return buf[pos:end].rstrip(b"\r")

    def _chunked(self, max_body: int) -> tuple[bytes, bool]:
        parts, got = self.parts, 0
        while True:
            size = self._line().partition(b";")[0].strip(b" \t")
            if not _HEX(size):
                raise _Failure(_INVALID_RESPONSE, late=True)
            size = int(size, 16)
            if size == 0:
                for _ in range(MAX_HEADERS + 1):  # trailers, ignored
                    if not self._line():
                        return b"".join(parts), False
                raise _Failure(_TOO_MANY_HEADERS)
            take = min(size, max_body + 1 - got)
            parts.append(self._exactly(take))
            got += take
            if got > max_body:
                self.keep_alive = False
                return b"".join(parts)[:max_body], True
            if self._line():
                raise _Failure(_INVALID_RESPONSE, late=True)


def _parse_head(head: bytes) -> tuple[int, bool, dict[str, str], dict[str, str]]:
    """Status, whether HTTP/1.0, headers (repeated names joined with ", ", first spelling kept)
    and {lower-case name: that spelling}. Lines that aren't headers are ignored."""
    if head.count(b"\n") > MAX_HEADERS:
        raise _Failure(_TOO_MANY_HEADERS)
    if len(head) >= _MAX_LINE and max(map(len, head.split(b"\n"))) >= _MAX_LINE:
        raise _Failure(_LINE_TOO_LONG)
    lines = head.decode("latin-1").split("\n")
    parts = lines[0].split(None, 2)
    if (len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3
            or not parts[1].isascii() or not parts[1].isdigit() or parts[1][0] == "0"):
        raise _Failure(_INVALID_RESPONSE, late=True)
    headers: dict[str, str] = {}
    names: dict[str, str] = {}
    name = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):  # an obsolete folded continuation
            if name is not None:
                headers[name] += " " + line.strip()
            continue
        key, colon, value = line.partition(":")
        key = key.strip()
        if not colon or not key:
            continue
        value = value.strip()
        name = names.get(lower := key.lower())
        if name is None:
            names[lower] = name = key
            headers[key] = value
        else:
            headers[name] += ", " + value
    return int(parts[1]), parts[0] == "HTTP/1.0", headers, names


# --- the client -----------------------------------------------------------------------------


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
        # (tls, host, port) -> idle connections, least recently used host first.
        self._idle: collections.OrderedDict[tuple, list[_Conn]] = collections.OrderedDict()
        self._watchdog = _Watchdog()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        """POST body to url; return what happened, always within `timeout` seconds."""
        if self._pid != os.getpid():
            # Forked (RQ's work horse): the watchdog thread didn't come along, and the parent's
            # sockets must not be shared. Start afresh without touching the parent's state.
            self._start()
        attempt = self._watchdog.start(self.timeout, self.allow_loopback)
        started = attempt.deadline - self.timeout
        conn = reader = None
        data = b""
        truncated = False
        error = None
        try:
            target = _target(url)
            request = self._request(target, body, headers)
            conn = self._checkout(target.key)
            while True:
                fresh = conn is None
                if fresh:
                    conn = self._connect(target, attempt)
                else:
                    attempt.attach(conn.sock)
                reader = _Reader(conn.sock)
                try:
                    _send(conn.sock, request)
                    reader.read_head()
                    break
                except _STALE:
                    # A pooled connection the server dropped just as we reused it (the keep-alive
                    # race) fails before any response. Retry once on a fresh connection: at worst
                    # the receiver sees a duplicate, which at-least-once delivery already allows.
                    if fresh or attempt.expired:
                        raise
                    attempt.detach()
                    conn.close()
                    conn = None
            data, truncated = reader.read_body(self.max_body)
            # The watchdog's shutdown looks like the end of a body without a length.
            if attempt.expired:
                error = self._timed_out()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a Response
            got_status = reader is not None and reader.status is not None
            error = self._reason(exc, attempt, got_status=got_status)
            if got_status:
                data = b"".join(reader.parts)
        finally:
            intact = attempt.finish()
            finished = time.monotonic()
            if conn is not None:
                if intact and error is None and reader.keep_alive and not reader.leftover():
                    self._checkin(conn, finished)
                else:
                    conn.close()  # unread bytes would poison the next request on this connection
        return Response(
            status=reader.status if reader is not None else None,
            headers=_capped_headers(reader.headers) if reader is not None else {},
            body=data[: self.max_body].decode("utf-8", errors="replace"),
            error=error,
            duration_ms=int((finished - started) * 1000),
            truncated=truncated,
        )

    def close(self) -> None:
        """Close pooled connections and stop the deadline thread."""
        with self._lock:
            pools = list(self._idle.values())
            self._idle.clear()
        for conns in pools:
            for conn in conns:
                conn.close()
        self._watchdog.stop()

    def _request(self, target: _Target, body: bytes, headers: dict[str, str]) -> bytes:
        """The request's head and body as bytes to send. Refuses header names that aren't
        tokens and values with CR, LF or NUL (header injection) before anything is sent."""
        lines = [target.prefix]
        user_agent = f"User-Agent: {self.user_agent}\r\n"
        for name, value in headers.items():
            kind = _NAMES.get(name)
            if kind is None:
                kind = _name_kind(name)
            if kind:
                if kind == 2:
                    continue
                user_agent = ""
            lines.append(f"{name}: {value if value.__class__ is str else _header_text(value)}\r\n")
        if not isinstance(body, bytes):
            body = body.encode() if isinstance(body, str) else bytes(body)
        lines.append(f"{user_agent}Content-Length: {len(body)}\r\n\r\n")
        head = "".join(lines)
        # Each line we wrote ends in one CRLF; any other CR or LF came from a name or value.
        expected = _PREFIX_LINES + len(lines) + (user_agent != "")
        if head.count("\n") != expected or head.count("\r") != expected or "\0" in head:
            raise _Failure(_BAD_HEADER)
        try:
            head = head.encode("latin-1")
        except UnicodeEncodeError:
            raise _Failure(_BAD_HEADER) from None
        # One send for the usual small body; a big one isn't copied.
        return head + body if len(body) <= _READ_CHUNK else (head, body)

    def _checkout(self, key: tuple) -> _Conn | None:
        """An idle pooled connection to reuse, or None."""
        while True:
            with self._lock:
                conns = self._idle.get(key)
                if not conns:
                    return None
                conn = conns.pop()
            # One that idled a while may have been closed by the server: check. One that didn't is
            # not worth a syscall; if it was just closed, the keep-alive retry covers it.
            if time.monotonic() - conn.idle_since < _IDLE_CHECK or not conn.dropped():
                return conn
            conn.close()

    def _checkin(self, conn: _Conn, now: float) -> None:
        """Back to the pool, unless it is full (then closed), evicting the least recent host."""
        conn.idle_since = now
        extra: list[_Conn] = []
        with self._lock:
            conns = self._idle.get(conn.key)
            if conns is None:
                conns = self._idle[conn.key] = []
                if len(self._idle) > self.max_hosts:
                    extra = self._idle.popitem(last=False)[1]
            else:
                self._idle.move_to_end(conn.key)
            if len(conns) < self.max_per_host:
                conns.append(conn)
            else:
                extra.append(conn)
        for other in extra:
            other.close()

    def _connect(self, target: _Target, attempt: _Attempt) -> _Conn:
        """A new connection to a netguard-checked address of the target, under the deadline.

        The Host header and the TLS server name stay the URL's host: only the socket's
        target is the checked IP.
        """
        ips = _resolve_within_deadline(target.host, target.port, attempt)
        sock = _connect_first(ips, target.port, attempt, _SOCKET_OPTIONS)
        log.debug("New connection to %s:%s (%s)", target.host, target.port,
                  "https" if target.tls else "http")
        try:
            sock.settimeout(None)  # blocking from here: the watchdog bounds every wait
            if target.tls:
                sock = self._tls().wrap_socket(
                    sock, server_hostname=target.host, do_handshake_on_connect=False)
            attempt.attach(sock)
            if target.tls:
                sock.do_handshake()
        except BaseException:
            attempt.detach()
            sock.close()
            raise
        return _Conn(sock, target.key)

    def _tls(self) -> ssl.SSLContext:
        # Certificates required and checked against the URL's host; SNI sent (ssl's defaults).
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
            return _CLOSED_MID_RESPONSE
        if isinstance(exc, _Failure):
            return str(exc)
        if isinstance(exc, ConnectionResetError):
            return "Connection reset by the server"
        if isinstance(exc, OSError) and exc.strerror:
            return f"Connection failed: {exc.strerror}"
        # The exception's text is left out: it could quote request headers.
        return f"Request failed ({type(exc).__name__})"


def _send(sock: socket.socket, request) -> None:
    try:
        if isinstance(request, bytes):
            sock.sendall(request)
        else:
            for part in request:
                sock.sendall(part)
    except (BrokenPipeError, ConnectionResetError):
        # The server may have answered and closed before reading it all: read what it said.
        pass


def _capped_headers(headers: dict[str, str]) -> dict[str, str]:
    """Response headers bounded in count and size."""
    capped: dict[str, str] = {}
    for name, value in headers.items():
        if len(capped) >= MAX_HEADERS:
            break
        capped[name[:MAX_HEADER_NAME]] = value[:MAX_HEADER_VALUE]
    return capped
