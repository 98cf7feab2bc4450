"""Seed data for `make run`: a demo customer, a support user and an endpoint."""

from sqlalchemy import select

from . import accounts, endpoints
from .extensions import db
from .models import Account, Endpoint, User

DEMO_ACCOUNT = "Demo Ltd"
CUSTOMER = ("demo@example.com", "demo-password")
SUPPORT = ("support@example.com", "support-password")
DEMO_SECRET = "whsec_demo_secret_for_local_use"  # noqa: S105  (development demo only)


def seed(receiver_url: str) -> list[str]:
    account = db.session.scalar(select(Account).where(Account.name == DEMO_ACCOUNT))
    if account is None:
        account = accounts.create_account(DEMO_ACCOUNT)
    for (email, password), role in ((CUSTOMER, "customer"), (SUPPORT, "support")):
        if not db.session.scalar(select(User).where(User.email == email)):
            accounts.create_user(email, password, role=role, account_id=account.id)
    if not db.session.scalar(select(Endpoint).where(Endpoint.account_id == account.id)):
        endpoints.create(
            account.id,
            receiver_url,
            list(endpoints.EVENTS),
            "Demo receiver (prints what it gets)",
            DEMO_SECRET,
        )
    return [
        f"Demo account: {DEMO_ACCOUNT}",
        f"  customer sign-in: {CUSTOMER[0]} / {CUSTOMER[1]}",
        f"  support sign-in:  {SUPPORT[0]} / {SUPPORT[1]}",
        f"  endpoint: {receiver_url} (signing secret {DEMO_SECRET})",
    ]
