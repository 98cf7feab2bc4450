"""The HTTP client that POSTs webhook bodies to customer endpoints, on libcurl's multi interface.

One `Transport` per worker process. Every POST is a libcurl easy handle on one CurlMulti that
the transport's own event-loop thread drives (epoll and libcurl's socket API), so thousands
can be in flight and a black-holed endpoint costs a socket, not a thread.

- One deadline (`timeout`) covers name lookup, connect, TLS, send and read.
- SSRF: every address is checked by netguard in the open-socket callback, at connect time,
  every time, so DNS rebinding can't slip past.
- Names are resolved here, one lookup thread per name being resolved (never a shared pool),
  and handed to libcurl with CURLOPT_RESOLVE: a stuck DNS server delays only its own names.
  (libcurl's own resolver shares 20 threads that pycurl cannot raise; see docs/architecture.md.)
- Bounded reads: max_body of body, 64 KiB of response headers read and 8 KiB kept, at most 10
  interim 1xx answers. No redirects, no proxies, no decompression; TLS 1.2+ against the
  system CA bundle, SNI sent.
- Every failure is a `Response` with a readable `error`; nothing raises for network trouble.

Request bodies and headers (signatures) are never logged.
"""

from __future__ import annotations

import _thread
import collections
import contextlib
import ctypes
import functools
import heapq
import logging
import os
import re
import selectors
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

import pycurl

from tnt import netguard

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 65536  # response header bytes read per exchange, all 1xx blocks included
MAX_STORED_HEADERS = 8192  # bytes of names and values kept in Response.headers
MAX_HEADERS = 100  # header lines in one response block
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 4096
MAX_INTERIM = 10  # 1xx answers before the final one
DNS_FRESH = 60.0  # s a lookup is used without asking again
DNS_STALE = 600.0  # s a lookup may still be used while a new one is under way
MAX_LOOKUPS = 64  # lookup threads at once (one per name); more names wait their turn
_KEEP_EASY = 256  # idle easy handles kept for reuse

_TOO_MANY_HEADERS = f"Too many response headers (more than {MAX_HEADERS})"
_LINE_TOO_LONG = "Response header line too long"
_HEADERS_TOO_LARGE = f"Response headers too large (more than {MAX_HEADER_BYTES // 1024} KiB)"
_TOO_MANY_INTERIM = f"Too many interim 1xx responses (more than {MAX_INTERIM})"
_INVALID = "Invalid HTTP response"
_CUT = "Connection closed mid-response"
_BAD_HEADER = "Invalid request header"  # never echoes the header: it may be a signature
_CLOSED = "Transport closed"

Done = Callable[["Response"], None]


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
    """A request refused before it is sent: str(e) is the reason."""


# --- the request: URL and headers, checked in the caller's thread -------------------------


class _Target(NamedTuple):
    scheme: str
    host: str
    port: int
    url: str
    name: str | None  # None for an IP address


_NO_TARGET = _Target("", "", 0, "", None)  # a job refused before it had one
_HOST = re.compile(r"[a-z0-9._~!$&'()*+,;=-]+").fullmatch
_AUTHORITY = re.compile(r"//([^/?#]*)")
_PATH = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*").fullmatch


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> _Target:
    """Parse an http(s) URL: userinfo and fragment dropped, the host lower-cased in its IDNA 2008
    ASCII form, legacy IPv4 spellings (2130706433, 127.1) made plain, the path percent-encoded
    where needed. The URL handed to libcurl is rebuilt from these parts."""
    if not url[:8].lower().startswith(("http://", "https://")):
        raise _Failure("Invalid URL: use an http:// or https:// URL")
    found = _AUTHORITY.search(url)
    authority = found[1].rpartition("@")[2] if found else ""
    if not authority:
        raise _Failure("Invalid URL: No host specified.")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port  # hostname: lower-cased, no [brackets]
        if "[" in authority:  # IPv6, perhaps with a zone: [fe80::1%25eth0]
            address, _, zone = host.replace("%25", "%").partition("%")
            if (
                netguard._parse_ip(address).version != 6
                or (zone and not _HOST(zone))
                or authority.partition("]")[2][:1] not in ("", ":")
            ):
                raise ValueError
            host, name = (f"{address}%{zone}" if zone else address), None
            in_url = f"[{address}%25{zone}]" if zone else f"[{address}]"
        else:
            literal = netguard._literal_ip(host.removesuffix("."))
            if literal is not None:
                host = in_url = str(literal)
                name = None
            else:
                host = in_url = name = netguard.ascii_host(host)
                if not _HOST(host) or ".." in host or host.startswith("."):
                    raise ValueError
    except (ValueError, UnicodeError):
        raise _Failure(f"Invalid URL: '{authority}' is not a valid host or port") from None
    scheme = parts.scheme.lower()
    default = 443 if scheme == "https" else 80
    port = default if port is None else port
    if port == 0:
        raise _Failure(f"Invalid URL: '{authority}' is not a valid host or port")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not _PATH(path):
        path = quote(path, safe="!$&'()*+,;=:@/?%~")
    netloc = in_url if port == default else f"{in_url}:{port}"
    return _Target(scheme, host, port, f"{scheme}://{netloc}{path}", name)


