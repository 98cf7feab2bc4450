"""Endpoint URL safety: keep webhook deliveries off internal networks (SSRF defence).

The same rules are enforced in two places:
- at save: `check_url`, when a customer saves an endpoint (a message fit to show them);
- at connect: the transport's open-socket callback checks, with `unsafe_kind`, every address
  it is about to connect to, every time, so a name that later re-resolves to an internal
  address (DNS rebinding) is still refused.

One explicit exception, decided per delivery by `is_own_capture_url`: a URL of this service's
own request inspector (same scheme, host and port as TNT_PUBLIC_URL, path `/in/<token>`) may
reach the loopback, private or shared addresses its public name resolves to (the service behind
a load balancer or NAT), never a metadata or link-local one. It runs in the same two places:
- at save: `tnt.endpoints.validate` skips the lookup for such a URL (the operator chose the
  name), the scheme and a literal address still checked;
- at connect: the transport asks `connect_refusal`, with the answer for the job's URL, and
  never reuses a connection opened that way for another POST (libcurl's FORBID_REUSE).
Loopback in general stays refused in production (TNT_ALLOW_LOOPBACK is ignored there).

The rules are this module's own table (`SPECIAL_RANGES`): the IANA IPv4 and IPv6
Special-Purpose Address Registries (every entry that is not globally reachable), multicast,
and the cloud metadata and platform addresses. `ipaddress` only parses and tests membership:
its is_private/is_global flags changed between patch releases (3.11.7 passes most of
192.0.0.0/24), so they are never consulted.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048

# A save waits at most this long for DNS: the C resolver alone may take 12 s or more (its
# timeout times attempts times servers), and every such wait holds a web thread.
LOOKUP_TIMEOUT = 3.0
# getaddrinfo cannot be cancelled: a lookup past its deadline goes on in its thread. At most
# this many run at once per process, so lookups stuck on a dead DNS server cannot pile up.
MAX_LOOKUPS = 4
_lookup_slots = threading.BoundedSemaphore(MAX_LOOKUPS)

# kind -> the start of the message a user sees.
_LABELS = {
    "loopback": "Loopback addresses",
    "private": "Private network addresses",
    "cloud metadata": "Cloud metadata addresses",
    "link-local": "Link-local addresses",
    "shared (carrier-grade NAT)": "Shared (carrier-grade NAT) addresses",
    "multicast": "Multicast addresses",
    "unspecified": "Unspecified addresses",
    "broadcast": "Broadcast addresses",
    "reserved": "Reserved or non-public addresses",
}

# (range, kind). The longest matching prefix decides the kind, so an exact metadata address
# wins over the link-local range around it. Sources: IANA IPv4/IPv6 Special-Purpose Address
# Registries (entries whose "Globally Reachable" is False or N/A), the multicast registries,
# and the providers' documentation for metadata/platform addresses.
SPECIAL_RANGES: list[tuple[str, str]] = [
    # IPv4
    ("0.0.0.0/8", "reserved"),  # "this network" (RFC 791)
    ("0.0.0.0/32", "unspecified"),
    ("10.0.0.0/8", "private"),  # RFC 1918
    ("100.64.0.0/10", "shared (carrier-grade NAT)"),  # RFC 6598
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    # IETF protocol assignments, all of it: the registry marks two anycast /32s global, but
    # no webhook lives there, and 192.0.0.192 is Oracle Cloud's metadata service.
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "reserved"),  # TEST-NET-1
    ("192.88.99.0/24", "reserved"),  # deprecated 6to4 relay anycast (RFC 7526)
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),  # benchmarking (RFC 2544)
    ("198.51.100.0/24", "reserved"),  # TEST-NET-2
    ("203.0.113.0/24", "reserved"),  # TEST-NET-3
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # future use (RFC 1112)
    ("255.255.255.255/32", "broadcast"),
    # IPv6 (IPv4-mapped, NAT64 64:ff9b::/96 and 6to4 are judged by the IPv4 address inside)
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "reserved"),  # deprecated IPv4-compatible addresses
    ("::ffff:0:0:0/96", "reserved"),  # IPv4-translated (SIIT, RFC 2765)
    ("64:ff9b:1::/48", "reserved"),  # local-use IPv4/IPv6 translation (RFC 8215)
    ("100::/64", "reserved"),  # discard-only (RFC 6666)
    ("100:0:0:1::/64", "reserved"),  # dummy prefix (RFC 9780)
    ("2001::/23", "reserved"),  # IETF protocol assignments; global sub-blocks in _GLOBAL
    # Teredo: the client's address is obfuscated and reached through relays; nothing to vouch for.
    ("2001::/32", "reserved"),
    ("2001:2::/48", "reserved"),  # benchmarking
    ("2001:10::/28", "reserved"),  # deprecated ORCHID
    ("2001:db8::/32", "reserved"),  # documentation
    ("3fff::/20", "reserved"),  # documentation (RFC 9637)
    ("5f00::/16", "reserved"),  # SRv6 SIDs (RFC 9602)
    ("fc00::/7", "private"),  # unique local
    ("fe80::/10", "link-local"),
    ("fec0::/10", "private"),  # deprecated site-local
    ("ff00::/8", "multicast"),
    # Cloud metadata and platform addresses
    ("169.254.169.254/32", "cloud metadata"),  # AWS, GCP, Azure, OCI, OpenStack, DigitalOcean...
    ("169.254.170.2/32", "cloud metadata"),  # AWS ECS task metadata and credentials
    ("169.254.170.23/32", "cloud metadata"),  # AWS EKS Pod Identity agent
    ("169.254.0.23/32", "cloud metadata"),  # Tencent Cloud metadata
    ("100.100.100.200/32", "cloud metadata"),  # Alibaba Cloud metadata
    ("168.63.129.16/32", "cloud metadata"),  # Azure WireServer (platform; otherwise public space)
    ("192.0.0.192/32", "cloud metadata"),  # Oracle Cloud metadata (legacy address)
    ("fd00:ec2::254/128", "cloud metadata"),  # AWS IMDS over IPv6
    ("fd00:ec2::23/128", "cloud metadata"),  # AWS EKS Pod Identity agent over IPv6
    ("fd20:ce::254/128", "cloud metadata"),  # GCP metadata over IPv6
]

# Inside 2001::/23, the registry marks these globally reachable.
_GLOBAL = [
    "2001:1::1/128",  # PCP anycast
    "2001:1::2/128",  # TURN anycast
    "2001:1::3/128",  # DNS-SD SRP anycast
    "2001:3::/32",  # AMT
    "2001:4:112::/48",  # AS112-v6
    "2001:20::/28",  # ORCHIDv2
    "2001:30::/28",  # drone remote ID (DETs)
]
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")  # all other IPv6 space is unallocated


# (version, first, last, prefixlen, kind): one row of a lookup table, as integers.
_Range = tuple[int, int, int, int, str | None]


def _ranges(entries: Iterable[tuple[str, str | None]]) -> list[_Range]:
    """(version, first, last, prefixlen, kind) as integers, longest prefix first."""
    out: list[_Range] = []
    for text, kind in entries:
        net = ipaddress.ip_network(text)
        out.append(
            (net.version, int(net.network_address), int(net.broadcast_address), net.prefixlen, kind)
        )
    return sorted(out, key=lambda r: -r[3])


_TABLE = _ranges(SPECIAL_RANGES)
_GLOBAL_TABLE = _ranges((text, None) for text in _GLOBAL)
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")

_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f\\]")


class UnsafeURL(ValueError):
    """An endpoint URL or address that must not be used. str(e) is the user-facing message.

    `kind` is set when an address was refused (e.g. "private"). `address` is set only by
    `unsafe_address`, so the transport can log "Refused: 10.0.0.1 is a private address";
    save-time refusals never carry the address.
    """

    def __init__(self, message: str, *, address: str | None = None, kind: str | None = None):
        super().__init__(message)
        self.address = address
        self.kind = kind


def _lookup(table: list[_Range], version: int, value: int) -> tuple[bool, str | None]:
    for v, first, last, _, kind in table:
        if v == version and first <= value <= last:
            return True, kind
    return False, None


def unsafe_kind(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why this address must not be contacted (e.g. "private"), or None if it is public."""
    embedded = _embedded_ipv4(ip) if ip.version == 6 else None
    if embedded is not None:
        # The packet ends up at the embedded IPv4 address, so that is what we judge.
        return unsafe_kind(embedded, allow_loopback=allow_loopback)
    value = int(ip)
    found, kind = _lookup(_TABLE, ip.version, value)
    if found and kind == "reserved" and ip.version == 6 and _lookup(_GLOBAL_TABLE, 6, value)[0]:
        return None
    if not found and ip.version == 6 and ip not in _GLOBAL_UNICAST_V6:
        kind = "reserved"
    if kind == "loopback" and allow_loopback:
        return None
    return kind


