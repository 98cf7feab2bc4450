"""netguard: every URL a user could save, and the exact message they see.

No network: names are `localhost` and `*.invalid`; public addresses are literals, never contacted.
"""

import socket
import threading
import time

import pytest

from tnt import netguard
from tnt.netguard import UnsafeURL, check_url, resolve_checked

PUBLIC = "93.184.216.34"

LOOPBACK = "Loopback addresses are not allowed."
PRIVATE = "Private network addresses are not allowed."
LINK_LOCAL = "Link-local addresses are not allowed."
METADATA = "Cloud metadata addresses are not allowed."
SHARED = "Shared (carrier-grade NAT) addresses are not allowed."
MULTICAST = "Multicast addresses are not allowed."
UNSPECIFIED = "Unspecified addresses are not allowed."
BROADCAST = "Broadcast addresses are not allowed."
RESERVED = "Reserved or non-public addresses are not allowed."

# (url, keyword arguments, the message the user sees, or None when the URL is accepted)
CASES = [
    # schemes
    (f"https://{PUBLIC}/hooks/sms", {}, None),
    (f"http://{PUBLIC}:8080/hook?x=1", {}, None),
    (f"https://{PUBLIC}/", {"https_only": True}, None),
    (
        f"http://{PUBLIC}/",
        {"https_only": True},
        "Use an https:// URL: http is not allowed in production.",
    ),
    (f"ftp://{PUBLIC}/", {}, "Use an http:// or https:// URL."),
    ("javascript:alert(1)", {}, "Use an http:// or https:// URL."),
    (f"{PUBLIC}/hook", {}, "Use an http:// or https:// URL."),
    ("file:///etc/passwd", {}, "Use an http:// or https:// URL."),
    # shape of the URL
    ("", {}, "Enter a URL."),
    ("   ", {}, "Enter a URL."),
    ("http:///hook", {}, "The URL has no host."),
    ("http://:8080/hook", {}, "The URL has no host."),
    (f"http://{PUBLIC}:99999/", {}, "The URL is not valid."),
    (f"http://{PUBLIC}:0/", {}, "The URL is not valid."),
    ("http://[::1/", {}, "The URL is not valid."),
    ("http://[not-an-ip]/", {}, "The URL is not valid."),
    (
        "http://exa mple.com/",
        {},
        "The URL must not contain spaces, backslashes or control characters.",
    ),
    (
        "http://127.0.0.1\\@ok.example/",
        {},
        "The URL must not contain spaces, backslashes or control characters.",
    ),
    (
        "http://ok.example/\r\nX: y",
        {},
        "The URL must not contain spaces, backslashes or control characters.",
    ),
    ("http://-bad-.example/", {"resolve": False}, "-bad-.example is not a valid host name."),
    ("http://" + "a" * 3000 + ".example/", {}, "The URL is too long (at most 2048 characters)."),
    # userinfo tricks
    ("https://ok.example@127.0.0.1/", {}, "URLs with a user name or password are not allowed."),
    (f"https://user:pw@{PUBLIC}/", {}, "URLs with a user name or password are not allowed."),
    (f"https://@{PUBLIC}/", {}, "URLs with a user name or password are not allowed."),
    # loopback, allowed only for development and tests
    ("http://127.0.0.1:5000/", {}, LOOPBACK),
    ("http://127.5.6.7/", {}, LOOPBACK),
    ("http://127.0.0.1:5000/", {"allow_loopback": True}, None),
    ("http://[::1]:5000/", {}, LOOPBACK),
    ("http://[::1]:5000/", {"allow_loopback": True}, None),
    # private ranges: never, not even with allow_loopback
    ("http://10.0.0.5/", {}, PRIVATE),
    ("http://10.0.0.5/", {"allow_loopback": True}, PRIVATE),
    ("http://172.16.0.1/", {}, PRIVATE),
    ("http://172.31.255.255/", {}, PRIVATE),
    ("http://172.32.0.1/", {}, None),
    ("http://192.168.1.1/", {}, PRIVATE),
    ("http://[fc00::1]/", {}, PRIVATE),
    ("http://[fd12:3456::1]/", {}, PRIVATE),
    ("http://[fec0::1]/", {}, PRIVATE),
    # link-local and cloud metadata
    ("http://169.254.169.254/latest/meta-data/", {}, METADATA),
    ("http://169.254.169.254/", {"allow_loopback": True}, METADATA),
    ("http://[fd00:ec2::254]/", {}, METADATA),
    ("http://169.254.1.1/", {}, LINK_LOCAL),
    ("http://[fe80::1]/", {}, LINK_LOCAL),
    ("http://[fe80::1%25eth0]/", {}, LINK_LOCAL),
    # shared address space (carrier-grade NAT), explicitly
    ("http://100.64.0.1/", {}, SHARED),
    ("http://100.127.255.255/", {}, SHARED),
    ("http://100.128.0.1/", {}, None),
    # multicast, broadcast, unspecified, reserved
    ("http://224.0.0.1/", {}, MULTICAST),
    ("http://239.255.255.250/", {}, MULTICAST),
    ("http://[ff02::1]/", {}, MULTICAST),
    ("http://255.255.255.255/", {}, BROADCAST),
    ("http://0.0.0.0/", {}, UNSPECIFIED),
    ("http://[::]/", {}, UNSPECIFIED),
    ("http://0.1.2.3/", {}, RESERVED),
    ("http://240.0.0.1/", {}, RESERVED),
    ("http://192.0.2.10/", {}, RESERVED),
    ("http://198.18.0.1/", {}, RESERVED),
    ("http://[2001:db8::1]/", {}, RESERVED),
    ("http://[::a00:1]/", {}, RESERVED),
    ("http://[2606:4700:4700::1111]/", {}, None),
    # IPv6 forms that carry an IPv4 address: judged by the embedded address
    ("http://[::ffff:127.0.0.1]/", {}, LOOPBACK),
    ("http://[::ffff:7f00:1]/", {}, LOOPBACK),
    ("http://[::ffff:10.0.0.1]/", {}, PRIVATE),
    ("http://[::ffff:169.254.169.254]/", {}, METADATA),
    (f"http://[::ffff:{PUBLIC}]/", {}, None),
    ("http://[2002:a00:1::]/", {}, PRIVATE),
    ("http://[2002:7f00:1::]/", {}, LOOPBACK),
    ("http://[64:ff9b::a00:1]/", {}, PRIVATE),
    ("http://[64:ff9b::a9fe:a9fe]/", {}, METADATA),
    # legacy IPv4 spellings the C resolver accepts; refused even without resolving
    ("http://2130706433/", {}, LOOPBACK),
    ("http://2130706433/", {"resolve": False}, LOOPBACK),
    ("http://0177.0.0.1/", {}, LOOPBACK),
    ("http://0x7f.0.0.1/", {}, LOOPBACK),
    ("http://0x7f000001/", {"resolve": False}, LOOPBACK),
    ("http://127.1/", {}, LOOPBACK),
    ("http://127.1./", {"resolve": False}, LOOPBACK),
    ("http://167772161/", {}, PRIVATE),
    ("http://0xa9.0xfe.0xa9.0xfe/", {}, METADATA),
    ("http://0/", {}, UNSPECIFIED),
    # names
    ("http://localhost:5000/hook", {"allow_loopback": True}, None),
    ("http://LOCALHOST:5000/hook", {"allow_loopback": True}, None),
    ("https://example.invalid/hook", {}, "Could not resolve host example.invalid."),
    ("https://example.invalid/hook", {"resolve": False}, None),
]