# Request header names once checked: 0 = the caller's, 2 = always ours (dropped).
_NAMES: dict[str, int] = {}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+").fullmatch
_OURS = {"host", "content-length", "transfer-encoding", "accept-encoding", "expect", "connection"}
_UNSAFE_VALUE = re.compile(r"[\r\n\0]").search
# libcurl adds "Accept: */*" and, for big bodies, "Expect: 100-continue": an empty value removes them.
_REMOVE_DEFAULTS = [b"Accept:", b"Expect:"]


def _header_lines(headers: dict[str, str]) -> list[bytes]:
    """The caller's headers as libcurl lines. Names must be tokens, and no CR, LF or NUL may
    be in a value (header injection): refused before anything is sent. Host, Content-Length
    and the like are ours; the caller's User-Agent replaces ours."""
    lines = []
    for name, value in headers.items():
        kind = _NAMES.get(name)
        if kind is None:
            if not isinstance(name, str) or not _TOKEN(name):
                raise _Failure(_BAD_HEADER)
            kind = 2 if name.lower() in _OURS else 0
            if len(_NAMES) < 1000:
                _NAMES[name] = kind
        if kind == 2:
            continue
        if not isinstance(value, str) or _UNSAFE_VALUE(value):
            raise _Failure(_BAD_HEADER)
        try:
            # "Name;" is libcurl's way to send an empty header ("Name:" would remove it).
            lines.append(f"{name}: {value}".encode("latin-1") if value else f"{name};".encode())
        except UnicodeEncodeError:
            raise _Failure(_BAD_HEADER) from None
    return lines + _REMOVE_DEFAULTS


class _Job:
    """One submitted POST, from submit() to done()."""

    __slots__ = ("body", "deadline", "done", "error", "headers", "started", "target", "waiting")

    def __init__(
        self,
        target: _Target,
        body: bytes,
        headers: list[bytes],
        done: Done,
        started: float,
        deadline: float,
        error: str | None = None,
    ) -> None:
        self.target, self.body, self.headers, self.done = target, body, headers, done
        self.started, self.deadline, self.error = started, deadline, error
        self.waiting = False  # for a name lookup

    def failed(self, error: str, status: int | None = None) -> Response:
        return Response(status=status, error=error, duration_ms=_ms_since(self.started))


def _shutdown(fd: int) -> None:
    """Shut a connection libcurl still holds: its next use sees it closed. The fd stays libcurl's."""
    sock = socket.socket(fileno=fd)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


# --- one exchange on one easy handle ------------------------------------------------------

_STATUS_LINE = re.compile(rb"HTTP/1\.[0-9] +([1-9][0-9][0-9])").match  # HTTP/1.1 only: no "HTTP/2"
_TLS_CODES = {
    pycurl.E_SSL_CONNECT_ERROR,
    pycurl.E_PEER_FAILED_VERIFICATION,
    pycurl.E_SSL_CERTPROBLEM,
    pycurl.E_SSL_CIPHER,
    pycurl.E_SSL_CACERT_BADFILE,
    pycurl.E_SSL_ISSUER_ERROR,
    pycurl.E_SSL_PINNEDPUBKEYNOTMATCH,
    pycurl.E_SSL_INVALIDCERTSTATUS,
    pycurl.E_SSL_ENGINE_INITFAILED,
    pycurl.E_USE_SSL_FAILED,
}
# libcurl's words for a certificate it refused, in OpenSSL's terms as the old client had them.
_TLS_CERT = re.compile(
    r"(?:SSL certificate OpenSSL verify result: |SSL certificate problem: |SSL: )"
    r"(.*certificate.*?)(?: \(\d+\))?"
).fullmatch
_E_WEIRD_SERVER_REPLY = 8  # pycurl names it E_FTP_WEIRD_SERVER_REPLY
_E_TOO_LARGE = 100  # CURLE_TOO_LARGE (8.6.0): a header line past libcurl's own 100 KiB limit