def unsafe_address(text: str, *, allow_loopback: bool = False) -> UnsafeURL | None:
    """The refusal for an address given as text (a sockaddr's host), or None if it is public.
    Text that is no IP address is refused too."""
    try:
        ip = _parse_ip(text)
    except ValueError:
        return UnsafeURL(f"{text} is not an IP address.", address=text, kind="reserved")
    kind = unsafe_kind(ip, allow_loopback=allow_loopback)
    return _refuse(ip, kind) if kind else None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 address."""
    if ip in _MAPPED or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def _refuse(ip: IPAddress, kind: str) -> UnsafeURL:
    """The transport's refusal of an address it was about to connect to."""
    shown = _show(ip)
    return UnsafeURL(f"{_LABELS[kind]} are not allowed ({shown}).", address=shown, kind=kind)


def _refuse_at_save(kind: str, host: str | None = None) -> UnsafeURL:
    """A refusal shown to whoever saves the endpoint: the kind of address only. Never the
    address, nor what a name resolved to: that would map internal DNS for anyone who asks."""
    where = f" ({host} resolves to one)" if host else ""
    return UnsafeURL(f"{_LABELS[kind]} are not allowed{where}.", kind=kind)


def _show(ip: IPAddress) -> str:
    # ipaddress prints ::ffff:127.0.0.1 as ::ffff:7f00:1, which hides what it points at.
    mapped = getattr(ip, "ipv4_mapped", None)
    return f"::ffff:{mapped}" if mapped is not None else str(ip)


