"""Signing secrets encrypted at rest with keys from the environment.

`TNT_SECRETS_KEY` is a comma-separated list of Fernet keys: the first encrypts, every one
decrypts, so a new key can be put first while tokens written under the old one still read
(`flask tnt rotate-secrets-key` then re-encrypts them all and the old key can go). Fernet is
AES-128-CBC with an HMAC-SHA256 over the whole token: a token altered in the database fails to
decrypt instead of yielding a wrong secret.

`EncryptedString` is a column type, so ORM and Core reads and writes (tnt.delivery reads the
endpoint table with Core) all pass through it. Decrypted values are `Secret`s: plain strings whose
repr hides them, so a debug log of a row (SQLAlchemy logs rows with repr) never shows one.
"""

import functools
import logging
import os
import secrets as _secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app, has_app_context
from sqlalchemy import Text, column, select, table, update
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

ENV_VAR = "TNT_SECRETS_KEY"
EXTENSION = "tnt_secrets_fernet"
# Every Fernet token starts with its version byte 0x80, which urlsafe base64 spells "gAAAAA".
TOKEN_PREFIX = "gAAAAA"  # noqa: S105  (a format marker)


class Secret(str):
    """A decrypted secret: a str in every way except that repr() does not show it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"


class SecretsKeyError(RuntimeError):
    """TNT_SECRETS_KEY is missing (production), malformed, or lacks a key a token needs."""


def parse_keys(value: str) -> MultiFernet:
    """A MultiFernet from a comma-separated key list; the error names the bad entry, never a key."""
    keys = [k.strip() for k in (value or "").split(",") if k.strip()]
    if not keys:
        raise SecretsKeyError(f"{ENV_VAR} holds no key.")
    fernets = []
    for number, key in enumerate(keys, 1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            raise SecretsKeyError(
                f"{ENV_VAR}: key {number} of {len(keys)} is not a Fernet key (32 url-safe "
                "base64-encoded bytes); see docs/security.md for how to make one."
            ) from None
    return MultiFernet(fernets)


def init_app(app) -> None:
    """Load the keys once: config `TNT_SECRETS_KEY`, else the environment, else (development
    only) a key kept under instance/. Production refuses to start without one."""
    value = app.config.get(ENV_VAR) or os.environ.get(ENV_VAR)
    if not value:
        if app.config.get("TNT_ENV") == "production":
            raise SecretsKeyError(
                f"{ENV_VAR} must be set when TNT_ENV=production (signing secrets are encrypted "
                "with it); see docs/security.md."
            )
        value = _dev_key(Path(app.instance_path))
    app.extensions[EXTENSION] = parse_keys(value)


def _dev_key(instance: Path) -> str:
    """A development key under instance/, created once; two processes starting together agree."""
    path = instance / "secrets_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        tmp = instance / f".secrets_key.{os.getpid()}.{_secrets.token_hex(4)}"
        tmp.write_text(Fernet.generate_key().decode())
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic: fails if another process made it first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def fernet() -> MultiFernet:
    if not has_app_context() or EXTENSION not in current_app.extensions:
        raise SecretsKeyError(
            "Signing secrets need the app (its TNT_SECRETS_KEY) to be read or written."
        )
    return current_app.extensions[EXTENSION]


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> Secret:
    try:
        return Secret(_decrypt(fernet(), token))
    except InvalidToken:
        raise SecretsKeyError(
            "A signing secret cannot be decrypted with any key in TNT_SECRETS_KEY: was a key "
            "removed before `flask tnt rotate-secrets-key` re-encrypted the secrets with the new "
            "one? Put the old key back at the end of the list."
        ) from None


@functools.lru_cache(maxsize=4096)
def _decrypt(keys: MultiFernet, token: str) -> str:
    # Every delivery reads its endpoint's secret: decrypt each token once per process, not
    # once per webhook (keyed by the key set too, so a new key list never reuses old answers).
    return keys.decrypt(token.encode()).decode()


def is_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX)


_warned_plaintext = False


class EncryptedString(TypeDecorator):
    """A string column stored as a Fernet token (Text: a token is about 4/3 of the secret's
    bytes plus 76 characters). A value written before encryption existed reads as it is until
    `flask tnt rotate-secrets-key` encrypts it."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return encrypt(str(value))

    def process_result_value(self, value, dialect):
        return read(value)


def read(stored: str | None) -> "Secret | None":
    """The secret a column value holds (a token, or plaintext from before encryption)."""
    if stored is None:
        return None
    if is_token(stored):
        return decrypt(stored)
    global _warned_plaintext
    if not _warned_plaintext:
        _warned_plaintext = True
        log.warning(
            "a signing secret is stored unencrypted: run `flask tnt "
            "rotate-secrets-key` to encrypt every stored secret"
        )
    return Secret(stored)


# The raw column, read and written as text (no decorator), for re-encryption.
_raw_endpoint = table("endpoint", column("id"), column("secret", Text))


def rotate_all(session) -> int:
    """Re-encrypt every stored secret with the first key (plaintext left from before encryption
    is encrypted too). Checks every token first, so a missing key changes nothing. No commit."""
    multi = fernet()
    rows = session.execute(
        select(_raw_endpoint.c.id, _raw_endpoint.c.secret)
        .where(_raw_endpoint.c.secret.is_not(None))
        .order_by(_raw_endpoint.c.id)
    ).all()
    new_values, unreadable = [], []
    for row in rows:
        if is_token(row.secret):
            try:
                new_values.append((row.id, multi.rotate(row.secret.encode()).decode()))
            except InvalidToken:
                unreadable.append(row.id)
        else:
            new_values.append((row.id, multi.encrypt(row.secret.encode()).decode()))
    if unreadable:
        raise SecretsKeyError(
            f"{len(unreadable)} endpoint secret(s) (endpoint ids {unreadable[:20]}) cannot be "
            f"decrypted with any key in {ENV_VAR}; nothing was changed. Add the key they were "
            "written with to the end of the list and run again."
        )
    for endpoint_id, token in new_values:
        session.execute(
            update(_raw_endpoint).where(_raw_endpoint.c.id == endpoint_id).values(secret=token)
        )
    return len(new_values)