@pytest.mark.parametrize("url, kwargs, message", CASES, ids=[f"{c[0][:60]} {c[1]}" for c in CASES])
def test_check_url(url, kwargs, message):
    if message is None:
        assert check_url(url, **kwargs) == url.strip()
    else:
        with pytest.raises(UnsafeURL) as caught:
            check_url(url, **kwargs)
        assert str(caught.value) == message


def test_check_url_returns_the_url_stripped():
    assert check_url(f"  https://{PUBLIC}/hook \n") == f"https://{PUBLIC}/hook"


def test_a_name_is_refused_by_the_kind_of_address_it_resolves_to_never_the_address():
    # localhost may resolve to 127.0.0.1, ::1 or both, depending on the machine.
    addresses = {
        info[4][0] for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    }
    with pytest.raises(UnsafeURL) as caught:
        check_url("http://localhost:5000/hook")
    assert str(caught.value) == "Loopback addresses are not allowed (localhost resolves to one)."
    assert caught.value.kind == "loopback" and caught.value.address is None
    assert not any(address in str(caught.value) for address in addresses)


def test_a_refusal_at_save_carries_its_kind():
    with pytest.raises(UnsafeURL) as caught:
        check_url("http://10.1.2.3/")
    assert (caught.value.kind, caught.value.address) == ("private", None)
    assert isinstance(caught.value, ValueError)


