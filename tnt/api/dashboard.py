"""Dashboard pages of the API: API keys (create, shown once; revoke) and the API reference."""

import json

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import apikeys
from ..errors import InvalidInput, NotFound
from ..web.scope import owner_scope
from . import openapi

bp = Blueprint("api_dashboard", __name__)

# Example bodies for the curl lines of the API page, by operationId.
EXAMPLE_BODIES = {
    "send_message": {
        "mobile": "0712345678",
        "message": "Your OTP is 847291.",
        "sender_id": "TALKNTALK",
    },
    "create_endpoint": {
        "url": "https://example.com/webhooks",
        "events": ["sms.delivered", "sms.undelivered"],
    },
    "update_endpoint": {"description": "Production receiver"},
    "set_endpoint_secret": {"secret": "a-long-random-secret"},
    "send_test_event": {"event": "sms.delivered"},
    "bulk_resend_failed_deliveries": {"endpoint_id": 1, "event": "sms.delivered"},
    "carrier_delivery_report": {"message_id": 9041, "status": "delivered"},
}
SAMPLE_IDS = {"message_id": "9041", "endpoint_id": "1", "delivery_id": "1"}


def curl_examples(base_url: str) -> list[dict]:
    """One curl line per operation of the OpenAPI document."""
    out = []
    for path, method, op in openapi.operations(openapi.document()):
        url = base_url.rstrip("/") + path
        for name, value in SAMPLE_IDS.items():
            url = url.replace("{" + name + "}", value)
        auth = "$TNT_DLR_SECRET" if path.startswith("/provider/") else "$TNT_API_KEY"
        parts = [f"curl -X {method.upper()} '{url}'"]
        if op.get("security") != []:
            parts.append(f'-H "Authorization: Bearer {auth}"')
        body = EXAMPLE_BODIES.get(op["operationId"])
        if body is not None:
            parts.append("-H 'Content-Type: application/json'")
            parts.append("-d '" + json.dumps(body) + "'")
        out.append(
            {
                "method": method.upper(),
                "path": path,
                "summary": op["summary"],
                "tag": op["tags"][0],
                "curl": " \\\n  ".join(parts),
            }
        )
    return out


@bp.get("/api-keys")
@login_required
def keys():
    return render_template(
        "api/keys.html", keys=apikeys.list_for(owner_scope()), new_key=None, errors={}
    )


@bp.post("/api-keys")
@login_required
def create_key():
    if current_user.is_support or current_user.account_id is None:
        abort(403)  # keys belong to an account; support staff do not act as a customer
    try:
        key, raw = apikeys.create(
            current_user.account_id, request.form.get("name", ""), created_by=current_user.id
        )
    except InvalidInput as exc:
        return render_template(
            "api/keys.html", keys=apikeys.list_for(owner_scope()), new_key=None, errors=exc.fields
        ), 422
    # Rendered, not redirected: the key is shown this once and never stored in the clear.
    return render_template(
        "api/keys.html",
        keys=apikeys.list_for(owner_scope()),
        new_key={"name": key.name, "raw": raw},
        errors={},
    ), 201


@bp.post("/api-keys/<int:key_id>/revoke")
@login_required
def revoke_key(key_id):
    try:
        key = apikeys.revoke(owner_scope(), key_id)
    except NotFound:
        abort(404)
    flash(f"API key {key.name!r} revoked.")
    return redirect(url_for("api_dashboard.keys"))


@bp.get("/api-docs")
@login_required
def docs():
    doc = openapi.document()
    return render_template(
        "api/docs.html",
        examples=curl_examples(request.host_url),
        document=json.dumps(doc, indent=2),
        doc=doc,
    )
