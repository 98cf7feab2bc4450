"""Kenyan mobile numbers: validate, normalise to 2547XXXXXXXX / 2541XXXXXXXX, name the network."""
import re

_NATIONAL = re.compile(r"^0([17]\d{8})$")
_INTERNATIONAL = re.compile(r"^\+?254([17]\d{8})$")

# Prefixes after 254, longest first where they overlap (Communications Authority allocations).
_NETWORKS = [
    ("safaricom", ("70", "71", "72", "740", "741", "742", "743", "745", "746", "748", "757",
                   "758", "759", "768", "769", "79", "110", "111", "112", "113", "114", "115")),
    ("airtel", ("730", "731", "732", "733", "734", "735", "736", "737", "738", "739", "750",
                "751", "752", "753", "754", "755", "756", "762", "780", "781", "782", "783",
                "784", "785", "786", "787", "788", "789", "100", "101", "102", "103", "104",
                "105", "106", "107", "108")),
    ("telkom", ("770", "771", "772", "773", "774", "775", "776", "777", "778", "779")),
]


class InvalidMobile(ValueError):
    pass


def normalise_mobile(raw: str) -> str:
    """`0712 345 678`, `+254712345678`, `254712345678`, `254112345678` -> `254712345678`."""
    cleaned = re.sub(r"[\s\-()]", "", raw or "")
    match = _NATIONAL.match(cleaned) or _INTERNATIONAL.match(cleaned)
    if not match:
        raise InvalidMobile(
            "Enter a Kenyan mobile number such as 0712345678 or +254712345678."
        )
    return "254" + match.group(1)


def for_search(raw: str) -> str:
    """A number as stored, for filtering: normalised if it is valid, else as typed (so a bad
    number simply matches nothing)."""
    try:
        return normalise_mobile(raw)
    except InvalidMobile:
        return raw


def network_for(mobile: str) -> str:
    """The network for a normalised number, or `unknown`."""
    local = mobile[3:]
    for network, prefixes in _NETWORKS:
        if local.startswith(prefixes):
            return network
    return "unknown"
