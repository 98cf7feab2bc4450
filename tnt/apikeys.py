"""API keys: create (the key is shown once), list, revoke, and authenticate a bearer key.

A key is 32 random bytes, so a plain SHA-256 of it is a safe thing to store (no salt or slow hash
is needed for high-entropy secrets) and lets a request find its key with one indexed lookup.
"""

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from . import audit
from .clock import utcnow
from .errors import InvalidInput, NotFound
from .extensions import db
from .models import ApiKey
from .scope import Scope

KEY_PREFIX = "tnt_"
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per key


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create(account_id: int, name: str, *, created_by: int | None = None) -> tuple[ApiKey, str]:
    """Make a key; return (row, raw key). The raw key is never stored and cannot be shown again."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput({"name": "Enter a name for the key."})
    if len(name) > 80:
        raise InvalidInput({"name": "At most 80 characters."})
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        account_id=account_id,
        name=name,
        prefix=raw[:12],
        key_hash=hash_key(raw),
        created_by_id=created_by,
    )
    db.session.add(key)
    db.session.flush()
    _record(audit.Action.API_KEY_CREATE, key)
    db.session.commit()
    return key, raw


def list_for(scope: Scope) -> list[ApiKey]:
    """The scope's keys, newest first."""
    query = select(ApiKey).order_by(ApiKey.id.desc())
    if not scope.everyone:
        query = query.where(ApiKey.account_id == scope.account_id)
    return list(db.session.scalars(query))


def get(scope: Scope, key_id: int) -> ApiKey:
    key = db.session.get(ApiKey, key_id)
    if key is None or not (scope.everyone or key.account_id == scope.account_id):
        raise NotFound("No such API key.")
    return key


def revoke(scope: Scope, key_id: int) -> ApiKey:
    """Revoke at once (a key the scope sees); revoking twice is harmless."""
    key = get(scope, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        _record(audit.Action.API_KEY_REVOKE, key)
        db.session.commit()
    return key


def _record(action: audit.Action, key: ApiKey) -> None:
    audit.record(
        action,
        key.account_id,
        target=("api_key", key.id),
        details={"name": key.name, "prefix": key.prefix},
    )


def authenticate(raw: str | None) -> ApiKey | None:
    """The active key for a presented bearer value, or None. Records when it was last used."""
    if not raw or not raw.startswith(KEY_PREFIX) or len(raw) > 200:
        return None
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(raw)))
    if key is None or key.revoked_at is not None:
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
        # A conditional UPDATE, so busy keys do not turn every request into a write.
        db.session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        db.session.commit()
        key = db.session.get(ApiKey, key.id)
    return key
