"""/api/v1/messages: send, list, get, cancel (through tnt.messages)."""
from flask import url_for

from .. import messages
from .core import account_id, bp, json_body, page, page_args, query_args

STATUSES = ("queued", "sent", "delivered", "failed", "undelivered", "cancelled")


def message_json(msg) -> dict:
    return msg.as_data()


@bp.post("/messages")
def send_message():
    body = json_body({"mobile": str, "message": str, "sender_id": str, "simulate": "str?"},
                     required=("mobile", "message"), check=lambda b: messages.validate(
                         b.get("mobile", ""), b.get("sender_id", "TALKNTALK"),
                         b.get("message", ""), simulate=b.get("simulate")))
    msg = messages.send_sms(account_id(), body["mobile"], body.get("sender_id", "TALKNTALK"),
                            body["message"], source="api", simulate=body.get("simulate"))
    return message_json(msg), 201, {"Location": url_for("api.get_message", message_id=msg.id)}


@bp.get("/messages")
def list_messages():
    args = query_args({"status": STATUSES, "mobile": "str", "source": ("api", "dashboard"),
                       "since": "datetime", "until": "datetime", "cursor": "int", "limit": "int"})
    cursor, limit = page_args(args)
    items = messages.search(account_id(), before_id=cursor, limit=limit, **args)
    return page(items, limit, message_json)


@bp.get("/messages/<int:message_id>")
def get_message(message_id):
    return message_json(messages.get(account_id(), message_id))


@bp.post("/messages/<int:message_id>/cancel")
def cancel_message(message_id):
    json_body({}, allow_empty=True)
    return message_json(messages.cancel_message(account_id(), message_id))