class _Exchange:
    """An easy handle with its callbacks and the state of the POST it carries; reused."""

    __slots__ = (
        "body",
        "body_len",
        "code",
        "curl",
        "expect_status",
        "failure",
        "fields",
        "framing",
        "header_bytes",
        "in_body",
        "interim",
        "job",
        "last",
        "lines",
        "names",
        "own_capture",
        "refused",
        "settings",
        "status",
        "stored",
        "truncated",
    )

    curl: pycurl.Curl
    settings: Transport
    job: _Job | None
    code: int
    expect_status: bool
    in_body: bool
    status: int | None
    interim: int
    lines: int
    header_bytes: int
    stored: int
    fields: dict[str, str]
    names: dict[str, str]
    last: str | None
    body: list[bytes]
    body_len: int
    truncated: bool
    failure: str | None
    refused: netguard.UnsafeURL | None
    framing: int

    def __init__(self, settings: Transport) -> None:
        self.settings = settings
        c = self.curl = pycurl.Curl()
        c.setopt(pycurl.NOSIGNAL, 1)
        c.setopt(pycurl.POST, 1)
        c.setopt(
            pycurl.PROTOCOLS,
            pycurl.PROTO_HTTPS if settings.https_only else pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS,
        )
        c.setopt(pycurl.FOLLOWLOCATION, 0)
        c.setopt(pycurl.PROXY, "")  # never a proxy from the environment
        c.setopt(pycurl.NOPROXY, "*")
        c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        c.setopt(pycurl.PATH_AS_IS, 1)
        c.setopt(pycurl.USERAGENT, settings.user_agent)
        c.setopt(pycurl.SSLVERSION, pycurl.SSLVERSION_TLSv1_2)
        c.setopt(pycurl.SSL_VERIFYPEER, 1)
        c.setopt(pycurl.SSL_VERIFYHOST, 2)
        cafile, capath = settings._trust
        if cafile:
            c.setopt(pycurl.CAINFO, cafile)
        if capath:
            c.setopt(pycurl.CAPATH, capath)
        c.setopt(pycurl.MAXAGE_CONN, max(1, round(settings.idle_timeout)))
        c.setopt(pycurl.HEADERFUNCTION, self._header)
        c.setopt(pycurl.WRITEFUNCTION, self._body)
        c.setopt(pycurl.OPENSOCKETFUNCTION, self._open_socket)
        # Names come resolved (CURLOPT_RESOLVE); a lookup by libcurl itself would be a bug here.
        c.setopt(pycurl.RESOLVER_START_FUNCTION, self._resolver_start)
        self.job = None

    def begin(self, job: _Job, resolve: str | None, remaining: float) -> None:
        self.job = job
        self.code = 0
        self.expect_status, self.in_body, self.status = True, False, None
        self.interim = self.lines = self.header_bytes = self.stored = 0
        self.fields, self.names, self.last = {}, {}, None
        self.body, self.body_len, self.truncated = [], 0, False
        self.failure = self.refused = None
        self.framing = 0
        # Decided once per POST: is this the service's own inspector (see netguard)? Only a
        # POST to the service's own origin is worth parsing again; the rest fail on a tuple.
        t, own = job.target, self.settings._own_origin
        self.own_capture: bool = (
            own is not None
            and (t.scheme, t.host, t.port) == own
            and netguard.is_own_capture_url(t.url, self.settings.own_capture_base)
        )
        c = self.curl
        # A connection that only that exception let through is closed after its POST: cached,
        # it would carry the next POST to the same host and port past the open-socket check.
        c.setopt(pycurl.FORBID_REUSE, 1 if self.own_capture else 0)
        c.setopt(pycurl.URL, job.target.url)
        c.setopt(pycurl.POSTFIELDS, job.body)  # not copied: pycurl keeps a reference
        c.setopt(pycurl.HTTPHEADER, job.headers)
        c.setopt(pycurl.TIMEOUT_MS, max(1, int(remaining * 1000)))
        if resolve:
            c.setopt(pycurl.RESOLVE, [resolve])
        else:
            c.unsetopt(pycurl.RESOLVE)

    def _abort(self, reason: str) -> int:
        self.failure = reason
        return 0  # any count but the one given aborts the transfer (CURLE_WRITE_ERROR)

    def _header(self, line: bytes) -> int | None:
        """Every response header line, 1xx blocks and trailers included: counted and capped;
        only the final response's headers are kept."""
        size = len(line)
        self.header_bytes += size
        if self.header_bytes > MAX_HEADER_BYTES:
            return self._abort(_LINE_TOO_LONG if size > MAX_HEADER_BYTES else _HEADERS_TOO_LARGE)
        if self.in_body:
            return None  # trailers: counted, not kept
        if self.expect_status:
            match = _STATUS_LINE(line)
            if match is None:
                return self._abort(_INVALID)
            self.code, self.expect_status, self.lines = int(match[1]), False, 0
            if self.code < 200:
                self.interim += 1
                if self.interim > MAX_INTERIM:
                    return self._abort(_TOO_MANY_INTERIM)
            return None
        if line == b"\r\n" or line == b"\n":
            if self.code >= 200:
                self.in_body, self.status = True, self.code
            else:
                self.expect_status = True
            return None
        self.lines += 1
        if self.lines > MAX_HEADERS:
            return self._abort(_TOO_MANY_HEADERS)
        if self.code >= 200:
            head = line[:18].lower()
            if head.startswith(b"content-length:"):
                self.framing |= 1
            elif head.startswith(b"transfer-encoding:"):
                self.framing |= 2
            self._keep(line.decode("latin-1"))
        return None

    def _keep(self, line: str) -> None:
        """Store a header of the final response: repeated names joined with ", " under their
        first spelling, names and values capped, at most MAX_STORED_HEADERS in all."""
        fields = self.fields
        if line[:1] in (" ", "\t"):  # an obsolete folded continuation
            name, value, sep = self.last, line.strip(), " "
            if name is None:
                return
        else:
            key, colon, value = line.partition(":")
            key, value, sep = key.strip()[:MAX_HEADER_NAME], value.strip(), ", "
            if not colon or not key:
                return
            name = self.names.get(lower := key.lower())
            if name is None:
                value = value[:MAX_HEADER_VALUE]
                if self.stored + len(key) + len(value) > MAX_STORED_HEADERS:
                    return
                self.names[lower] = self.last = key
                fields[key] = value
                self.stored += len(key) + len(value)
                return
        old = fields[name]
        new = (old + sep + value)[:MAX_HEADER_VALUE]
        if self.stored + len(new) - len(old) <= MAX_STORED_HEADERS:
            fields[name] = new
            self.stored += len(new) - len(old)
        self.last = name

    def _body(self, data: bytes) -> int | None:
        room = self.settings.max_body - self.body_len
        if len(data) > room:
            if room > 0:
                self.body.append(data[:room])
                self.body_len += room
            self.truncated = True
            return 0  # abort: the rest is never read, and the connection is not reused
        self.body.append(data)
        self.body_len += len(data)
        return None

    def _resolver_start(self, *args: object) -> int:
        if self.job is None or self.job.target.name is None:
            return 0  # an IP address: libcurl "resolves" it without DNS
        log.warning("libcurl started a name lookup of its own; refused")
        return 1

    def _open_socket(self, purpose: int, address: Any) -> int:
        """libcurl wants a socket to connect to `address`: the SSRF check, every time."""
        ip = address.addr[0]
        refusal = netguard.connect_refusal(
            ip, allow_loopback=self.settings.allow_loopback, own_capture=self.own_capture
        )
        if refusal is not None:
            self.refused = refusal
            log.info("Refused to connect to %s (%s address)", refusal.address, refusal.kind)
            return pycurl.SOCKET_BAD
        log.debug("Connecting to %s port %s", ip, address.addr[1])
        return socket.socket(address.family, address.socktype, address.protocol).detach()

    def carrying(self) -> _Job:
        """The job under way: an exchange in the multi always has one."""
        if self.job is None:
            raise RuntimeError("no job under way")
        return self.job

    def finish(self, code: int, message: str) -> Response:
        """The Response for this exchange, which is then forgotten."""
        job, body = self.job, b"".join(self.body)
        if job is None:
            raise RuntimeError("finish() without a job")
        error = None
        if code and not (code == pycurl.E_WRITE_ERROR and self.truncated and self.failure is None):
            error = self._reason(code, message)
        response = Response(
            status=self.status,
            headers=self.fields if self.in_body else {},
            body=body.decode("utf-8", errors="replace"),
            error=error,
            duration_ms=_ms_since(job.started),
            truncated=self.truncated,
        )
        self.job, self.body, self.fields, self.names = None, [], {}, {}
        self.refused = None
        return response

    def _reason(self, code: int, message: str) -> str:
        """A short human reason for a failed transfer (never quoting request headers)."""
        if self.failure:
            return self.failure
        if code == pycurl.E_OPERATION_TIMEDOUT:
            return self.settings._timed_out
        if self.refused is not None and code == pycurl.E_COULDNT_CONNECT:
            refused = self.refused
            article = "an" if (refused.kind or "x")[0] in "aeiou" else "a"
            return f"Refused: {refused.address} is {article} {refused.kind} address"
        if code == pycurl.E_COULDNT_CONNECT:
            errno = self.curl.getinfo(pycurl.OS_ERRNO)
            if errno == 111:  # ECONNREFUSED
                return "Connection refused"
            return f"Connection failed: {os.strerror(errno)}" if errno else "Connection failed"
        if code == pycurl.E_COULDNT_RESOLVE_HOST:
            host = self.job.target.host if self.job is not None else "?"
            return f"Could not resolve host {host}"
        if code in _TLS_CODES:
            cert = _TLS_CERT(message)
            return (
                f"TLS error: certificate verify failed: {cert[1]}"
                if cert
                else f"TLS error: {message}"
            )
        if code == pycurl.E_GOT_NOTHING:
            return "Connection closed without a response"
        if self.status is not None and code in (
            pycurl.E_PARTIAL_FILE,
            pycurl.E_RECV_ERROR,
            pycurl.E_SEND_ERROR,
            _E_WEIRD_SERVER_REPLY,
        ):
            return _CUT
        if code == _E_TOO_LARGE:
            return _LINE_TOO_LONG
        if code in (_E_WEIRD_SERVER_REPLY, pycurl.E_UNSUPPORTED_PROTOCOL):
            return _INVALID
        if code in (pycurl.E_RECV_ERROR, pycurl.E_SEND_ERROR):
            errno = self.curl.getinfo(pycurl.OS_ERRNO)
            if errno == 104:  # ECONNRESET
                return "Connection reset by the server"
            if errno == 32:  # EPIPE
                return "Connection closed while sending"
            return f"Connection failed: {os.strerror(errno)}" if errno else _INVALID
        return f"Request failed: {message or pycurl.easy_strerror(code)}"


