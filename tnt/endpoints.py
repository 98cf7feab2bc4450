"""Webhook endpoints: create, edit, enable/disable, delete, send a test event."""

import re
import secrets as _secrets

from flask import current_app
from sqlalchemy import select

from . import audit, delivery, events, netguard, queue
from .audit import Action
from .clock import utcnow
from .errors import InvalidInput, NotFound
from .extensions import db
from .models import EVENTS, Delivery, Endpoint
from .scope import Scope

# Visible ASCII only: what the receiver's HMAC key bytes are is then never in doubt.
SECRET = re.compile(r"[!-~]{8,255}")
# An error message, not a secret (hence the noqa).
SECRET_ERROR = (
    "Use 8 to 255 visible characters (letters, digits, punctuation; "  # noqa: S105
    "no spaces), or leave it empty for no signature."
)


def generate_secret() -> str:
    return "whsec_" + _secrets.token_urlsafe(32)


def get(scope: Scope, endpoint_id: int) -> Endpoint:
    """The endpoint if the scope sees it and it is not deleted."""
    endpoint = db.session.get(Endpoint, endpoint_id)
    if (
        endpoint is None
        or endpoint.deleted_at is not None
        or not (scope.everyone or endpoint.account_id == scope.account_id)
    ):
        raise NotFound("No such endpoint.")
    return endpoint


def validate(
    url: str, events_: list[str] | None, description: str = "", secret: str | None = None
) -> dict:
    """Check the fields; return them cleaned, or raise InvalidInput naming each bad field.

    `events_` None subscribes to every event (the API's and the CLI's default); an empty list
    is an error. `secret` None leaves it out of the result (unchanged), "" means no secret.
    """
    errors, clean = {}, {}
    url = (url or "").strip()
    # netguard's explicit rule: this service's own inspector URL needs no address lookup.
    own = netguard.is_own_capture_url(url, current_app.config.get("TNT_PUBLIC_URL"))
    try:
        clean["url"] = netguard.check_url(
            url,
            allow_loopback=current_app.config["TNT_ALLOW_LOOPBACK"] or own,
            https_only=current_app.config["TNT_HTTPS_ONLY"],
            resolve=not own,
        )
    except netguard.UnsafeURL as exc:
        errors["url"] = str(exc)
    if events_ is None:
        events_ = list(EVENTS)
    unknown = [e for e in events_ if e not in EVENTS]
    if unknown:
        errors["events"] = "Unknown event: " + ", ".join(unknown) + "."
    elif not events_:
        errors["events"] = "Choose at least one event."
    else:
        clean["events"] = " ".join(e for e in EVENTS if e in events_)
    description = (description or "").strip()
    if len(description) > 255:
        errors["description"] = "At most 255 characters."
    clean["description"] = description
    if secret is not None:
        if secret and not SECRET.fullmatch(secret):
            errors["secret"] = SECRET_ERROR
        clean["secret"] = secret or None
    if errors:
        raise InvalidInput(errors)
    return clean


def create(
    account_id: int,
    url: str,
    events_: list[str] | None = None,
    description: str = "",
    secret: str | None = None,
    enabled: bool = True,
) -> Endpoint:
    fields = validate(url, events_, description, secret)
    endpoint = Endpoint(account_id=account_id, enabled=enabled, **fields)
    db.session.add(endpoint)
    db.session.flush()
    _record(
        Action.ENDPOINT_CREATE,
        endpoint,
        url=endpoint.url,
        events=endpoint.event_list,
        description=endpoint.description,
        signed=bool(endpoint.secret),
        enabled=enabled,
    )
    db.session.commit()
    return endpoint


