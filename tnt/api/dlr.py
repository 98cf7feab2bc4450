"""`POST /provider/dlr`: the SMS carrier's delivery reports, authenticated with a shared secret.

The simulated carrier reports through the same function (`messages.record_delivery_report`),
from an RQ job (`tnt.jobs.report_delivery`).
"""

import hmac

from flask import current_app, request

from .. import messages
from . import schemas
from .core import Blueprint
from .errors import ApiError
from .openapi import error

bp = Blueprint("provider", __name__, url_prefix="/provider")


@bp.before_request
def _authorised():
    request.max_content_length = 64 * 1024
    expected = current_app.config.get("TNT_DLR_SECRET") or ""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if not (
        expected
        and scheme.lower() == "bearer"
        and hmac.compare_digest(presented.strip().encode(), expected.encode())
    ):
        raise ApiError(
            401,
            "unauthorized",
            "Send the shared secret: `Authorization: Bearer <TNT_DLR_SECRET>`.",
            headers={"WWW-Authenticate": 'Bearer realm="dlr"'},
        )


@bp.post("/dlr", tags=["provider"])
@bp.doc(security=[{"dlrSecret": []}])
@bp.arguments(schemas.DeliveryReport)
@bp.response(200, schemas.DeliveryReportResult)
@bp.alt_response(404, **error(404))
@bp.alt_response(409, **error(409))
def delivery_report(report):
    """Carrier delivery report"""
    msg = messages.record_delivery_report(report["message_id"], report["status"])
    return {"message_id": msg.id, "status": msg.status}
