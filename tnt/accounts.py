"""Accounts and users."""
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from .errors import InvalidInput
from .extensions import db
from .models import Account, User


def create_account(name: str) -> Account:
    name = (name or "").strip()
    if not name:
        raise InvalidInput({"name": "Enter a name."})
    if db.session.scalar(select(Account).where(Account.name == name)):
        raise InvalidInput({"name": f"An account named {name!r} exists."})
    account = Account(name=name)
    db.session.add(account)
    db.session.commit()
    return account


def create_user(email: str, password: str, *, role: str = "customer",
                account_id: int | None = None) -> User:
    email = (email or "").strip().lower()
    errors = {}
    if "@" not in email:
        errors["email"] = "Enter an email address."
    elif db.session.scalar(select(User).where(User.email == email)):
        errors["email"] = "That email is taken."
    if len(password or "") < 8:
        errors["password"] = "Use at least 8 characters."
    if role not in ("customer", "support"):
        errors["role"] = "Must be customer or support."
    elif role == "customer" and account_id is None:
        errors["account"] = "A customer belongs to an account."
    if errors:
        raise InvalidInput(errors)
    user = User(email=email, password_hash=generate_password_hash(password), role=role,
                account_id=account_id if role == "customer" else None)
    db.session.add(user)
    db.session.commit()
    return user


def authenticate(email: str, password: str) -> User | None:
    user = db.session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    if user and check_password_hash(user.password_hash, password or ""):
        return user
    return None
