"""/api/v1/messages: send, list, get, cancel (through tnt.messages)."""

from flask import url_for

from .. import messages
from . import schemas
from .core import account_id, before_id, bp, page, scope
from .openapi import error


@bp.post("/messages", tags=["messages"])
@bp.arguments(schemas.SendMessage)
@bp.response(201, schemas.Message)
def send_message(body):
    """Send message"""
    msg = messages.send_sms(
        account_id(),
        body["mobile"],
        body.get("sender_id", "TALKNTALK"),
        body["message"],
        source="api",
        simulate=body.get("simulate"),
    )
    return msg, {"Location": url_for("api.get_message", message_id=msg.id)}


@bp.get("/messages", tags=["messages"])
@bp.arguments(schemas.MessageQuery, location="query")
@bp.response(200, schemas.MessagePage)
def list_messages(args):
    """List messages"""
    cursor, limit = args.pop("cursor", None), args.pop("limit", 50)
    items = messages.search(account_id(), before_id=before_id(cursor), limit=limit, **args)
    return page(items, limit)


@bp.get("/messages/<int:message_id>", tags=["messages"])
@bp.response(200, schemas.Message)
def get_message(message_id):
    """Get message"""
    return messages.get(scope(), message_id)


@bp.post("/messages/<int:message_id>/cancel", tags=["messages"])
@bp.arguments(schemas.NoBody, required=False)
@bp.response(200, schemas.Message)
@bp.alt_response(409, **error(409))
def cancel_message(_body, message_id):
    """Cancel message"""
    return messages.cancel_message(scope(), message_id)
