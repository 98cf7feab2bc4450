"""Kenyan mobile numbers: validate, normalise to 2547XXXXXXXX / 2541XXXXXXXX, name the network.

Which numbers exist and which network holds them come from `phonenumbers` (libphonenumber's
metadata, kept current upstream as the Communications Authority allocates new ranges), not from
a table of our own. tests/test_phones.py holds real prefixes and what each must give.
"""

import re

import phonenumbers
from phonenumbers import PhoneNumberType, carrier

_SEPARATORS = re.compile(r"[\s\-()]")
# The forms we take: 07…/01…, or 2547…/2541… with or without "+". ASCII digits only.
_FORM = re.compile(r"(?:0|\+?254)([17][0-9]{8})")
_MOBILE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


class InvalidMobile(ValueError):
    pass


def normalise_mobile(raw: str) -> str:
    """`0712 345 678`, `+254712345678`, `254712345678`, `254112345678` -> `254712345678`."""
    match = _FORM.fullmatch(_SEPARATORS.sub("", raw or ""))
    if not match:
        raise InvalidMobile("Enter a Kenyan mobile number such as 0712345678 or +254712345678.")
    number = phonenumbers.parse("+254" + match[1])
    if not (phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in _MOBILE):
        raise InvalidMobile("No Kenyan mobile network has numbers starting like this one.")
    return "254" + match[1]


def for_search(raw: str) -> str:
    """A number as stored, for filtering: normalised if it is valid, else as typed (so a bad
    number simply matches nothing)."""
    try:
        return normalise_mobile(raw)
    except InvalidMobile:
        return raw


def network_for(mobile: str) -> str:
    """The network holding a normalised number, as a lower-case slug (`safaricom`, `airtel`,
    `telkom`, `jtl`...), or `unknown`."""
    name = carrier.name_for_number(phonenumbers.parse("+" + mobile), "en")
    return "-".join(name.lower().split()) if name else "unknown"
