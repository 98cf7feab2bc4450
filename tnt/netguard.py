"""Endpoint URL safety: keep webhook deliveries off internal networks (SSRF defence).

Two checks use the same rules: `check_url` when a customer saves an endpoint, and
`resolve_checked` when the transport opens a connection, so a name that later
re-resolves to an internal address (DNS rebinding) is still refused.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048

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

_PRIVATE_NETS = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")
]
_SHARED_NET = ipaddress.ip_network("100.64.0.0/10")
_THIS_NET = ipaddress.ip_network("0.0.0.0/8")
_NAT64_NET = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_BROADCAST = ipaddress.ip_address("255.255.255.255")
_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f\\]")


class UnsafeURL(ValueError):
    """An endpoint URL or address that must not be used. str(e) is the user-facing message.

    `address` and `kind` are set when a specific IP was refused (kind is e.g. "private"),
    so the transport can say "Refused: 10.0.0.1 is a private address".
    """

    def __init__(self, message: str, *, address: str | None = None, kind: str | None = None):
        super().__init__(message)
        self.address = address
        self.kind = kind


def unsafe_kind(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why this address must not be contacted (e.g. "private"), or None if it is public."""
    if ip.version == 6:
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # The packet ends up at the embedded IPv4 address, so that is what we judge.
            return unsafe_kind(embedded, allow_loopback=allow_loopback)
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip in _METADATA:
        return "cloud metadata"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip == _BROADCAST:
        return "broadcast"
    if any(ip in net for net in _PRIVATE_NETS if net.version == ip.version):
        return "private"
    if ip.version == 4 and ip in _SHARED_NET:
        return "shared (carrier-grade NAT)"
    if ip.version == 4 and ip in _THIS_NET:
        return "reserved"
    # ipaddress's tables cover documentation, benchmarking, 240/4 and the IPv6 special ranges.
    if ip.is_reserved or ip.is_private or not ip.is_global:
        return "reserved"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 (64:ff9b::/96) address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64_NET:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _refuse(ip: IPAddress, kind: str, host: str | None = None) -> UnsafeURL:
    shown = _show(ip)
    where = f"{host} resolves to {shown}" if host else shown
    return UnsafeURL(f"{_LABELS[kind]} are not allowed ({where}).", address=shown, kind=kind)


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


def resolve_checked(host: str, port: int, *, allow_loopback: bool = False) -> list[str]:
    """Resolve once; check every address; return the safe IPs.

    Raises UnsafeURL if ANY address is unsafe (a name with one internal address is
    not trusted at all) or if nothing resolves.
    """
    if not host:
        raise UnsafeURL("The URL has no host.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise UnsafeURL(f"Could not resolve host {host}.") from None
    ips: list[str] = []
    for *_, sockaddr in infos:
        if sockaddr[0] not in ips:
            ips.append(sockaddr[0])
    if not ips:
        raise UnsafeURL(f"Could not resolve host {host}.")
    for text in ips:
        ip = _parse_ip(text)
        kind = unsafe_kind(ip, allow_loopback=allow_loopback)
        if kind:
            literal = _literal_ip(host)
            raise _refuse(ip, kind, None if literal == ip else host)
    return ips


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
        # Parsers disagree on these; refusing them keeps ours and urllib3's in step.
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
            raise _refuse(ip, kind)
        return url
    if parts.netloc.startswith("["):
        raise UnsafeURL("The URL is not valid.")
    if not _valid_hostname(host):
        raise UnsafeURL(f"{host} is not a valid host name.")
    if resolve:
        resolve_checked(host, port, allow_loopback=allow_loopback)
    return url


def _valid_hostname(host: str) -> bool:
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.lower().removesuffix(".").split(".")
    return len(ascii_host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)