def _parse_ip(text: str) -> IPAddress:
    # getaddrinfo gives scoped link-local addresses as "fe80::1%eth0"; the scope doesn't matter here.
    return ipaddress.ip_address(text.split("%", 1)[0])


def _literal_ip(host: str) -> IPAddress | None:
    """The address if host is an IP literal in any form the C resolver accepts.

    inet_aton takes the legacy forms too (2130706433, 0177.0.0.1, 0x7f.0.0.1, 127.1),
    which is exactly what getaddrinfo would connect to.
    """
    try:
        return _parse_ip(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def ascii_host(host: str) -> str:
    """A host name in its ASCII (A-label) form: IDNA 2008 with UTS #46 non-transitional
    mapping, so "straße.de" is "xn--strae-oqa.de" (IDNA 2003 would say "strasse.de").
    ASCII names are only lower-cased (underscores stay allowed). ValueError if not encodable.

    The one conversion used both here (at save) and by the transport (at delivery)."""
    if host.isascii():
        return host.lower()
    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
        return ".".join(
            label if label.isascii() else idna.alabel(label).decode("ascii")
            for label in mapped.split(".")
        )
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"{host!r} is not a valid host name") from exc


def resolve_checked(host: str, port: int, *, allow_loopback: bool = False) -> list[str]:
    """Resolve once, within LOOKUP_TIMEOUT; check every address; return the safe IPs.

    Raises UnsafeURL if ANY address is unsafe (a name with one internal address is
    not trusted at all), if nothing resolves in time, or if too many lookups are stuck.
    """
    if not host:
        raise UnsafeURL("The URL has no host.")
    infos = _getaddrinfo(host, port)
    ips: list[str] = []
    for *_, sockaddr in infos:
        if sockaddr[0] not in ips:
            ips.append(sockaddr[0])
    if not ips:
        raise UnsafeURL(f"Could not resolve host {host}.")
    for text in ips:
        kind = unsafe_kind(_parse_ip(text), allow_loopback=allow_loopback)
        if kind:
            raise _refuse_at_save(kind, host if _literal_ip(host) is None else None)
    return ips


_AddrInfo = list[tuple[Any, Any, int, str, tuple[Any, ...]]]


def _getaddrinfo(host: str, port: int) -> _AddrInfo:
    """socket.getaddrinfo in a thread of its own, waited for at most LOOKUP_TIMEOUT."""
    if not _lookup_slots.acquire(blocking=False):
        raise UnsafeURL("Too many host name lookups are under way; try again in a minute.")
    answer: list[_AddrInfo] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (UnicodeError, OSError):  # socket.gaierror is an OSError
            pass
        finally:
            _lookup_slots.release()
            done.set()

    threading.Thread(target=lookup, name="netguard-lookup", daemon=True).start()
    if not done.wait(LOOKUP_TIMEOUT):
        raise UnsafeURL(f"Looking up {host} took too long; try again in a minute.")
    if not answer:
        raise UnsafeURL(f"Could not resolve host {host}.")
    return answer[0]


