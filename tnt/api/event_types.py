"""/api/v1/event-types: the five events, what fires them, and an example payload."""
import json

from flask import current_app

from .. import events
from ..clock import nairobi_iso, utcnow
from ..models import EVENTS
from .core import bp

STATUS_OF = {"sms.sent": "sent", "sms.delivered": "delivered", "sms.failed": "failed",
             "sms.undelivered": "undelivered", "sms.cancelled": "cancelled"}


def example(event_type: str) -> dict:
    """A payload exactly as a webhook would carry it (rendered by tnt.events.render)."""
    now = utcnow().replace(microsecond=0)
    data = events.SAMPLE_DATA | {"status": STATUS_OF[event_type],
                                 "created_at": nairobi_iso(now), "updated_at": nairobi_iso(now)}
    return json.loads(events.render(event_type, now, data))


@bp.get("/event-types")
def list_event_types():
    body = {"data": [{"type": t, "description": d, "example": example(t)}
                     for t, d in EVENTS.items()]}
    # Not jsonify: it sorts keys, and the example should read in the payload's own order.
    return current_app.response_class(json.dumps(body, ensure_ascii=False),
                                      mimetype="application/json")
