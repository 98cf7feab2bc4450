"""Shared pieces for the dashboard tests: two customer accounts and a support user."""
from dataclasses import dataclass

import pytest

from tnt import accounts

PASSWORD = "correct-horse-1"


@dataclass
class People:
    a: object  # Account
    b: object
    alice: object  # customer of a
    bob: object  # customer of b
    sam: object  # support


@pytest.fixture
def people(app):
    a = accounts.create_account("Acme")
    b = accounts.create_account("Beta")
    return People(
        a=a, b=b,
        alice=accounts.create_user("alice@acme.test", PASSWORD, account_id=a.id),
        bob=accounts.create_user("bob@beta.test", PASSWORD, account_id=b.id),
        sam=accounts.create_user("sam@tnt.test", PASSWORD, role="support"),
    )


def sign_in(client, email: str, password: str = PASSWORD):
    return client.post("/login", data={"email": email, "password": password})
