"""Firing events: render the payload once and write one Delivery per subscribed endpoint.

Runs inside the caller's transaction (the outbox): the caller commits, then calls
`tnt.queue.kick()` so a worker picks the deliveries up.
"""
import json
import uuid

from sqlalchemy import select

from .clock import nairobi_iso, utcnow
from .extensions import db
from .models import Delivery, Endpoint, Event

SAMPLE_DATA = {
    "id": 9041,
    "mobile": "254712345678",
    "sender_id": "TALKNTALK",
    "message": "Your OTP is 847291.",
    "status": "delivered",
    "network": "safaricom",
    "source": "api",
}


def render(event_type: str, fired_at, data: dict) -> bytes:
    """The exact bytes POSTed: `{"event", "timestamp", "data"}` in that order."""
    payload = {"event": event_type, "timestamp": nairobi_iso(fired_at), "data": data}
    return json.dumps(payload, ensure_ascii=False).encode()


def fire(message, event_type: str) -> Event:
    """Record `event_type` for `message` and a delivery to each enabled subscriber."""
    now = message.updated_at
    event = Event(
        account_id=message.account_id,
        message_id=message.id,
        type=event_type,
        body=render(event_type, now, message.as_data()),
        fired_at=now,
    )
    db.session.add(event)
    endpoints = db.session.scalars(
        select(Endpoint).where(
            Endpoint.account_id == message.account_id,
            Endpoint.enabled.is_(True),
            Endpoint.deleted_at.is_(None),
        )
    )
    for endpoint in endpoints:
        if event_type in endpoint.event_list:
            _add_delivery(event, endpoint, now)
    return event


def fire_test(endpoint: Endpoint, event_type: str = "sms.delivered") -> Delivery:
    """A sample payload for one endpoint, marked as a test in the logs."""
    now = utcnow()
    data = SAMPLE_DATA | {"created_at": nairobi_iso(now), "updated_at": nairobi_iso(now)}
    event = Event(
        account_id=endpoint.account_id,
        type=event_type,
        body=render(event_type, now, data),
        fired_at=now,
        is_test=True,
    )
    db.session.add(event)
    return _add_delivery(event, endpoint, now)


def _add_delivery(event: Event, endpoint: Endpoint, now) -> Delivery:
    delivery = Delivery(
        uid=str(uuid.uuid4()),
        account_id=endpoint.account_id,
        event=event,
        endpoint_id=endpoint.id,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    db.session.add(delivery)
    return delivery