# --- the event loop -----------------------------------------------------------------------


def _start_thread(function: Callable[..., None], args: tuple[Any, ...]) -> None:
    # Not threading.Thread.start(), which waits until the new thread runs: on a busy machine
    # that wait, on the loop thread, delayed everyone (25 lookups started at once: ~180 ms).
    _thread.start_new_thread(function, args)


_Finished = tuple["_Job", Response]  # a job and its outcome, for done() after the turn


class _Name:
    """What one host name resolves to, and the jobs waiting for it."""

    __slots__ = ("addresses", "fresh_until", "looking", "usable_until", "waiting")

    def __init__(self) -> None:
        self.addresses: str | None = None  # "a,[b]" as CURLOPT_RESOLVE wants them
        self.fresh_until = self.usable_until = 0.0
        self.looking = False
        self.waiting: list[_Job] = []


class _Loop:
    """The per-process machinery: a CurlMulti, the thread that drives it, and name lookups.
    Everything but `put` runs on the loop thread."""

    def __init__(self, settings: Transport) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.inbox: list[_Job | tuple[str, str]] = []
        self.signalled = False
        self.stopping = False
        self.in_flight = 0
        self.gate = threading.RLock()  # held while in libcurl; a fork waits for it
        self.wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self.selector = selectors.EpollSelector()
        self.selector.register(self.wake, selectors.EVENT_READ)
        self.multi: pycurl.CurlMulti | None = None
        self.timer_at: float | None = None
        self.active: dict[pycurl.Curl, _Exchange] = {}
        self.spare: list[_Exchange] = []
        self.names: dict[str, _Name] = {}
        self.deadlines: list[tuple[float, int, _Job]] = []  # jobs waiting for a lookup
        self.seq = 0
        self.lookups = 0
        self.lookups_queued: collections.deque[str] = collections.deque()
        self.idle_since = time.monotonic()
        self.finished: list[_Finished] = []
        self.thread = threading.Thread(target=self._run, name="tnt-transport", daemon=True)
        _loops.add(self)
        self.thread.start()

    def put(self, item: _Job | tuple[str, str]) -> bool:
        """From any thread: hand the loop a job or a lookup result. False once stopping."""
        with self.lock:  # the eventfd is written and closed under the lock: never a stale fd
            if self.stopping:
                return False
            self.inbox.append(item)
            if not self.signalled:
                self.signalled = True
                os.eventfd_write(self.wake, 1)
        return True

    def stop(self) -> None:
        with self.lock:
            if not self.stopping:
                self.stopping = True
                os.eventfd_write(self.wake, 1)

    # libcurl's callbacks
    def _on_socket(self, what: int, fd: int, multi: object, socketp: object) -> None:
        selector = self.selector
        if what == pycurl.POLL_REMOVE or what == pycurl.POLL_NONE:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(fd)
            return
        events = (selectors.EVENT_READ if what & pycurl.POLL_IN else 0) | (
            selectors.EVENT_WRITE if what & pycurl.POLL_OUT else 0
        )
        try:
            selector.modify(fd, events)
        except (KeyError, OSError):  # new, or closed and reused without a POLL_REMOVE
            try:
                selector.register(fd, events)
            except (KeyError, ValueError, OSError) as exc:
                log.error("Cannot watch socket %s: %s", fd, exc)

    def _on_timer(self, ms: int) -> None:
        self.timer_at = None if ms < 0 else time.monotonic() + ms / 1000

    def _new_multi(self) -> pycurl.CurlMulti:
        s = self.settings
        multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        multi.setopt(pycurl.M_MAXCONNECTS, s.max_idle)
        multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, s.max_per_host)
        multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, s.max_connections)
        return multi

    def _run(self) -> None:
        while True:
            events = self.selector.select(self._wait_time())
            with self.gate:
                self.finished = finished = list[_Finished]()
                try:
                    stopping = self._turn(events)
                except Exception:
                    log.exception("The transport's event loop failed a turn")
                    stopping = False
            self._call_back(finished)
            if stopping:
                return

    def _turn(self, events: list[tuple[selectors.SelectorKey, int]]) -> bool:
        """One turn of the loop, under the gate: sockets, submissions, timers. True once stopped."""
        read, action = selectors.EVENT_READ, self._action
        for key, mask in events:
            if key.fd == self.wake:
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self.wake)
                continue
            action(
                key.fd,
                (pycurl.CSELECT_IN if mask & read else 0)
                | (pycurl.CSELECT_OUT if mask & selectors.EVENT_WRITE else 0),
            )
        stopping = self._take_inbox()
        self._expire_waiting()
        if self.timer_at is not None and self.timer_at <= time.monotonic():
            self.timer_at = None
            action(pycurl.SOCKET_TIMEOUT, 0)
        self._read_done()
        if stopping:
            self._shut_down()
        else:
            self._recycle_when_idle()
        return stopping

    def _action(self, fd: int, mask: int) -> None:
        if self.multi is None:
            return
        try:
            self.multi.socket_action(fd, mask)
        except pycurl.error as exc:  # e.g. an fd libcurl closed meanwhile: nothing to do
            log.debug("socket_action(%s): %s", fd, exc)

    def _wait_time(self) -> float | None:
        now, times = time.monotonic(), []
        if self.timer_at is not None:
            times.append(self.timer_at)
        if self.deadlines:
            times.append(self.deadlines[0][0])
        if self.multi is not None and not self.active:
            times.append(self.idle_since + self.settings.idle_timeout)
        return max(min(times) - now, 0.0) if times else None

    def _take_inbox(self) -> bool:
        with self.lock:
            items, self.inbox, self.signalled = self.inbox, [], False
            stopping = self.stopping
        for item in items:
            if isinstance(item, _Job):
                self._accept(item)
            else:
                self._looked_up(*item)
        return stopping

    def _accept(self, job: _Job) -> None:
        if job.error:
            self.finished.append((job, job.failed(job.error)))
            return
        name = job.target.name
        if name is None:
            self._start(job, None)
            return
        entry = self.names.get(name)
        if entry is None:
            entry = self.names[name] = _Name()
        now = time.monotonic()
        if entry.addresses and now < entry.usable_until:
            if now >= entry.fresh_until:
                self._look_up(name, entry)  # meanwhile the last answer serves
            self._start(job, entry)
            return
        job.waiting = True
        entry.waiting.append(job)
        self.seq += 1
        heapq.heappush(self.deadlines, (job.deadline, self.seq, job))
        self._look_up(name, entry)

    def _look_up(self, name: str, entry: _Name) -> None:
        if entry.looking:
            return  # one lookup per name at a time, however many jobs wait for it
        entry.looking = True
        if self.lookups >= MAX_LOOKUPS:
            self.lookups_queued.append(name)
            return
        self.lookups += 1
        _start_thread(self._resolve, (name,))

    def _resolve(self, name: str) -> None:
        """On a lookup thread: getaddrinfo, which nothing can interrupt, so it has a thread of its
        own; the loop meanwhile serves everyone else."""
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            infos = []
        addresses = []
        for *_, sockaddr in infos:
            ip = str(sockaddr[0]).split("%", 1)[
                0
            ]  # a scope is no use: link-local is refused anyway
            text = f"[{ip}]" if ":" in ip else ip
            if text not in addresses:
                addresses.append(text)
        self.put((name, ",".join(addresses)))

    def _looked_up(self, name: str, addresses: str) -> None:
        self.lookups -= 1
        while self.lookups_queued and self.lookups < MAX_LOOKUPS:
            self.lookups += 1
            queued = self.lookups_queued.popleft()
            _start_thread(self._resolve, (queued,))
        entry = self.names.get(name)
        if entry is None:
            return
        entry.looking = False
        now = time.monotonic()
        if addresses:
            entry.addresses, entry.fresh_until, entry.usable_until = (
                addresses,
                now + DNS_FRESH,
                now + DNS_STALE,
            )
        waiting, entry.waiting = entry.waiting, []
        usable = entry.addresses and now < entry.usable_until
        for job in waiting:
            if not job.waiting:
                continue  # timed out meanwhile
            job.waiting = False
            if usable:
                self._start(job, entry)
            else:
                self.finished.append((job, job.failed(f"Could not resolve host {name}")))
        if not usable:
            del self.names[name]

    def _expire_waiting(self) -> None:
        deadlines, now = self.deadlines, time.monotonic()
        while deadlines and deadlines[0][0] <= now:
            job = heapq.heappop(deadlines)[2]
            if job.waiting:
                job.waiting = False
                self.finished.append((job, job.failed(self.settings._timed_out)))

    def _start(self, job: _Job, entry: _Name | None) -> None:
        remaining = job.deadline - time.monotonic()
        if remaining <= 0:
            self.finished.append((job, job.failed(self.settings._timed_out)))
            return
        if self.multi is None:
            self.multi = self._new_multi()
        exchange = self.spare.pop() if self.spare else _Exchange(self.settings)
        target = job.target
        resolve = None if entry is None else f"+{target.host}:{target.port}:{entry.addresses}"
        try:
            exchange.begin(job, resolve, remaining)
            self.multi.add_handle(exchange.curl)
        except pycurl.error as exc:
            log.error("Could not start a transfer: %s", exc)
            self.finished.append((job, job.failed("Internal error in the transport")))
            return
        self.active[exchange.curl] = exchange

    def _read_done(self) -> None:
        multi = self.multi
        if multi is None:
            return
        while True:
            queued, ok, failed = multi.info_read()
            for curl in ok:
                self._complete(curl, 0, "")
            for curl, code, message in failed:
                self._complete(curl, code, message)
            if not queued:
                return

    def _complete(self, curl: pycurl.Curl, code: int, message: str) -> None:
        exchange = self.active.pop(curl)
        if exchange.framing == 3:
            # Content-Length and Transfer-Encoding both: a smuggling attempt, or a broken server
            # (RFC 9112 6.3). libcurl would keep the connection; shut it so it is never reused.
            # ACTIVESOCKET is -1 unless the connection is still cached (so the fd is still its),
            # and only answers while the handle is in the multi.
            fd = curl.getinfo(pycurl.ACTIVESOCKET)
            if fd >= 0:
                _shutdown(fd)
        if self.multi is not None:
            self.multi.remove_handle(curl)
        job = exchange.carrying()
        try:
            response = exchange.finish(code, message)
        except Exception:
            log.exception("Building a transport response failed")
            response = job.failed("Internal error in the transport")
        self.finished.append((job, response))
        if len(self.spare) < _KEEP_EASY:
            self.spare.append(exchange)
        else:
            curl.close()
        if not self.active:
            self.idle_since = time.monotonic()

    def _recycle_when_idle(self) -> None:
        """Nothing in flight for idle_timeout: close the multi and with it every idle
        connection (libcurl only prunes its cache when a later transfer looks into it)."""
        if (
            self.multi is not None
            and not self.active
            and (time.monotonic() - self.idle_since >= self.settings.idle_timeout)
        ):
            self.multi.close()
            self.multi, self.timer_at = None, None
            now = time.monotonic()
            for name in [
                n
                for n, e in self.names.items()
                if not e.looking and not e.waiting and e.usable_until <= now
            ]:
                del self.names[name]

    def _shut_down(self) -> None:
        """close(): everything still in flight completes with an error."""
        for curl, exchange in list(self.active.items()):
            if self.multi is not None:
                self.multi.remove_handle(curl)
            job = exchange.carrying()
            exchange.finish(0, "")
            curl.close()
            self.finished.append((job, job.failed(_CLOSED)))
        self.active.clear()
        for _, _, job in self.deadlines:
            if job.waiting:
                job.waiting = False
                self.finished.append((job, job.failed(_CLOSED)))
        self.deadlines.clear()
        with self.lock:
            late, self.inbox = self.inbox, []
        for item in late:
            if isinstance(item, _Job):
                self.finished.append((item, item.failed(_CLOSED)))
        if self.multi is not None:
            self.multi.close()
            self.multi = None
        for exchange in self.spare:
            exchange.curl.close()
        self.spare.clear()
        self.selector.close()
        with self.lock:
            os.close(self.wake)
        _loops.discard(self)

    def _call_back(self, finished: list[_Finished]) -> None:
        """done() for every finished job, outside the gate. A done that raises is logged."""
        if not finished:
            return
        with self.lock:
            self.in_flight -= len(finished)
        for job, response in finished:
            try:
                job.done(response)
            except Exception:
                log.exception("A transport done() callback failed")


