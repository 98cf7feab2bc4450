"""The OpenAPI 3.1 document for /api/v1 and /provider/dlr, served at /api/v1/openapi.json.

Written by hand next to the routes; tests check that every route is in it and nothing else is,
and schemathesis checks the live app's answers against it.
"""
from .. import MAX_ID, __version__
from ..models import EVENTS
from .core import bp

MESSAGE_STATUSES = ["queued", "sent", "delivered", "failed", "undelivered", "cancelled"]
DELIVERY_STATUSES = ["pending", "retrying", "delivered", "failed"]
EVENT_NAMES = list(EVENTS)

# Patterns for what the server's own checks accept (tnt.phones, tnt.messages, tnt.endpoints).
MOBILE = r"^(0|\+?254)[17][0-9]{8}$"
SENDER_ID = r"^[A-Za-z0-9][A-Za-z0-9 ]{0,10}$"
NO_NUL = r"^[^\u0000]*$"
TEXT = r"^[^\u0000]*\S[^\u0000]*$"  # some text that is not only spaces
SECRET = r"[!-~]{8,255}"

STR = {"type": "string"}
INT = {"type": "integer"}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict, required=None, **extra) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else list(required),
            "additionalProperties": False, **extra}


SCHEMAS = {
    "Error": obj({"error": obj({
        "code": STR, "message": STR,
        "fields": {"type": "object", "additionalProperties": STR},
    })}),
    "Message": obj({
        "id": INT, "mobile": STR, "sender_id": STR, "message": STR,
        "status": {"type": "string", "enum": MESSAGE_STATUSES},
        "network": STR, "source": {"type": "string", "enum": ["api", "dashboard"]},
        "created_at": TIME, "updated_at": TIME,
    }),
    "MessagePage": obj({"data": {"type": "array", "items": ref("Message")},
                        "next_cursor": NULLABLE_STR}),
    "SendMessage": obj({
        "mobile": {"type": "string", "pattern": MOBILE, "examples": ["0712345678"],
                   "description": "Kenyan mobile, e.g. 0712345678 or +254712345678 (spaces, "
                   "dashes and brackets are ignored)."},
        "message": {"type": "string", "minLength": 1, "maxLength": 918, "pattern": TEXT,
                    "examples": ["Your OTP is 847291."]},
        "sender_id": {"type": "string", "pattern": SENDER_ID, "examples": ["TALKNTALK"],
                      "description": "1 to 11 letters, digits or spaces; default TALKNTALK."},
        "simulate": {"type": ["string", "null"],
                     "enum": ["delivered", "undelivered", "failed", "hold", None],
                     "description": "Simulated carrier only: force the outcome."},
    }, required=["mobile", "message"]),
    "Endpoint": obj({
        "id": INT, "url": STR, "description": STR,
        "events": {"type": "array", "items": {"type": "string", "enum": EVENT_NAMES}},
        "enabled": {"type": "boolean"}, "has_secret": {"type": "boolean"},
        "secret": NULLABLE_STR, "created_at": TIME,
    }),
    "EndpointList": obj({"data": {"type": "array", "items": ref("Endpoint")}}),
    "EndpointInput": obj({
        "url": {"type": "string", "format": "uri", "maxLength": 2048, "pattern": "^https?://",
                "examples": ["https://example.com/webhooks"],
                "description": "http(s) URL (https only in production). Its host must resolve "
                "to public addresses only: private, loopback, link-local and metadata "
                "addresses are refused (422)."},
        "events": {"type": "array", "minItems": 1,
                   "items": {"type": "string", "enum": EVENT_NAMES},
                   "examples": [["sms.delivered", "sms.undelivered"]],
                   "description": "Events to receive. Omitted when creating: all of them."},
        "description": {"type": "string", "maxLength": 255, "pattern": NO_NUL},
        "secret": {"type": ["string", "null"], "pattern": f"^({SECRET})?$",
                   "description": "Signing secret: 8 to 255 visible ASCII characters (no "
                   "spaces); null or \"\" for none."},
        "enabled": {"type": "boolean"},
    }, required=["url"]),
    "SecretInput": obj({"secret": {"type": "string", "pattern": f"^{SECRET}$"}}),
    "TestInput": obj({"event": {"type": "string", "enum": EVENT_NAMES}}, required=[]),
    "Delivery": obj({
        "id": INT, "uid": STR, "endpoint_id": INT,
        "event": {"type": "string", "enum": EVENT_NAMES}, "event_id": INT,
        "is_test": {"type": "boolean"}, "message_id": NULLABLE_INT, "mobile": NULLABLE_STR,
        "status": {"type": "string", "enum": DELIVERY_STATUSES},
        "attempts_count": INT, "next_attempt_at": NULLABLE_TIME, "last_error": NULLABLE_STR,
        "created_at": TIME, "updated_at": TIME,
    }),
    "DeliveryPage": obj({"data": {"type": "array", "items": ref("Delivery")},
                         "next_cursor": NULLABLE_STR}),
    "Attempt": obj({
        "id": INT, "number": INT, "trigger": {"type": "string", "enum": ["auto", "manual"]},
        "requested_by": NULLABLE_STR, "started_at": TIME, "duration_ms": INT,
        "ok": {"type": "boolean"}, "status_code": NULLABLE_INT,
        "response_headers": {"type": "object", "additionalProperties": STR},
        "response_body": STR, "error": NULLABLE_STR,
    }),
    "DeliveryDetail": {"allOf": [ref("Delivery")]},  # replaced below with the full object
    "BulkResendInput": obj({
        "endpoint_id": ID, "event": {"type": "string", "enum": EVENT_NAMES},
        "since": TIME, "until": TIME, "message_id": ID, "mobile": STR,
    }, required=[]),
    "BulkResendResult": obj({"queued": INT}),
    "EventType": obj({"type": {"type": "string", "enum": EVENT_NAMES}, "description": STR,
                      "example": ref("WebhookPayload")}),
    "EventTypeList": obj({"data": {"type": "array", "items": ref("EventType")}}),
    "WebhookPayload": obj({"event": {"type": "string", "enum": EVENT_NAMES}, "timestamp": TIME,
                           "data": {"type": "object"}}),
    "DeliveryReport": obj({"message_id": ID,
                           "status": {"type": "string", "enum": ["delivered", "undelivered"]}}),
    "DeliveryReportResult": obj({"message_id": INT, "status": STR}),
}
_detail = dict(SCHEMAS["Delivery"]["properties"])
_detail["payload"] = ref("WebhookPayload")
_detail["attempts"] = {"type": "array", "items": ref("Attempt")}
SCHEMAS["DeliveryDetail"] = obj(_detail)

