"""Reading the delivery log and queueing bulk resends (the API's Logs page equivalent).

Single resends go through `tnt.delivery.resend`; a bulk resend only makes the deliveries due
again and lets the delivery engine send them, so the database stays the truth and the sweeper
covers a lost kick.
"""
from sqlalchemy import select, update

from . import queue
from .clock import utcnow
from .errors import NotFound
from .extensions import db
from .models import Attempt, Delivery, Endpoint, Event, Message
from .phones import for_search

STATUSES = ("pending", "retrying", "delivered", "failed")


def _filtered(query, *, status=None, endpoint_id=None, event=None, since=None, until=None,
              message_id=None, mobile=None):
    if status:
        query = query.where(Delivery.status == status)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    if event:
        query = query.where(Event.type == event)
    if since is not None:
        query = query.where(Delivery.created_at >= since)
    if until is not None:
        query = query.where(Delivery.created_at < until)
    if message_id is not None:
        query = query.where(Event.message_id == message_id)
    if mobile:
        query = query.where(Message.mobile == for_search(mobile))
    return query


def _base(columns, account_id: int):
    return (
        select(*columns)
        .join(Event, Event.id == Delivery.event_id)
        .outerjoin(Message, Message.id == Event.message_id)
        .where(Delivery.account_id == account_id)
    )


def search(account_id: int, *, before_id: int | None = None, limit: int = 50,
           **filters) -> list[tuple[Delivery, Event, str | None]]:
    """(delivery, event, mobile) rows, newest first; `before_id` pages by id (keyset)."""
    query = _filtered(_base((Delivery, Event, Message.mobile), account_id), **filters)
    if before_id is not None:
        query = query.where(Delivery.id < before_id)
    return list(db.session.execute(query.order_by(Delivery.id.desc()).limit(limit)).all())


def get(account_id: int | None, delivery_id: int) -> Delivery:
    d = db.session.get(Delivery, delivery_id)
    if d is None or (account_id is not None and d.account_id != account_id):
        raise NotFound("No such delivery.")
    return d


def mobile_of(d: Delivery) -> str | None:
    if d.event.message_id is None:
        return None
    return db.session.scalar(select(Message.mobile).where(Message.id == d.event.message_id))


def attempts(delivery_id: int) -> list[Attempt]:
    return list(db.session.scalars(
        select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.id)))


def queue_resend(account_id: int, requested_by: int | None = None, **filters) -> int:
    """Make every failed delivery matching the filters due for one manual attempt (logged with
    `requested_by`); return how many.

    Only deliveries whose endpoint is enabled and not deleted are queued. A failure leaves the
    delivery failed again rather than starting a new 1/5/30-minute retry series.
    """
    filters.pop("status", None)
    now = utcnow()
    ids = _filtered(
        _base((Delivery.id,), account_id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(Delivery.status == "failed", Endpoint.enabled.is_(True),
               Endpoint.deleted_at.is_(None),
               (Delivery.lease_expires_at.is_(None)) | (Delivery.lease_expires_at < now)),
        **filters,
    )
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids.scalar_subquery()), Delivery.status == "failed")
        .values(status="retrying", next_attempt_at=now, updated_at=now, resend_pending=True,
                resend_requested_by_id=requested_by),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    if result.rowcount:
        queue.kick()
    return result.rowcount