# --- fork safety --------------------------------------------------------------------------

_loops: weakref.WeakSet[_Loop] = weakref.WeakSet()
_transports: weakref.WeakSet[Transport] = weakref.WeakSet()
_abandoned: list[_Loop] = []


def _before_fork() -> None:
    # Fork only while no loop is inside libcurl (or OpenSSL), so the child finds no lock held.
    for loop in list(_loops):
        loop.gate.acquire()


def _after_fork_in_parent() -> None:
    for loop in list(_loops):
        loop.gate.release()


def _after_fork_in_child() -> None:
    # The child has none of the parent's threads. Its loops are abandoned whole and never
    # freed: freeing them would run libcurl's cleanup on connections the parent still uses.
    # A Transport's lock may have been held by a thread that did not come along.
    for transport in list(_transports):
        transport._lock = threading.Lock()
    for loop in list(_loops):
        loop.gate.release()
        _abandoned.append(loop)
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(loop))
    _loops.clear()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


# --- the public face ----------------------------------------------------------------------


class Transport:
    """Webhook POSTer on one libcurl multi handle and one event-loop thread per process.

    Thread-safe. `submit` never blocks on the network; `post` blocks its caller only.
    Never raises for network trouble: every outcome is a `Response`.
    """

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        https_only: bool = False,
        timeout: float = 10.0,
        max_body: int = 65536,
        user_agent: str = "TalkNTalk-Webhooks/x",
        ca_certs: str | None = None,
        max_per_host: int = 32,
        max_connections: int = 256,
        max_idle: int = 64,
        idle_timeout: float = 30.0,
        own_capture_base: str | None = None,
    ):
        """max_per_host: connections open at once to one host:port (more POSTs queue, their
        deadline running). max_connections: open at once in all; keep it well below the fd
        limit. max_idle: kept-alive connections cached, the oldest closed first. idle_timeout:
        a connection idle this long is not reused, and all are closed after this long with
        nothing in flight. own_capture_base: this service's TNT_PUBLIC_URL; a POST to its own
        inspector's capture URL may connect to the addresses that name resolves to
        (netguard.is_own_capture_url)."""
        self.allow_loopback = allow_loopback
        self.own_capture_base = own_capture_base
        self._own_origin: tuple[str, str, int] | None = None
        if own_capture_base:
            with contextlib.suppress(_Failure):
                own = _target(own_capture_base.rstrip("/") + "/")
                self._own_origin = (own.scheme, own.host, own.port)
        self.https_only = https_only
        self.timeout = timeout
        self.max_body = max_body
        self.user_agent = user_agent
        self.ca_certs = ca_certs
        self.max_per_host = max_per_host
        self.max_connections = max_connections
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self._timed_out = f"Timed out after {timeout:g} s"
        if ca_certs:
            self._trust: tuple[str | None, str | None] = (ca_certs, None)
        else:  # the system's bundle: the pycurl wheel's own OpenSSL doesn't know where it is
            paths = ssl.get_default_verify_paths()
            self._trust = (paths.cafile, paths.capath)
        self._lock = threading.Lock()
        self._closed = False
        self._loop: _Loop | None = None
        self._pid = os.getpid()
        _transports.add(self)

    @property
    def in_flight(self) -> int:
        """POSTs submitted whose done() has not been called yet."""
        loop = self._loop
        return loop.in_flight if loop is not None and self._pid == os.getpid() else 0

    def submit(self, url: str, body: bytes, headers: dict[str, str], done: Done) -> None:
        """Start a POST; never blocks on the network. `done(response)` is called exactly once,
        on the transport's loop thread, so it must be quick and must not block (hand the
        Response to a queue); an exception from it is logged. After close(), done is called at
        once, on the caller's thread, with a "Transport closed" error."""
        started = time.monotonic()
        try:
            target = _target(url)
            if self.https_only and target.scheme != "https":
                raise _Failure("Refused: http is not allowed, use an https:// URL")
            job = _Job(target, body, _header_lines(headers), done, started, started + self.timeout)
        except _Failure as exc:
            job = _Job(_NO_TARGET, b"", [], done, started, started, error=str(exc))
        with self._lock:
            loop = None if self._closed else self._running_loop()
            if loop is not None:
                with loop.lock:
                    loop.in_flight += 1
        if loop is None or not loop.put(job):
            if loop is not None:
                with loop.lock:
                    loop.in_flight -= 1
            done(job.failed(_CLOSED))

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        """POST and wait for the Response (at most about `timeout`). Not from a done() callback."""
        loop = self._loop
        if loop is not None and threading.current_thread() is loop.thread:
            raise RuntimeError("Transport.post() called on the transport's own thread")
        answered = _thread.allocate_lock()  # cheaper than an Event: released once, by done()
        answered.acquire()
        box: list[Response] = []

        def done(response: Response) -> None:
            box.append(response)
            answered.release()

        self.submit(url, body, headers, done)
        if not answered.acquire(timeout=self.timeout + 30):  # the loop's deadline failed: a bug
            log.error("The transport gave no answer within its deadline")
            return Response(status=None, error="Internal error: the transport did not answer")
        return box[0]

    def close(self) -> None:
        """Stop the loop thread and close every connection. POSTs still in flight complete with
        a "Transport closed" error; later submits fail the same way."""
        with self._lock:
            self._closed = True
            loop, self._loop = self._loop, None
        if loop is None or self._pid != os.getpid():
            return
        loop.stop()
        if threading.current_thread() is not loop.thread:
            loop.thread.join(10)

    def _running_loop(self) -> _Loop:
        """The loop of this process (under self._lock); a forked child starts its own."""
        if self._pid != os.getpid():
            self._pid, self._loop = os.getpid(), None
        if self._loop is None:
            self._loop = _Loop(self)
        return self._loop