def test_resolve_checked_returns_safe_addresses():
    assert resolve_checked(PUBLIC, 443) == [PUBLIC]
    assert "127.0.0.1" in resolve_checked("localhost", 80, allow_loopback=True)


def test_resolve_checked_checks_the_resolved_result_not_the_spelling():
    # getaddrinfo turns 2130706433 into 127.0.0.1; the check must see the latter.
    assert resolve_checked("2130706433", 80, allow_loopback=True) == ["127.0.0.1"]
    with pytest.raises(UnsafeURL) as caught:
        resolve_checked("2130706433", 80)
    assert str(caught.value) == "Loopback addresses are not allowed."


@pytest.mark.parametrize(
    "host, message",
    [
        ("10.0.0.1", "Private network addresses are not allowed."),
        ("169.254.169.254", "Cloud metadata addresses are not allowed."),
        ("::ffff:192.168.0.1", "Private network addresses are not allowed."),
        ("example.invalid", "Could not resolve host example.invalid."),
        ("", "The URL has no host."),
    ],
)
def test_resolve_checked_refuses(host, message):
    with pytest.raises(UnsafeURL) as caught:
        resolve_checked(host, 80, allow_loopback=True)
    assert str(caught.value) == message


# --- DNS at save: a deadline, and no pile of stuck lookups ----------------------------------


@pytest.fixture
def stuck_dns(monkeypatch):
    """getaddrinfo that never answers for *.stuck.test (a dead DNS server) until released."""
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host.endswith(".stuck.test"):
            release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield release
    release.set()
    for thread in lookups():
        thread.join(5)


def lookups() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "netguard-lookup"]


def test_a_save_waits_for_dns_at_most_3_s(stuck_dns):
    started = time.monotonic()
    with pytest.raises(UnsafeURL) as caught:
        check_url("https://hooks.stuck.test/x")
    assert 2.9 <= time.monotonic() - started < 4.5  # the resolver would have taken 30 s
    assert str(caught.value) == "Looking up hooks.stuck.test took too long; try again in a minute."


def test_stuck_lookups_are_bounded_then_refused_at_once(stuck_dns, monkeypatch):
    monkeypatch.setattr(netguard, "LOOKUP_TIMEOUT", 0.2)
    for n in range(netguard.MAX_LOOKUPS):
        with pytest.raises(UnsafeURL, match="took too long"):
            check_url(f"https://h{n}.stuck.test/")
    assert len(lookups()) == netguard.MAX_LOOKUPS
    # Every slot holds a stuck lookup: the next save is refused at once, and starts no thread.
    started = time.monotonic()
    with pytest.raises(UnsafeURL) as caught:
        check_url("http://localhost/", allow_loopback=True)
    assert time.monotonic() - started < 0.5
    assert str(caught.value) == "Too many host name lookups are under way; try again in a minute."
    assert len(lookups()) == netguard.MAX_LOOKUPS
    # When the stuck lookups end, their slots come back.
    stuck_dns.set()
    for thread in lookups():
        thread.join(5)
    assert check_url("http://localhost/", allow_loopback=True) == "http://localhost/"


# --- the table: every special-purpose range, whatever the Python patch release says ----------

import ipaddress  # noqa: E402

from tnt.netguard import SPECIAL_RANGES, ascii_host, unsafe_address, unsafe_kind  # noqa: E402

