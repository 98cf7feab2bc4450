"""/api/v1/deliveries: the log with its attempts, resend one, bulk-resend failures."""

import json

from .. import MAX_ID, deliveries, delivery, logs
from ..phones import for_search
from . import schemas
from .core import before_id, bp, page, scope
from .openapi import error


def log_query(filters: dict) -> logs.LogQuery:
    """The checked query parameters (or bulk-resend body) as a LogQuery of the key's account.
    An id too big for the database becomes 0, which no row has."""
    filters = filters | {k: 0 for k in ("endpoint_id", "message_id") if filters.get(k, 0) > MAX_ID}
    if filters.get("mobile"):
        filters = filters | {"mobile": for_search(filters["mobile"])}
    return logs.LogQuery(scope(), **filters)


def delivery_json(d, event, mobile) -> dict:
    """A delivery with its event's fields and its message's mobile (schemas.Delivery)."""
    return {
        "id": d.id,
        "uid": d.uid,
        "endpoint_id": d.endpoint_id,
        "event": event.type,
        "event_id": event.id,
        "is_test": event.is_test,
        "message_id": event.message_id,
        "mobile": mobile,
        "status": d.status,
        "attempts_count": d.attempts_count,
        "next_attempt_at": d.next_attempt_at,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    }


def _detail(delivery_id) -> dict:
    d = deliveries.get(scope(), delivery_id)
    return delivery_json(d, d.event, deliveries.mobile_of(d)) | {
        "payload": json.loads(d.event.body),
        "attempts": deliveries.attempts(d.id),
    }


@bp.get("/deliveries", tags=["deliveries"])
@bp.arguments(schemas.DeliveryQuery, location="query")
@bp.response(200, schemas.DeliveryPage)
def list_deliveries(args):
    """List deliveries"""
    cursor, limit = args.pop("cursor", None), args.pop("limit", 50)
    rows = logs.deliveries(log_query(args), before_id=before_id(cursor), limit=limit)
    return page([delivery_json(*row) for row in rows], limit, lambda d: d["id"])


@bp.get("/deliveries/<int:delivery_id>", tags=["deliveries"])
@bp.response(200, schemas.DeliveryDetail)
def get_delivery(delivery_id):
    """Get delivery"""
    return _detail(delivery_id)


@bp.post("/deliveries/<int:delivery_id>/resend", tags=["deliveries"])
@bp.arguments(schemas.NoBody, required=False)
@bp.response(200, schemas.DeliveryDetail)
@bp.alt_response(409, **error(409))
def resend_delivery(_body, delivery_id):
    """Resend delivery"""
    # An API key is not a dashboard user: the attempt is logged as manual with no requester.
    delivery.resend(delivery_id, scope=scope(), requested_by=None)
    return _detail(delivery_id)


@bp.post("/deliveries/resend", tags=["deliveries"])
@bp.arguments(schemas.BulkResendInput, required=False)
@bp.response(202, schemas.BulkResendResult)
def bulk_resend(filters):
    """Bulk resend failed deliveries

    The list's filters (its status aside: failed deliveries only).
    """
    return {"queued": deliveries.queue_resend(log_query(filters))}
