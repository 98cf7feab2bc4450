"""Configuration from the environment, with embedded defaults for development."""

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = Path(os.environ.get("TNT_INSTANCE_PATH", ROOT / "instance"))


def database_url(url: str | None) -> str:
    """Accept the PaaS `postgres://` form and pick the psycopg 3 driver."""
    if not url:
        return f"sqlite:///{INSTANCE / 'tnt.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def embedded_redis_url() -> str:
    return f"unix://{INSTANCE / 'redis.sock'}"


def from_env(env=os.environ) -> dict:
    # Production unless development is asked for by name: a deploy that forgets TNT_ENV must
    # not accept loopback or http endpoints, or run without real keys.
    mode = env.get("TNT_ENV") or "production"
    if mode not in ("production", "development"):
        raise RuntimeError(f"TNT_ENV must be production or development, not {mode!r}")
    production = mode == "production"
    secret_key = env.get("SECRET_KEY")
    if production and not secret_key:
        raise RuntimeError(
            "SECRET_KEY must be set in production (TNT_ENV unset or production); "
            "for local development set TNT_ENV=development (make run does)"
        )
    smtp_url = env.get("TNT_SMTP_URL") or None
    if smtp_url and urlsplit(smtp_url).scheme not in ("smtp", "smtp+starttls", "smtps"):
        raise RuntimeError("TNT_SMTP_URL must start with smtp://, smtp+starttls:// or smtps://")
    public_url = public_url_from(env.get("TNT_PUBLIC_URL"), production)
    return {
        "TNT_ENV": mode,
        # This service's own address as customers reach it: inspectors' capture URLs are made
        # on it. None: development uses the request's own address; production refuses to
        # create inspectors and says so (tnt.inspectors.public_url).
        "TNT_PUBLIC_URL": public_url,
        "TNT_INSPECTOR_RATE_LIMIT": env.get("TNT_INSPECTOR_RATE_LIMIT", "120/minute"),
        "SECRET_KEY": secret_key or _dev_secret_key(),
        "SQLALCHEMY_DATABASE_URI": database_url(env.get("DATABASE_URL")),
        "REDIS_URL": env.get("REDIS_URL") or embedded_redis_url(),
        # Loopback endpoints are for local development only; production never allows them.
        "TNT_ALLOW_LOOPBACK": not production and env.get("TNT_ALLOW_LOOPBACK", "1") == "1",
        "TNT_HTTPS_ONLY": production,
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "WTF_CSRF_TIME_LIMIT": None,  # a dashboard tab left open an hour must still post
        # Parameter values (signatures, message texts, mobiles) never reach logs or errors.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "hide_parameters": True},
        # The delivery engine (tnt.delivery.settings says what each one means).
        "TNT_DELIVERY_TIMEOUT": float(env.get("TNT_DELIVERY_TIMEOUT", "10")),  # the spec's 10 s
        # Shorter only for fault tests and bench/chaos.py: the lease must outlast a POST.
        "TNT_LEASE_SECONDS": float(env.get("TNT_LEASE_SECONDS", "120")),
        "TNT_BATCH_SIZE": int(env.get("TNT_BATCH_SIZE", "200")),
        "TNT_SEND_CONCURRENCY": int(env.get("TNT_SEND_CONCURRENCY", "512")),
        "TNT_PER_ENDPOINT": int(env.get("TNT_PER_ENDPOINT", "8")),
        "TNT_HOLD_PER_ENDPOINT": int(env.get("TNT_HOLD_PER_ENDPOINT", "32")),
        "TNT_SLOW_AFTER": 1.0,
        "TNT_DRAIN_IDLE": float(env.get("TNT_DRAIN_IDLE", "0.5")),
        "TNT_WORKER_PROCESSES": int(env.get("TNT_WORKER_PROCESSES", "1")),
        "TNT_FAULT": env.get("TNT_FAULT", ""),  # fault injection, for the fault tests only
        # Proxies in front of the web process (a PaaS router is 1): their X-Forwarded-For and
        # X-Forwarded-Proto are trusted, so throttling and rate limits see the client's address.
        "TNT_PROXY_HOPS": int(env.get("TNT_PROXY_HOPS", "0")),
        "TNT_API_RATE_LIMIT": env.get("TNT_API_RATE_LIMIT", "600/minute"),
        "TNT_DLR_SECRET": env.get("TNT_DLR_SECRET"),  # unset: carrier reports are refused
        "TNT_METRICS_TOKEN": env.get("TNT_METRICS_TOKEN"),  # unset: /metrics is off (404)
        "TNT_SIMULATED_DLR_DELAY": float(env.get("TNT_SIMULATED_DLR_DELAY", "2")),
        # Email (tnt.mail): smtp://host:port, smtp+starttls://user:pass@host:587 or
        # smtps://user:pass@host:465. Unset: notices are logged by the worker, not sent.
        "TNT_SMTP_URL": smtp_url,
        "TNT_MAIL_FROM": env.get("TNT_MAIL_FROM") or "TalkNTalk Webhooks <webhooks@localhost>",
    }


def public_url_from(value: str | None, production: bool) -> str | None:
    """TNT_PUBLIC_URL as `scheme://host[:port]`, or None when unset. Refuses (at start) a value
    with a path, query or user name, and http in production (endpoints there are https-only)."""
    from urllib.parse import urlsplit

    value = (value or "").strip().rstrip("/")
    if not value:
        return None
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018  (a bad port raises here)
    except ValueError:
        parts = parts._replace(netloc="")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise RuntimeError(
            f"TNT_PUBLIC_URL must be this service's address, such as https://hooks.example.com, "
            f"not {value!r}"
        )
    if production and parts.scheme != "https":
        raise RuntimeError("TNT_PUBLIC_URL must be an https:// address in production")
    return value


def _dev_secret_key() -> str:
    """A key kept under instance/ so development sessions survive restarts."""
    path = INSTANCE / "secret_key"
    if not path.exists():
        INSTANCE.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
