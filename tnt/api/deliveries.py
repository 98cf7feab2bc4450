"""/api/v1/deliveries: the log with its attempts, resend one, bulk-resend failures."""
import json

from .. import MAX_ID, deliveries, delivery, logs
from ..models import EVENTS
from ..phones import for_search
from .core import account_id, bp, iso, json_body, page, page_args, query_args

FILTERS = {"status": logs.STATUSES, "endpoint_id": "int", "event": tuple(EVENTS),
           "since": "datetime", "until": "datetime", "message_id": "int", "mobile": "str"}


def log_query(args: dict) -> logs.LogQuery:
    """The checked query parameters (or bulk-resend body) as a LogQuery of the key's account.
    An id too big for the database becomes 0, which no row has."""
    args = args | {k: 0 for k in ("endpoint_id", "message_id") if args.get(k, 0) > MAX_ID}
    if args.get("mobile"):
        args["mobile"] = for_search(args["mobile"])
    return logs.LogQuery(logs.Scope.account(account_id()), **args)


def delivery_json(d, event, mobile) -> dict:
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
        "next_attempt_at": iso(d.next_attempt_at),
        "last_error": d.last_error,
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }


def attempt_json(a) -> dict:
    try:
        headers = json.loads(a.response_headers or "{}")
    except ValueError:
        headers = {}
    return {
        "id": a.id,
        "number": a.number,
        "trigger": a.trigger,
        "requested_by": a.requested_by.email if a.requested_by else None,
        "started_at": iso(a.started_at),
        "duration_ms": a.duration_ms,
        "ok": a.ok,
        "status_code": a.status_code,
        "response_headers": headers if isinstance(headers, dict) else {},
        "response_body": a.response_body,
        "error": a.error,
    }


def _detail(d) -> dict:
    out = delivery_json(d, d.event, deliveries.mobile_of(d))
    out["payload"] = json.loads(d.event.body)
    out["attempts"] = [attempt_json(a) for a in deliveries.attempts(d.id)]
    return out


@bp.get("/deliveries")
def list_deliveries():
    args = query_args(FILTERS | {"cursor": "int", "limit": "int"})
    cursor, limit = page_args(args)
    before = None if cursor is None else min(cursor, MAX_ID)  # beyond: as if none were bigger
    rows = logs.deliveries(log_query(args), before_id=before, limit=limit)
    return page(rows, limit, lambda row: delivery_json(*row))


@bp.get("/deliveries/<int:delivery_id>")
def get_delivery(delivery_id):
    return _detail(deliveries.get(logs.Scope.account(account_id()), delivery_id))


@bp.post("/deliveries/<int:delivery_id>/resend")
def resend_delivery(delivery_id):
    json_body({}, allow_empty=True)
    deliveries.get(logs.Scope.account(account_id()), delivery_id)
    # An API key is not a dashboard user: the attempt is logged as manual with no requester.
    delivery.resend(delivery_id, account_id=account_id(), requested_by=None)
    return _detail(deliveries.get(logs.Scope.account(account_id()), delivery_id))


@bp.post("/deliveries/resend")
def bulk_resend():
    body = json_body({"endpoint_id": int, "event": str, "since": str, "until": str,
                      "message_id": int, "mobile": str}, allow_empty=True)
    # The same filters as the list's query string (status is always failed here).
    filters = query_args({k: v for k, v in FILTERS.items() if k != "status"},
                         {k: str(v) for k, v in body.items()})
    return {"queued": deliveries.queue_resend(log_query(filters))}, 202
