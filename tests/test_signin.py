"""Sign-in security: throttling per address and per account (password spraying), the time an
unknown email takes (account enumeration), and sessions that end everywhere on sign-out or a
new password."""

import statistics
import time

import pytest
from web_fixtures import PASSWORD, sign_in

from tnt import accounts
from tnt.errors import InvalidInput


@pytest.fixture
def web(app):
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


def attempt(web, email, password="nope-nope", address="198.51.100.7"):
    return web.post(
        "/login", data={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def signed_in(client) -> bool:
    return client.get("/endpoints").status_code == 200


# --- throttling ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [lambda n: "198.51.100.7", lambda n: f"2001:db8:7:8::{n + 1:x}"],
    ids=["one IPv4 address", "addresses of one IPv6 /64"],
)
def test_many_emails_from_one_address_are_throttled(web, people, address):
    codes = [attempt(web, f"user{n}@spray.test", address=address(n)).status_code for n in range(30)]
    assert codes == [401] * 19 + [429] * 11
    # The right password waits too, from there; another address is not held up.
    assert attempt(web, people.alice.email, PASSWORD, address(31)).status_code == 429
    assert attempt(web, people.alice.email, PASSWORD, "192.0.2.1").status_code == 302


def test_one_account_from_many_addresses_is_throttled(web, people):
    assert attempt(web, people.alice.email, PASSWORD, "192.0.2.50").status_code == 302
    web.post("/logout")
    codes = [
        attempt(web, people.alice.email, address=f"203.0.113.{n}").status_code for n in range(1, 31)
    ]
    assert codes == [401] * 9 + [429] * 21
    resp = attempt(web, people.alice.email, PASSWORD, "198.51.100.99")
    assert resp.status_code == 429 and "Too many failed attempts" in resp.get_data(as_text=True)
    # Strangers cannot lock alice out where she signed in before, nor touch other accounts.
    assert attempt(web, people.alice.email, PASSWORD, "192.0.2.50").status_code == 302
    assert attempt(web, people.bob.email, PASSWORD, "198.51.100.99").status_code == 302


def test_unknown_emails_are_throttled_like_known_ones(web, people):
    """Otherwise the throttle would tell which emails have accounts."""
    for email in (people.alice.email, "nobody@acme.test"):
        codes = [attempt(web, email, address=f"203.0.113.{n}").status_code for n in range(11)]
        assert codes == [401] * 9 + [429] * 2, email


# --- account enumeration ------------------------------------------------------------------


def test_an_unknown_email_takes_as_long_as_a_wrong_password(web, people):
    """Timed: medians of interleaved attempts, each from its own address (no throttle), with a
    wide bound. A wrong password costs a hash check (about 100 ms); without the dummy hash an
    unknown email answered in a few ms."""

    def seconds(email, address):
        started = time.perf_counter()
        assert attempt(web, email, address=address).status_code == 401
        return time.perf_counter() - started

    seconds("warm-up@nowhere.test", "192.0.2.200")
    known, unknown = [], []
    for n in range(7):
        known.append(seconds(people.alice.email, f"192.0.2.{n}"))
        unknown.append(seconds(f"nobody{n}@nowhere.test", f"192.0.2.{100 + n}"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2, (known, unknown)


# --- sessions -----------------------------------------------------------------------------


def copy_of(app, client):
    """Another client holding a copy of `client`'s session cookie (a stolen cookie)."""
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    return copy


def test_signing_out_ends_every_copy_of_the_session(app, web, people):
    assert sign_in(web, people.alice.email).status_code == 302
    copy = copy_of(app, web)
    assert signed_in(copy)
    assert web.post("/logout").status_code == 302
    resp = copy.get("/endpoints")
    assert resp.status_code == 302 and "/login" in resp.location
    # Signing in again makes a new session; the old copy stays dead.
    assert sign_in(web, people.alice.email).status_code == 302
    assert signed_in(web) and not signed_in(copy)


def test_a_new_password_ends_every_session(app, web, people):
    assert sign_in(web, people.alice.email).status_code == 302
    copy = copy_of(app, web)
    bob = app.test_client()
    assert sign_in(bob, people.bob.email).status_code == 302
    accounts.set_password(people.alice, "a-brand-new-password")
    assert not signed_in(web) and not signed_in(copy)
    assert signed_in(bob)  # other users' sessions are not touched
    assert sign_in(web, people.alice.email).status_code == 401
    assert sign_in(web, people.alice.email, "a-brand-new-password").status_code == 302


def test_set_password_refuses_a_short_one(people):
    with pytest.raises(InvalidInput):
        accounts.set_password(people.alice, "short")
    assert accounts.authenticate(people.alice.email, PASSWORD) is not None


def test_set_password_command_prompts_for_it(app, runner, web, people):
    assert sign_in(web, people.alice.email).status_code == 302
    result = runner.invoke(
        args=["tnt", "set-password", "ALICE@acme.test"],
        input="from-the-prompt-1\nfrom-the-prompt-1\n",
    )
    assert result.exit_code == 0, result.output
    assert "password changed for alice@acme.test" in result.output
    assert "from-the-prompt-1" not in result.output  # not echoed
    assert not signed_in(web)
    assert sign_in(web, people.alice.email, "from-the-prompt-1").status_code == 302


def test_set_password_command_refuses_what_it_should(runner, people):
    # Never from an argument: it would stay in shell history and the process list.
    result = runner.invoke(args=["tnt", "set-password", people.alice.email, "--password", "x"])
    assert result.exit_code != 0 and "No such option" in result.output
    result = runner.invoke(args=["tnt", "set-password", "nobody@acme.test"])
    assert result.exit_code != 0 and "no user 'nobody@acme.test'" in result.output
    result = runner.invoke(args=["tnt", "set-password", people.alice.email], input="short\nshort\n")
    assert result.exit_code != 0 and "at least 8 characters" in result.output
    result = runner.invoke(
        args=["tnt", "set-password", people.alice.email], input="long-enough-1\nlong-enough-2\n"
    )
    assert result.exit_code != 0  # the two entries must match
    assert accounts.authenticate(people.alice.email, PASSWORD) is not None
