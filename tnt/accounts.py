"""Accounts and users."""
import logging

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from .errors import InvalidInput
from .extensions import db
from .models import Account, User

log = logging.getLogger(__name__)


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


# Sign-in throttling: failures per email+IP in Redis. From the 4th failure each one locks that
# pair out for twice as long as the last (2 s, 4 s, 8 s ... at most 15 min). Redis down: no throttle,
# sign-in still works.
_FREE_FAILURES = 3
_MAX_LOCK = 900


def _login_keys(email: str, ip: str) -> tuple[str, str]:
    who = f"{(email or '').strip().lower()}|{ip}"
    return f"tnt:login-fail:{who}", f"tnt:login-lock:{who}"


def login_locked_for(email: str, ip: str) -> int:
    """Seconds until this email+IP may try again (0: now)."""
    from . import queue

    try:
        ttl = queue.redis().pttl(_login_keys(email, ip)[1])
    except Exception as exc:  # noqa: BLE001
        log.warning("login throttle unavailable: %s", exc)
        return 0
    return max(0, -(-ttl // 1000)) if ttl and ttl > 0 else 0


def login_failed(email: str, ip: str) -> int:
    """Count a bad password; return the lockout it earned, in seconds."""
    from . import queue

    fails_key, lock_key = _login_keys(email, ip)
    try:
        r = queue.redis()
        fails = r.incr(fails_key)
        r.expire(fails_key, 3600)
        if fails <= _FREE_FAILURES:
            return 0
        seconds = min(_MAX_LOCK, 2 ** (fails - _FREE_FAILURES))
        r.set(lock_key, 1, ex=seconds)
        return seconds
    except Exception as exc:  # noqa: BLE001
        log.warning("login throttle unavailable: %s", exc)
        return 0


def login_succeeded(email: str, ip: str) -> None:
    from . import queue

    try:
        queue.redis().delete(*_login_keys(email, ip))
    except Exception as exc:  # noqa: BLE001
        log.warning("login throttle unavailable: %s", exc)