def check_url(
    url: str, *, allow_loopback: bool = False, https_only: bool = False, resolve: bool = True
) -> str:
    """Validate an endpoint URL at save time; return it normalised (stripped).

    Raises UnsafeURL with a message fit to show the user.
    """
    url = (url or "").strip()
    if not url:
        raise UnsafeURL("Enter a URL.")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"The URL is too long (at most {MAX_URL_LENGTH} characters).")
    if _BAD_CHARS.search(url):
        # Parsers disagree on these; refusing them keeps ours and libcurl's in step.
        raise UnsafeURL("The URL must not contain spaces, backslashes or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURL("The URL is not valid.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURL("Use an http:// or https:// URL.")
    if https_only and scheme != "https":
        raise UnsafeURL("Use an https:// URL: http is not allowed in production.")
    if "@" in parts.netloc:
        raise UnsafeURL("URLs with a user name or password are not allowed.")
    host = parts.hostname or ""
    if not host:
        raise UnsafeURL("The URL has no host.")
    if port == 0:
        raise UnsafeURL("The URL is not valid.")
    port = port or (443 if scheme == "https" else 80)

    ip = _literal_ip(host.removesuffix("."))
    if ip is not None:
        kind = unsafe_kind(ip, allow_loopback=allow_loopback)
        if kind:
            raise _refuse_at_save(kind)
        return url
    if parts.netloc.startswith("["):
        raise UnsafeURL("The URL is not valid.")
    ascii_name = _valid_hostname(host)
    if ascii_name is None:
        raise UnsafeURL(f"{host} is not a valid host name.")
    if resolve:
        resolve_checked(ascii_name, port, allow_loopback=allow_loopback)
    return url


def _valid_hostname(host: str) -> str | None:
    """The host's ASCII form if it is a valid host name, else None."""
    try:
        ascii_name = ascii_host(host)
    except ValueError:
        return None
    labels = ascii_name.removesuffix(".").split(".")
    if len(ascii_name) <= 253 and all(_HOST_LABEL.match(label) for label in labels):
        return ascii_name
    return None


# An inspector's capture path: tnt.inspectors makes these tokens (URL-safe base64).
CAPTURE_PATH = re.compile(r"/in/[A-Za-z0-9_-]{20,64}")
# What the service's own public name may resolve to and still be connected to, for its
# inspector's capture URL only: never cloud metadata, link-local or anything else.
OWN_SERVICE_KINDS = frozenset({"loopback", "private", "shared (carrier-grade NAT)"})


def is_own_capture_url(url: str, public_url: str | None) -> bool:
    """The explicit rule: `url` is one of this service's own inspector capture URLs, i.e. the
    same scheme, host and port as `public_url` (TNT_PUBLIC_URL) and a path that is exactly
    `/in/<token>` (no query, no fragment, no dot segments: nothing a proxy could rewrite)."""
    if not public_url:
        return False
    try:
        mine, theirs = urlsplit(public_url), urlsplit(url)
        mine_port, their_port = mine.port, theirs.port
    except ValueError:
        return False
    defaults = {"http": 80, "https": 443}
    scheme = theirs.scheme.lower()
    if (
        scheme not in defaults
        or scheme != mine.scheme.lower()
        or "@" in theirs.netloc
        or theirs.query
        or theirs.fragment
        or url.endswith(("?", "#"))
    ):
        return False
    try:
        same_host = ascii_host(theirs.hostname or "") == ascii_host(mine.hostname or "")
    except ValueError:
        return False
    return (
        same_host
        and (their_port or defaults[scheme]) == (mine_port or defaults[scheme])
        and CAPTURE_PATH.fullmatch(theirs.path) is not None
    )


def connect_refusal(text: str, *, allow_loopback: bool, own_capture: bool) -> UnsafeURL | None:
    """The connect-time check: `unsafe_address`, except that a connection for this service's
    own capture URL (`own_capture`, from `is_own_capture_url`) may reach OWN_SERVICE_KINDS."""
    refusal = unsafe_address(text, allow_loopback=allow_loopback)
    if refusal is not None and own_capture and refusal.kind in OWN_SERVICE_KINDS:
        return None
    return refusal
