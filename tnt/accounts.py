"""Accounts and users: creating them, passwords, sessions, and sign-in throttling."""

import functools
import hashlib
import ipaddress
import logging
import math
import secrets
import time

from limits import parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from . import queue
from .errors import InvalidInput
from .extensions import db
from .models import Account, User

log = logging.getLogger(__name__)

MIN_PASSWORD = 8


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


def create_user(
    email: str, password: str, *, role: str = "customer", account_id: int | None = None
) -> User:
    email = _normal(email)
    errors = {}
    if "@" not in email:
        errors["email"] = "Enter an email address."
    elif find_user(email):
        errors["email"] = "That email is taken."
    if problem := _password_problem(password):
        errors["password"] = problem
    if role not in ("customer", "support"):
        errors["role"] = "Must be customer or support."
    elif role == "customer" and account_id is None:
        errors["account"] = "A customer belongs to an account."
    if errors:
        raise InvalidInput(errors)
    user = User(
        email=email,
        password_hash=generate_password_hash(password),
        role=role,
        account_id=account_id if role == "customer" else None,
    )
    db.session.add(user)
    db.session.commit()
    return user


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == _normal(email)))


def _normal(email: str) -> str:
    return (email or "").strip().lower()


def _password_problem(password: str) -> str | None:
    if len(password or "") < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    return None


def authenticate(email: str, password: str) -> User | None:
    """The user, if the password is right. An unknown email costs a hash check too, so the
    time taken does not tell whether an account exists."""
    user = find_user(email)
    right = check_password_hash(user.password_hash if user else _dummy_hash(), password or "")
    return user if user and right else None


@functools.cache
def _dummy_hash() -> str:
    """A hash of the same kind and cost as the users' (Werkzeug's default), of no password."""
    return generate_password_hash(secrets.token_hex(16))


def set_password(user: User, password: str) -> None:
    """Change the password and sign the user out everywhere."""
    if problem := _password_problem(password):
        raise InvalidInput({"password": problem})
    user.password_hash = generate_password_hash(password)
    end_sessions(user)


# Sessions: a session names its user and the user's session epoch (User.get_id). Raising the
# epoch ends every session made before, copies of the cookie included.


def end_sessions(user: User) -> None:
    """Sign the user out everywhere (on sign-out and on a new password)."""
    user.session_epoch = User.session_epoch + 1  # in SQL: two sign-outs at once both count
    db.session.commit()


def user_for_session(session_id: str) -> User | None:
    """The user a session belongs to; None if it was ended, or is from before epochs."""
    user_id, _, epoch = session_id.partition(":")
    if not (user_id.isdigit() and epoch.isdigit()):
        return None
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.session_epoch == int(epoch) else None


# Sign-in throttling (docs/security.md): failures are counted in moving windows in Redis (the
# `limits` library, as the API's rate limits), in three scopes. A full window refuses every
# sign-in in its scope, the right password included, until its oldest failure is 15 minutes
# old. Emails count as typed, whether or not the account exists, so throttling does not tell.
PAIR_LIMIT = parse("5 per 15 minutes")  # one email from one address
ACCOUNT_LIMIT = parse("10 per 15 minutes")  # one email from any address (guessing from many)
ADDRESS_LIMIT = parse("20 per 15 minutes")  # any email from one address or IPv6 /64 (spraying)
# An address the account signed in from is exempt from ACCOUNT_LIMIT this long, so strangers
# failing its email elsewhere cannot lock its user out there.
KNOWN_ADDRESS_SECONDS = 30 * 86400


def login_locked_for(email: str, address: str) -> int:
    """Seconds until `email` may try to sign in from `address` (0: now)."""
    return _throttle(email, address, count=False)


def login_failed(email: str, address: str) -> int:
    """Count a failed sign-in; return the wait it earned, in seconds (0: none yet)."""
    return _throttle(email, address, count=True)


def login_succeeded(email: str, address: str) -> None:
    """Forget this email's failures at this address, and remember the address as its own."""
    who, where = _email_key(email), _address_key(address)
    try:
        _limiter().clear(PAIR_LIMIT, "pair", who, where)
        queue.redis().set(_known_key(who, where), 1, ex=KNOWN_ADDRESS_SECONDS)
    except Exception as exc:
        log.warning("sign-in throttle unavailable: %s", exc)


def _throttle(email: str, address: str, *, count: bool) -> int:
    """Seconds until the fullest scope of this sign-in has room (0: now), after counting a
    failure in every scope if `count`."""
    who, where = _email_key(email), _address_key(address)
    try:
        limiter = _limiter()
        scopes = [(PAIR_LIMIT, ("pair", who, where)), (ADDRESS_LIMIT, ("address", where))]
        if not queue.redis().exists(_known_key(who, where)):
            scopes.append((ACCOUNT_LIMIT, ("account", who)))
        if count:
            for item, keys in scopes:
                limiter.hit(item, *keys)
        stats = [limiter.get_window_stats(item, *keys) for item, keys in scopes]
    except Exception as exc:
        log.warning("sign-in throttle unavailable: %s", exc)
        return 0
    full = [s.reset_time for s in stats if s.remaining <= 0]
    return max(1, math.ceil(max(full) - time.time())) if full else 0


def _limiter() -> MovingWindowRateLimiter:
    # The app's own Redis connection pool (tnt.queue): the same server and timeouts.
    storage = RedisStorage(
        "redis://", connection_pool=queue.redis().connection_pool, key_prefix="tnt:signin"
    )
    return MovingWindowRateLimiter(storage)


def _email_key(email: str) -> str:
    # Hashed: a key of bounded length, and no email addresses in Redis.
    return hashlib.sha256(_normal(email).encode()).hexdigest()[:32]


def _address_key(address: str) -> str:
    """The client's address; for IPv6 its /64, which one client usually holds whole."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


def _known_key(who: str, where: str) -> str:
    return f"tnt:signin:known:{who}:{where}"