# Written out here from the IANA IPv4 and IPv6 Special-Purpose Address Registries and the
# providers' documents, independently of netguard's table: (range, the kind its addresses get
# unless a more specific entry below says otherwise).
MUST_REFUSE = [
    ("0.0.0.0/8", "reserved"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "reserved"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),
    ("198.51.100.0/24", "reserved"),
    ("203.0.113.0/24", "reserved"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "broadcast"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "reserved"),
    ("100::/64", "reserved"),
    ("100:0:0:1::/64", "reserved"),
    ("2001::/32", "reserved"),
    ("2001:2::/48", "reserved"),
    ("2001:10::/28", "reserved"),
    ("2001:db8::/32", "reserved"),
    ("3fff::/20", "reserved"),
    ("5f00::/16", "reserved"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
    ("fec0::/10", "private"),
    ("4000::/3", "reserved"),  # unallocated: only 2000::/3 is global unicast
]
METADATA_ADDRESSES = [
    "169.254.169.254",
    "fd00:ec2::254",
    "100.100.100.200",
    "168.63.129.16",
    "192.0.0.192",
    "169.254.170.2",
    "169.254.170.23",
    "fd00:ec2::23",
    "169.254.0.23",
    "fd20:ce::254",
]
PUBLIC_ADDRESSES = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",
    "100.128.0.1",
    "192.0.1.255",
    "192.0.3.0",
    "198.20.0.1",
    "223.255.255.255",
    "192.31.196.1",
    "192.175.48.1",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "2a00:1450::1",
    "2001:1::1",
    "2001:3::1",
    "2001:20::1",
    "2620:4f:8000::1",
    "64:ff9b::808:808",
    "::ffff:8.8.8.8",
    "2002:808:808::1",
]


def first_middle_last(network: str):
    net = ipaddress.ip_network(network)
    first, last = int(net.network_address), int(net.broadcast_address)
    middle = type(net.network_address)(first + (last - first) // 2)
    return [net.network_address, middle, net.broadcast_address]


@pytest.mark.parametrize(
    "network", sorted({n for n, _ in MUST_REFUSE} | {n for n, _ in SPECIAL_RANGES})
)
def test_every_special_range_is_refused_first_middle_and_last(network):
    for ip in first_middle_last(network):
        assert unsafe_kind(ip) is not None, ip
        if not ip.is_loopback:  # allow_loopback frees loopback, and nothing else
            assert unsafe_kind(ip, allow_loopback=True) is not None, ip


@pytest.mark.parametrize("network, kind", MUST_REFUSE)
def test_ranges_get_their_kind(network, kind):
    middle = first_middle_last(network)[1]
    assert unsafe_kind(middle) == kind, middle


def test_all_of_192_0_0_0_24_and_the_platform_addresses_are_refused():
    assert all(unsafe_kind(ipaddress.ip_address(f"192.0.0.{n}")) for n in range(256))
    for text in METADATA_ADDRESSES:
        assert unsafe_kind(ipaddress.ip_address(text), allow_loopback=True) == "cloud metadata", (
            text
        )


@pytest.mark.parametrize("text", PUBLIC_ADDRESSES)
def test_public_addresses_pass(text):
    assert unsafe_kind(ipaddress.ip_address(text)) is None
    assert unsafe_address(text) is None


def test_unsafe_address_is_the_transports_check():
    refusal = unsafe_address("10.1.2.3")
    assert (refusal.address, refusal.kind) == ("10.1.2.3", "private")
    assert unsafe_address("fe80::1%eth0").kind == "link-local"
    assert unsafe_address("127.0.0.1", allow_loopback=True) is None
    assert unsafe_address("not an address").kind == "reserved"


@pytest.mark.parametrize(
    "host, expected",
    [
        ("straße.de", "xn--strae-oqa.de"),  # IDNA 2008 / UTS #46 non-transitional, not "strasse.de"
        ("STRASSE.de", "strasse.de"),
        ("bücher.example.", "xn--bcher-kva.example."),  # a trailing dot stays
        ("ＥＸＡＭＰＬＥ。com", "example.com"),  # full-width letters and dot mapped
        ("_acme.example", "_acme.example"),  # ASCII names only lower-cased
    ],
)
def test_ascii_host(host, expected):
    assert ascii_host(host) == expected


def test_check_url_uses_the_same_idna_conversion():
    assert check_url("https://straße.invalid/hook", resolve=False) == "https://straße.invalid/hook"
    with pytest.raises(UnsafeURL) as caught:
        check_url("https://straße.invalid/hook")
    assert str(caught.value) == "Could not resolve host xn--strae-oqa.invalid."
    with pytest.raises(UnsafeURL):
        check_url("https://a\u200db.example/", resolve=False)  # ZWJ: not allowed here by IDNA 2008
