"""Firing events: render the payload once and write one Delivery per subscribed endpoint.

Runs inside the caller's transaction (the outbox): the caller commits, then calls
`tnt.queue.kick()` so a worker picks the deliveries up.
"""

import json
import uuid

from sqlalchemy import insert, select

from .clock import nairobi_iso, utcnow
from .extensions import db
from .models import Delivery, Endpoint, Event, Message
from .states import DeliveryStatus, EventType

# A test event's message: the spec's example, with its own id and the event's status.
SAMPLE_MESSAGE = {
    "mobile": "254712345678",
    "sender_id": "TALKNTALK",
    "message": "Test event from TalkNTalk Webhooks.",
    "network": "safaricom",
}


def render(event_type: str, fired_at, data: dict) -> bytes:
    """The exact bytes POSTed: `{"event", "timestamp", "data"}` in that order."""
    payload = {"event": event_type, "timestamp": nairobi_iso(fired_at), "data": data}
    return json.dumps(payload, ensure_ascii=False).encode()


def fire(message, event_type: str) -> int:
    """Record `event_type` for `message` and a delivery to each enabled subscriber; return the
    event's id. Core statements, not ORM objects: this runs on every status change."""
    now = message.updated_at
    event_id = db.session.execute(
        insert(Event.__table__).returning(Event.__table__.c.id),
        {
            "account_id": message.account_id,
            "message_id": message.id,
            "type": event_type,
            "body": render(event_type, now, message.as_data()),
            "fired_at": now,
            "is_test": False,
        },
    ).scalar_one()
    e = Endpoint.__table__
    subscribers = db.session.execute(
        select(e.c.id, e.c.events).where(
            e.c.account_id == message.account_id, e.c.enabled.is_(True), e.c.deleted_at.is_(None)
        )
    ).all()
    rows = [
        _delivery_row(event_id, message.account_id, endpoint_id, now)
        for endpoint_id, events in subscribers
        if event_type in events.split()
    ]
    if rows:
        db.session.execute(insert(Delivery.__table__), rows)
    return event_id


def fire_test(
    endpoint: Endpoint, event_type: str = EventType.DELIVERED, source: str = "dashboard"
) -> Delivery:
    """A test event for one endpoint, marked as a test in the logs.

    Its payload has the shape of a real one: a message of its own (so `data.id` never repeats
    and a receiver deduping on `data.id` + event keeps every test), with the status the event
    means. The message is flagged `is_test` and kept out of message lists.
    """
    now = utcnow()
    message = Message(
        account_id=endpoint.account_id,
        status=EventType(event_type).status,
        source=source,
        is_test=True,
        created_at=now,
        updated_at=now,
        **SAMPLE_MESSAGE,
    )
    db.session.add(message)
    db.session.flush()
    event = Event(
        account_id=endpoint.account_id,
        message_id=message.id,
        type=event_type,
        body=render(event_type, now, message.as_data()),
        fired_at=now,
        is_test=True,
    )
    db.session.add(event)
    db.session.flush()
    delivery = Delivery(**_delivery_row(event.id, endpoint.account_id, endpoint.id, now))
    db.session.add(delivery)
    return delivery


def _delivery_row(event_id: int, account_id: int, endpoint_id: int, now) -> dict:
    return {
        "uid": str(uuid.uuid4()),
        "account_id": account_id,
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "status": DeliveryStatus.PENDING,
        "auto_attempts": 0,
        "attempts_count": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
