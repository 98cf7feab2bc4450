"""Kenyan numbers against a table of real prefixes (Communications Authority allocations)."""

import pytest

from tnt.phones import InvalidMobile, for_search, network_for, normalise_mobile


@pytest.mark.parametrize(
    "local, network",
    [
        ("0712345678", "safaricom"),
        ("0701234567", "safaricom"),
        ("0722123456", "safaricom"),
        ("0740123456", "safaricom"),
        ("0757123456", "safaricom"),
        ("0768123456", "safaricom"),
        ("0790123456", "safaricom"),
        ("0110123456", "safaricom"),
        ("0115123456", "safaricom"),
        ("0733123456", "airtel"),
        ("0750123456", "airtel"),
        ("0762123456", "airtel"),
        ("0780123456", "airtel"),
        ("0100123456", "airtel"),
        ("0108123456", "airtel"),
        ("0770123456", "telkom"),
        ("0779123456", "telkom"),
        # Beyond the table the project used to keep by hand: the library knows these too.
        ("0749123456", "safaricom"),
        ("0116123456", "safaricom"),
        ("0747123456", "jtl"),
    ],
)
def test_real_prefixes_name_their_network(local, network):
    mobile = normalise_mobile(local)
    assert mobile == "254" + local[1:]
    assert network_for(mobile) == network


@pytest.mark.parametrize(
    "typed", ["0712 345 678", "+254 712-345-678", "254712345678", "(0712) 345678", "+254712345678"]
)
def test_the_forms_people_type(typed):
    assert normalise_mobile(typed) == "254712345678"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "712345678",
        "0812345678",
        "07123456789",
        "+255712345678",
        "0712٣45678",
        "tel:0712345678",
        "0612345678",
    ],
)
def test_not_a_kenyan_mobile(typed):
    with pytest.raises(InvalidMobile, match="Enter a Kenyan mobile number"):
        normalise_mobile(typed)


def test_a_number_no_network_holds_is_refused():
    with pytest.raises(InvalidMobile, match="No Kenyan mobile network"):
        normalise_mobile("0109123456")  # 2541 09… is not allocated


def test_search_matches_as_typed_when_it_is_not_a_number():
    assert for_search("0712 345 678") == "254712345678"
    assert for_search("9041") == "9041"