ERRORS = {
    "400": "Malformed JSON or not a JSON object.",
    "401": "Missing, unknown or revoked API key.",
    "404": "No such object in this account.",
    "409": "The object's state does not allow this.",
    "413": "The body is larger than 1 MiB.",
    "422": "Invalid fields or parameters; `error.fields` names each one.",
    "429": "Rate limit for this key exceeded; see `Retry-After`.",
}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def op(summary: str, ok: dict | None, *, status: str = "200", body: str | None = None,
       body_required: bool = True, params: list | None = None, tag: str = "",
       errors=("400", "401", "404", "409", "413", "422", "429"), security=None) -> dict:
    responses = {}
    if ok is None:
        responses[status] = {"description": "Done; no content."}
    else:
        responses[status] = _json(ok)
    for code in errors:
        responses[code] = _json(ref("Error"), ERRORS[code])
    out = {"summary": summary, "operationId": summary.lower().replace(" ", "_").replace("-", "_"),
           "tags": [tag], "responses": responses}
    if params:
        out["parameters"] = params
    if body:
        out["requestBody"] = {"required": body_required,
                              "content": {"application/json": {"schema": ref(body)}}}
    if security is not None:
        out["security"] = security
    return out


def path_id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": ID}


def q(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


PAGING = [q("cursor", {"type": "string", "pattern": "^[0-9]{1,18}$"},
            "`next_cursor` of the previous page."),
          q("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Page size (default 50).")]
DATES = [q("since", TIME, "Created at or after (no offset: Africa/Nairobi)."),
         q("until", TIME, "Created before.")]


def document() -> dict:
    mid, eid, did = path_id("message_id"), path_id("endpoint_id"), path_id("delivery_id")
    p = "/api/v1"
    paths = {
        f"{p}/messages": {
            "get": op("List messages", ref("MessagePage"), tag="messages", params=[
                q("status", {"type": "string", "enum": MESSAGE_STATUSES}),
                q("mobile", STR), q("source", {"type": "string", "enum": ["api", "dashboard"]}),
                *DATES, *PAGING]),
            "post": op("Send message", ref("Message"), status="201", body="SendMessage",
                       tag="messages"),
        },
        f"{p}/messages/{{message_id}}": {
            "get": op("Get message", ref("Message"), params=[mid], tag="messages"),
        },
        f"{p}/messages/{{message_id}}/cancel": {
            "post": op("Cancel message", ref("Message"), params=[mid], tag="messages"),
        },
        f"{p}/endpoints": {
            "get": op("List endpoints", ref("EndpointList"), tag="endpoints"),
            "post": op("Create endpoint", ref("Endpoint"), status="201", body="EndpointInput",
                       tag="endpoints"),
        },
        f"{p}/endpoints/{{endpoint_id}}": {
            "get": op("Get endpoint", ref("Endpoint"), params=[eid], tag="endpoints"),
            "patch": op("Update endpoint", ref("Endpoint"), params=[eid], body="EndpointInput",
                        body_required=False, tag="endpoints"),
            "delete": op("Delete endpoint", None, status="204", params=[eid], tag="endpoints"),
        },
        f"{p}/endpoints/{{endpoint_id}}/enable": {
            "post": op("Enable endpoint", ref("Endpoint"), params=[eid], tag="endpoints"),
        },
        f"{p}/endpoints/{{endpoint_id}}/disable": {
            "post": op("Disable endpoint", ref("Endpoint"), params=[eid], tag="endpoints"),
        },
        f"{p}/endpoints/{{endpoint_id}}/secret": {
            "put": op("Set endpoint secret", ref("Endpoint"), params=[eid], body="SecretInput",
                      tag="endpoints"),
            "delete": op("Clear endpoint secret", ref("Endpoint"), params=[eid],
                         tag="endpoints"),
        },
        f"{p}/endpoints/{{endpoint_id}}/secret/rotate": {
            "post": op("Rotate endpoint secret", ref("Endpoint"), params=[eid], tag="endpoints"),
        },
        f"{p}/endpoints/{{endpoint_id}}/test": {
            "post": op("Send test event", ref("Delivery"), status="202", params=[eid],
                       body="TestInput", body_required=False, tag="endpoints"),
        },
        f"{p}/deliveries": {
            "get": op("List deliveries", ref("DeliveryPage"), tag="deliveries", params=[
                q("status", {"type": "string", "enum": DELIVERY_STATUSES}),
                q("endpoint_id", ID), q("event", {"type": "string", "enum": EVENT_NAMES}),
                *DATES, q("message_id", ID), q("mobile", STR), *PAGING]),
        },
        f"{p}/deliveries/resend": {
            "post": op("Bulk resend failed deliveries", ref("BulkResendResult"), status="202",
                       body="BulkResendInput", body_required=False, tag="deliveries"),
        },
        f"{p}/deliveries/{{delivery_id}}": {
            "get": op("Get delivery", ref("DeliveryDetail"), params=[did], tag="deliveries"),
        },
        f"{p}/deliveries/{{delivery_id}}/resend": {
            "post": op("Resend delivery", ref("DeliveryDetail"), params=[did],
                       tag="deliveries"),
        },
        f"{p}/event-types": {
            "get": op("List event types", ref("EventTypeList"), tag="events"),
        },
        f"{p}/openapi.json": {
            "get": op("OpenAPI document", {"type": "object"}, tag="meta", errors=("429",),
                      security=[]),
        },
        "/provider/dlr": {
            "post": op("Carrier delivery report", ref("DeliveryReportResult"),
                       body="DeliveryReport", tag="provider",
                       errors=("400", "401", "404", "409", "413", "422"),
                       security=[{"dlrSecret": []}]),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TalkNTalk Webhooks API",
            "version": __version__,
            "description": (
                "Send SMS, manage webhook endpoints and inspect deliveries. Authenticate with "
                "`Authorization: Bearer <API key>` (create keys in the dashboard or with "
                "`flask tnt api-key create`). Errors are `{\"error\": {\"code\", \"message\", "
                "\"fields\"}}`. Lists page newest first: pass `next_cursor` back as `cursor`."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "An API key of your account."},
                "dlrSecret": {"type": "http", "scheme": "bearer",
                              "description": "The carrier's shared secret (TNT_DLR_SECRET)."},
            },
        },
    }


@bp.get("/openapi.json")
def openapi():
    return document()