def update(
    endpoint: Endpoint,
    url: str,
    events_: list[str],
    description: str = "",
    secret: str | None = None,
) -> Endpoint:
    """Edit; secret None leaves it as it is, "" clears it.

    The audit entry names each changed field (the URL as before and after; of the secret only
    whether it was set, replaced or removed). When support staff change the URL, the account's
    users are emailed after commit (tnt.mail): signed webhooks then go somewhere new.
    """
    fields = validate(url, events_, description, secret)
    details = _changes(endpoint, fields)
    for key, value in fields.items():
        setattr(endpoint, key, value)
    if not details["changed"]:
        db.session.commit()
        return endpoint
    notify = "url" in details["changed"] and audit.acted_as_support()
    if notify:
        details["notice"] = "queued"  # tnt.mail adds `notified` when the job has run
    entry = _record(Action.ENDPOINT_EDIT, endpoint, **details)
    db.session.commit()
    if notify:
        from . import mail

        mail.queue_url_change_notice(entry.id)
    return endpoint


def _changes(endpoint: Endpoint, fields: dict) -> dict:
    """What an edit changes, as audit details: the secret as set/replaced/removed, never its
    value."""
    changed = [k for k, v in fields.items() if getattr(endpoint, k) != v]
    details: dict = {"changed": changed, "url": {"before": endpoint.url, "after": fields["url"]}}
    if "events" in changed:
        details["events"] = {"before": endpoint.event_list, "after": fields["events"].split()}
    if "description" in changed:
        details["description"] = {"before": endpoint.description, "after": fields["description"]}
    if "secret" in changed:
        details["secret"] = (
            "removed" if not fields["secret"] else "replaced" if endpoint.secret else "set"
        )
    return details


def rotate_secret(endpoint: Endpoint) -> Endpoint:
    """Replace the signing secret with a new generated one."""
    endpoint.secret = generate_secret()
    _record(Action.ENDPOINT_SECRET_ROTATE, endpoint)
    db.session.commit()
    return endpoint


def clear_secret(endpoint: Endpoint) -> Endpoint:
    """Sign no more requests."""
    if endpoint.secret is not None:
        endpoint.secret = None
        _record(Action.ENDPOINT_SECRET_CLEAR, endpoint)
    db.session.commit()
    return endpoint


def secret_shown(endpoint: Endpoint, via: str) -> None:
    """Record that the endpoint's secret was sent to someone (never what it is)."""
    if endpoint.secret:
        _record(Action.ENDPOINT_SECRET_REVEAL, endpoint, via=via)
        db.session.commit()


def set_enabled(endpoint: Endpoint, enabled: bool) -> Endpoint:
    if endpoint.enabled != enabled:
        _record(Action.ENDPOINT_ENABLE if enabled else Action.ENDPOINT_DISABLE, endpoint)
    endpoint.enabled = enabled
    if not enabled:
        delivery.end_pending(endpoint.id, "Endpoint disabled; pending attempts stopped.")
    db.session.commit()
    return endpoint


def delete(endpoint: Endpoint) -> None:
    """Soft delete: its deliveries and attempts stay in the logs."""
    endpoint.deleted_at = utcnow()
    endpoint.enabled = False
    delivery.end_pending(endpoint.id, "Endpoint deleted; pending attempts stopped.")
    _record(Action.ENDPOINT_DELETE, endpoint, url=endpoint.url)
    db.session.commit()


def send_test(
    endpoint: Endpoint, event_type: str = "sms.delivered", source: str = "dashboard"
) -> Delivery:
    """Deliver a test event now (see events.fire_test); it shows as a test in the logs."""
    if event_type not in EVENTS:
        raise InvalidInput({"event": "Unknown event."})
    d = events.fire_test(endpoint, event_type, source)
    db.session.flush()
    _record(Action.ENDPOINT_TEST, endpoint, event=event_type, delivery_id=d.id)
    db.session.commit()
    queue.kick()
    return d


def list_for(scope: Scope) -> list[Endpoint]:
    query = select(Endpoint).where(Endpoint.deleted_at.is_(None)).order_by(Endpoint.id)
    if not scope.everyone:
        query = query.where(Endpoint.account_id == scope.account_id)
    return list(db.session.scalars(query))


def _record(action: Action, endpoint: Endpoint, **details):
    return audit.record(
        action, endpoint.account_id, target=("endpoint", endpoint.id), details=details
    )
