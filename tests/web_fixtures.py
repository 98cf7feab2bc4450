"""Helpers for the dashboard tests (the fixtures themselves live in conftest.py)."""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tnt import accounts

PASSWORD = "correct-horse-1"

# Screenshots go to a temporary folder; `TNT_SCREENSHOTS_DIR=docs/screenshots make test`
# refreshes the README's pictures.
SHOTS = Path(os.environ.get("TNT_SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "tnt-shots")


def shot(page, name: str) -> None:
    """A full-page screenshot of what the browser shows now, as SHOTS/<name>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    # caret="initial": hiding the caret would inject a <style>, which the CSP (rightly) blocks.
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, caret="initial")


@dataclass
class People:
    a: object  # Account
    b: object
    alice: object  # customer of a
    bob: object  # customer of b
    sam: object  # support


def make_people() -> People:
    """Two customer accounts (Acme: alice, Beta: bob) and a support user (sam)."""
    a = accounts.create_account("Acme")
    b = accounts.create_account("Beta")
    return People(
        a=a,
        b=b,
        alice=accounts.create_user("alice@acme.test", PASSWORD, account_id=a.id),
        bob=accounts.create_user("bob@beta.test", PASSWORD, account_id=b.id),
        sam=accounts.create_user("sam@tnt.test", PASSWORD, role="support"),
    )


def sign_in(client, email: str, password: str = PASSWORD):
    return client.post("/login", data={"email": email, "password": password})


def browser_sign_in(page, email: str, password: str = PASSWORD) -> None:
    """Sign in through the real form in the browser and wait for the Endpoints page."""
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/endpoints")
