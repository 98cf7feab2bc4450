"""One delivery by id (with its attempts), and queueing bulk resends. Lists are tnt.logs'.

Single resends go through `tnt.delivery.resend`; a bulk resend only makes the deliveries due
again and lets the delivery engine send them, so the database stays the truth and the sweeper
covers a lost kick.
"""

from dataclasses import asdict, replace

from sqlalchemy import select, update

from . import audit, queue
from .clock import utcnow
from .errors import NotFound
from .extensions import db
from .logs import LogQuery, Scope, delivery_select
from .models import Attempt, Delivery, Endpoint, Message
from .states import DeliveryStatus


def get(scope: Scope, delivery_id: int) -> Delivery:
    d = db.session.get(Delivery, delivery_id)
    if d is None or not (scope.everyone or d.account_id == scope.account_id):
        raise NotFound("No such delivery.")
    return d


def mobile_of(d: Delivery) -> str | None:
    if d.event.message_id is None:
        return None
    return db.session.scalar(select(Message.mobile).where(Message.id == d.event.message_id))


def attempts(delivery_id: int) -> list[Attempt]:
    return list(
        db.session.scalars(
            select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.id)
        )
    )


def queue_resend(q: LogQuery, requested_by: int | None = None) -> int:
    """Make every failed delivery matching `q` (its status aside) due for one manual attempt
    (logged with `requested_by`); return how many.

    Only deliveries whose endpoint is enabled and not deleted are queued. A failure leaves the
    delivery failed again rather than starting a new 1/5/30-minute retry series.
    """
    now = utcnow()
    ids = (
        delivery_select(replace(q, status=DeliveryStatus.FAILED), Delivery.id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(
            Endpoint.enabled.is_(True),
            Endpoint.deleted_at.is_(None),
            (Delivery.lease_expires_at.is_(None)) | (Delivery.lease_expires_at < now),
        )
    )
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids.scalar_subquery()), Delivery.status == DeliveryStatus.FAILED)
        .values(
            status=DeliveryStatus.RETRYING,
            next_attempt_at=now,
            updated_at=now,
            resend_pending=True,
            resend_requested_by_id=requested_by,
        ),
        execution_options={"synchronize_session": False},
    )
    if result.rowcount:
        audit.record(
            audit.Action.DELIVERY_BULK_RESEND,
            q.scope.account_id,
            details={"queued": result.rowcount, "filters": _filters(q)},
        )
    db.session.commit()
    if result.rowcount:
        queue.kick()
    return result.rowcount


def _filters(q: LogQuery) -> dict:
    """The filters a bulk resend was given, as JSON (for its audit entry)."""
    out = {k: v for k, v in asdict(q).items() if k not in ("scope", "status") and v is not None}
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in out.items()}
