"""SMS messages: send, submit to the carrier, cancel, and record delivery reports.

Every status change fires its event in the same transaction (see tnt.events). The dashboard, the
API and the CLI all call these functions.
"""

import re

from flask import current_app
from sqlalchemy import select

from . import events, jobs, queue
from .clock import utcnow
from .errors import Conflict, InvalidInput, NotFound
from .extensions import db
from .models import Message
from .phones import InvalidMobile, for_search, network_for, normalise_mobile
from .provider import SimulatedProvider, SubmitFailed
from .scope import Scope
from .states import EventType, MessageStatus

S = MessageStatus
# The lifecycle: which status may follow which, and the event each move fires.
TRANSITIONS = {
    (S.QUEUED, S.SENT): EventType.SENT,
    (S.QUEUED, S.FAILED): EventType.FAILED,
    (S.QUEUED, S.CANCELLED): EventType.CANCELLED,
    (S.SENT, S.DELIVERED): EventType.DELIVERED,
    (S.SENT, S.UNDELIVERED): EventType.UNDELIVERED,
}
SENDER_ID = re.compile(r"^[A-Za-z0-9 ]{1,11}$")
MAX_LENGTH = 918  # six concatenated parts


class InvalidTransition(Conflict):
    pass


def send_sms(
    account_id: int,
    mobile: str,
    sender_id: str,
    message: str,
    *,
    source: str = "dashboard",
    simulate: str | None = None,
) -> Message:
    """Validate, store as queued, and hand to a worker for submission."""
    mobile, sender_id = validate(mobile, sender_id, message, source=source, simulate=simulate)
    now = utcnow()
    msg = Message(
        account_id=account_id,
        mobile=mobile,
        sender_id=sender_id,
        message=message,
        network=network_for(mobile),
        source=source,
        simulate=simulate,
        created_at=now,
        updated_at=now,
    )
    db.session.add(msg)
    db.session.commit()
    queue.enqueue(jobs.submit_message, msg.id)
    return msg


def validate(
    mobile: str,
    sender_id: str,
    message: str,
    *,
    source: str = "dashboard",
    simulate: str | None = None,
) -> tuple[str, str]:
    """Check a message to send; return (mobile, sender_id) normalised, or raise InvalidInput
    naming each bad field."""
    errors = {}
    try:
        mobile = normalise_mobile(mobile)
    except InvalidMobile as exc:
        errors["mobile"] = str(exc)
    sender_id = (sender_id or "").strip()
    if not SENDER_ID.match(sender_id):
        errors["sender_id"] = "Use 1 to 11 letters, digits or spaces."
    if not (message or "").strip():
        errors["message"] = "Enter the message text."
    elif len(message) > MAX_LENGTH:
        errors["message"] = f"At most {MAX_LENGTH} characters."
    if simulate not in (None, *SimulatedProvider.OUTCOMES):
        errors["simulate"] = "Choose one of: " + ", ".join(SimulatedProvider.OUTCOMES) + "."
    if source not in ("api", "dashboard"):
        errors["source"] = "Must be api or dashboard."
    if errors:
        raise InvalidInput(errors)
    return mobile, sender_id


def submit_message(message_id: int) -> None:
    """Hand a queued message to the carrier: sent, or failed if it refuses."""
    msg = _locked(message_id)
    if msg is None or msg.status != S.QUEUED:
        db.session.rollback()
        return
    carrier = provider()
    try:
        if not carrier.submit(msg):
            db.session.rollback()
            return
        transition(msg, S.SENT)
    except SubmitFailed:
        transition(msg, S.FAILED)
    _commit_and_kick()
    if msg.status == S.SENT:
        carrier.submitted(msg)


def cancel_message(scope: Scope, message_id: int) -> Message:
    """Cancel a queued message the scope sees."""
    msg = _locked(message_id)
    if msg is None or not (scope.everyone or msg.account_id == scope.account_id):
        db.session.rollback()
        raise NotFound("No such message.")
    transition(msg, S.CANCELLED)
    _commit_and_kick()
    return msg


def record_delivery_report(message_id: int, status: str) -> Message:
    """The carrier's word on a sent message: delivered or undelivered."""
    if status not in (S.DELIVERED, S.UNDELIVERED):
        raise InvalidInput({"status": "A delivery report must be delivered or undelivered."})
    msg = _locked(message_id)
    if msg is None:
        db.session.rollback()
        raise NotFound("No such message.")
    transition(msg, status)
    _commit_and_kick()
    return msg


def transition(msg: Message, status: str) -> int:
    """Move msg to status and fire its event (returns its id); refuse any move the lifecycle
    does not allow."""
    event_type = TRANSITIONS.get((msg.status, status))
    if event_type is None:
        db.session.rollback()
        raise InvalidTransition(f"A {msg.status} message cannot become {status}.")
    msg.status = status
    msg.updated_at = utcnow()
    return events.fire(msg, event_type)


def provider():
    ext = current_app.extensions
    if "tnt_provider" not in ext:
        delay = current_app.config["TNT_SIMULATED_DLR_DELAY"]
        ext["tnt_provider"] = SimulatedProvider(
            lambda mid, status: queue.enqueue_in(delay, jobs.report_delivery, mid, status)
        )
    return ext["tnt_provider"]


def _locked(message_id: int) -> Message | None:
    return db.session.scalar(select(Message).where(Message.id == message_id).with_for_update())


def _commit_and_kick() -> None:
    db.session.commit()
    queue.kick()


def get(scope: Scope, message_id: int) -> Message:
    """The message if the scope sees it."""
    msg = db.session.get(Message, message_id)
    if msg is None or not (scope.everyone or msg.account_id == scope.account_id):
        raise NotFound("No such message.")
    return msg


def search(
    account_id: int,
    *,
    status: str | None = None,
    mobile: str | None = None,
    source: str | None = None,
    since=None,
    until=None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Message]:
    """The account's messages, newest first, filtered; `before_id` pages by id (keyset)."""
    query = select(Message).where(Message.account_id == account_id, Message.is_test.is_(False))
    if status:
        query = query.where(Message.status == status)
    if mobile:
        query = query.where(Message.mobile == for_search(mobile))
    if source:
        query = query.where(Message.source == source)
    if since is not None:
        query = query.where(Message.created_at >= since)
    if until is not None:
        query = query.where(Message.created_at < until)
    if before_id is not None:
        query = query.where(Message.id < before_id)
    return list(db.session.scalars(query.order_by(Message.id.desc()).limit(limit)))
