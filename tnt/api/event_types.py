"""/api/v1/event-types: the five events, what fires them, and an example payload."""

import json

from flask import current_app

from .. import events
from ..clock import utcnow
from ..models import EVENTS, Message
from ..states import EventType
from . import schemas
from .core import bp


def example(event_type: str) -> dict:
    """A payload exactly as a webhook would carry it (rendered by tnt.events.render)."""
    now = utcnow().replace(microsecond=0)
    message = Message(
        id=9041,
        **events.SAMPLE_MESSAGE | {"message": "Your OTP is 847291."},
        status=EventType(event_type).status,
        source="api",
        created_at=now,
        updated_at=now,
    )  # never added to the session
    return json.loads(events.render(event_type, now, message.as_data()))


@bp.get("/event-types", tags=["events"])
@bp.response(200, schemas.EventTypeList)
def list_event_types():
    """List event types"""
    body = {
        "data": [{"type": t, "description": d, "example": example(t)} for t, d in EVENTS.items()]
    }
    # Not jsonify: it sorts keys, and the example should read in the payload's own order.
    return current_app.response_class(
        json.dumps(body, ensure_ascii=False), mimetype="application/json"
    )
