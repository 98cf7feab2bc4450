"""`POST /provider/dlr`: the SMS carrier's delivery reports, authenticated with a shared secret.

The simulated carrier reports through the same function (`messages.record_delivery_report`),
from an RQ job (`tnt.jobs.report_delivery`).
"""
import hmac

from flask import Blueprint, current_app, request

from .. import messages
from .core import ApiError, handle_exception, json_body

bp = Blueprint("provider", __name__, url_prefix="/provider")
bp.register_error_handler(Exception, handle_exception)


def _authorised() -> bool:
    expected = current_app.config.get("TNT_DLR_SECRET") or ""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


@bp.post("/dlr")
def delivery_report():
    request.max_content_length = 64 * 1024
    if not _authorised():
        raise ApiError(401, "unauthorized", "Send the shared secret: `Authorization: Bearer "
                       "<TNT_DLR_SECRET>`.", headers={"WWW-Authenticate": 'Bearer realm="dlr"'})
    body = json_body({"message_id": int, "status": str}, required=("message_id", "status"))
    if body["status"] not in ("delivered", "undelivered"):
        raise ApiError(422, "invalid_input", "Some fields are not valid.",
                       {"status": "Must be delivered or undelivered."})
    msg = messages.record_delivery_report(body["message_id"], body["status"])
    return {"message_id": msg.id, "status": msg.status}
