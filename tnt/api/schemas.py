"""The API's request and response schemas (marshmallow). The server validates requests and
serialises answers with them, and tnt/api/openapi.py generates the document from them, so the
two cannot disagree.

Patterns are written in the subset where Python's `re` and JSON Schema's ECMA-262 dialect mean
the same thing (explicit classes: no `\\s`, `\\d`), and the server checks them with
`re.fullmatch`, so what the document calls valid is what the server takes. What no schema can
say (an endpoint URL must resolve to public addresses) is in descriptions and is checked by the
domain (tnt.endpoints, tnt.messages) after the schema.
"""

import re
import sys
from datetime import UTC, datetime

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from .. import MAX_ID
from ..audit import Action, ActorType
from ..clock import NAIROBI, nairobi_iso
from ..logs import STATUSES as DELIVERY_STATUSES
from ..models import EVENTS
from ..provider import SimulatedProvider
from ..states import MessageStatus, Trigger

MESSAGE_STATUSES = tuple(MessageStatus)
SOURCES = ("api", "dashboard")


def _char_class(chars: list[int]) -> str:
    """`chars` as the inside of a regex class, in ranges, spelled the same for `re` and ECMA."""
    out, i = [], 0
    while i < len(chars):
        j = i
        while j + 1 < len(chars) and chars[j + 1] == chars[j] + 1:
            j += 1
        out.append(f"\\u{chars[i]:04x}" + (f"-\\u{chars[j]:04x}" if j > i else ""))
        i = j + 1
    return "".join(out)


# What str.strip() removes (the domain strips names and texts), as a class both dialects read
# alike: ECMA's \s differs from Python's (\x1c-\x1f, \x85, \ufeff).
WS = _char_class([c for c in range(sys.maxunicode + 1) if chr(c).isspace()])
NO_NUL = r"^[^\u0000]*$"
TEXT = rf"^[{WS}]*[^{WS}\u0000][^\u0000]*$"  # not only spaces (the domain strips, then checks)
# tnt.phones drops spaces, dashes and brackets anywhere, then wants 07…/01… or (+)2547…/2541….
_SEP = rf"[{WS}()\-]*"
MOBILE = rf"^{_SEP}(?:0|(?:\+{_SEP})?2{_SEP}5{_SEP}4){_SEP}[17](?:{_SEP}[0-9]){{8}}{_SEP}$"
SENDER_ID = rf"^[{WS}]*[A-Za-z0-9](?:[A-Za-z0-9 ]{{0,9}}[A-Za-z0-9])?[{WS}]*$"  # stripped
SECRET = "[!-~]{8,255}"  # noqa: S105  (a pattern, not a password) tnt.endpoints.SECRET
SECRET_ERROR = "Use 8 to 255 visible characters (letters, digits, punctuation; no spaces)."  # noqa: S105
CURSOR = "^[0-9]{1,18}$"
# RFC 3339 date-time (the offset may be left out) or full-date; fromisoformat then checks the
# calendar.
TIME_SHAPE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?)?"
)


class _Messages:
    default_error_messages = {"required": "This field is required.", "null": "Must not be null."}


class Str(_Messages, fields.String):
    """A string matching `pattern` (by default: no NUL, which PostgreSQL text cannot hold)."""

    default_error_messages = {"invalid": "Must be a string."}

    def __init__(self, *, pattern: str | None = NO_NUL, pattern_error: str | None = None, **kwargs):
        if pattern:
            kwargs["metadata"] = {"pattern": pattern, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)
        self.regex = re.compile(pattern) if pattern else None
        self.pattern_error = pattern_error or (
            "Must not contain NUL characters." if pattern == NO_NUL else "Not valid."
        )

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if self.regex and not self.regex.fullmatch(value):
            raise ValidationError(self.pattern_error)
        return value


class Int(_Messages, fields.Integer):
    """A JSON integer: 5 and 5.0 (both integers to JSON Schema), never "5" or true."""

    default_error_messages = {"invalid": "Must be an integer."}

    def _deserialize(self, value, attr, data, **kwargs):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not value.is_integer())
        ):
            raise self.make_error("invalid")
        return int(value)


class Bool(_Messages, fields.Boolean):
    """true or false only (marshmallow's own takes "yes", 1, …)."""

    default_error_messages = {"invalid": "Must be a boolean."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Time(_Messages, fields.Field):
    """In: a date-time (without an offset: Africa/Nairobi time) or a date, to naive UTC.
    Out: naive UTC shown in Nairobi time with its offset. (Documented by `When` for requests,
    `format: date-time` for answers.)"""

    default_error_messages = {"invalid": "Must be an ISO 8601 date or date-time."}

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else nairobi_iso(value)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not TIME_SHAPE.fullmatch(value):
            raise self.make_error("invalid")
        try:
            parsed = datetime.fromisoformat(value.upper())
        except ValueError:
            raise self.make_error("invalid") from None
        if parsed.tzinfo is None:  # shown in Nairobi time, so read in it too
            parsed = parsed.replace(tzinfo=NAIROBI)
        try:
            return parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # a moment in year 1 or 9999 that UTC puts outside them
            return datetime.min if parsed.year == 1 else datetime.max


def Choice(choices, **kwargs) -> Str:
    return Str(
        pattern=None, validate=validate.OneOf(choices, error="Must be one of: {choices}."), **kwargs
    )


def Id(**kwargs) -> Int:
    return Int(
        validate=validate.Range(1, MAX_ID, error="Must be between {min} and {max}."), **kwargs
    )


def IdFilter(**kwargs) -> Int:
    """An id to filter by: one too big to exist simply matches nothing."""
    return Int(validate=validate.Range(1, error="Must be at least {min}."), **kwargs)


def Event(**kwargs) -> Str:
    return Choice(EVENTS, **kwargs)


def When(description: str) -> Time:
    return Time(
        metadata={
            "anyOf": [{"format": "date-time"}, {"format": "date"}],
            "description": f"{description} A date-time without an offset is read "
            "in Africa/Nairobi time; a date means its midnight.",
        }
    )


# --- requests -------------------------------------------------------------------------------


class Body(Schema):
    """A JSON object body: known fields only. When a field is already wrong, the domain's own
    check (`check`, raising InvalidInput) runs on the rest, so one 422 names every bad field;
    a body that passes meets that check in the view, which is then the only time it runs."""

    class Meta:
        unknown = RAISE

    def check(self, data: dict) -> None:
        pass

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _domain_check(self, data, original_data, **kwargs):
        from ..errors import InvalidInput

        wrong = set(original_data) != set(data) or any(
            f.required and name not in original_data for name, f in self.fields.items()
        )
        if wrong:
            try:
                self.check(data)
            except InvalidInput as exc:
                raise ValidationError(exc.fields) from None


class NoBody(Body):
    """Nothing to send; an empty object is accepted."""


class SendMessage(Body):
    mobile = Str(
        required=True,
        pattern=MOBILE,
        metadata={
            "format": "ke-mobile",
            "examples": ["0712345678"],
            "description": "A Kenyan mobile number: 07XXXXXXXX, 01XXXXXXXX or (+)254 followed by "
            "7XXXXXXXX or 1XXXXXXXX, in a range a Kenyan mobile network holds (422 otherwise). "
            "Spaces, dashes and brackets are ignored.",
        },
        pattern_error="Enter a Kenyan mobile number such as 0712345678 or +254712345678.",
    )
    message = Str(
        required=True,
        pattern=TEXT,
        validate=validate.Length(max=918, error="At most {max} characters."),
        pattern_error="Enter the message text.",
        metadata={"examples": ["Your OTP is 847291."]},
    )
    sender_id = Str(
        pattern=SENDER_ID,
        pattern_error="Use 1 to 11 letters, digits or spaces.",
        metadata={
            "examples": ["TALKNTALK"],
            "description": "1 to 11 letters, digits or spaces (spaces around it are "
            "trimmed); default TALKNTALK.",
        },
    )
    simulate = Choice(
        SimulatedProvider.OUTCOMES,
        allow_none=True,
        metadata={"description": "Simulated carrier only: force the outcome."},
    )

    def check(self, data):
        from .. import messages

        messages.validate(
            data.get("mobile", ""),
            data.get("sender_id", "TALKNTALK"),
            data.get("message", ""),
            simulate=data.get("simulate"),
        )


def _url(**kwargs) -> Str:
    # The documented pattern is a hint; the scheme, the host and its addresses are the domain's
    # to check (tnt.netguard), which says why a URL is refused.
    return Str(
        validate=validate.Length(max=2048),
        metadata={
            "format": "uri",
            "pattern": "^https?://",
            "examples": ["https://example.com/webhooks"],
            "description": "An http(s) URL (https only in production). Its host must resolve to "
            "public addresses only: private, loopback, link-local and metadata addresses are "
            "refused (422).",
        },
        **kwargs,
    )


class EndpointUpdate(Body):
    """Only the fields sent change; `secret: null` (or "") removes the secret."""

    url = _url()
    events = fields.List(
        Event(),
        validate=validate.Length(min=1, error="Choose at least one event."),
        error_messages={"invalid": "Must be a list of strings."},
        metadata={
            "examples": [["sms.delivered", "sms.undelivered"]],
            "description": "Events to receive. Left out when creating: all of them.",
        },
    )
    description = Str(validate=validate.Length(max=255, error="At most {max} characters."))
    secret = Str(
        allow_none=True,
        pattern=f"^(?:{SECRET})?$",
        pattern_error=SECRET_ERROR[:-1] + ', or "" for none.',
        metadata={
            "description": "Signing secret: 8 to 255 visible ASCII characters "
            '(no spaces); null or "" for none.'
        },
    )
    enabled = Bool()

    def check(self, data):
        from flask import request

        from .. import endpoints
        from .core import scope

        e = endpoints.get(scope(), request.view_args["endpoint_id"])
        endpoints.validate(
            data.get("url", e.url),
            data.get("events", e.event_list),
            data.get("description", e.description),
            data.get("secret"),
        )


class EndpointInput(EndpointUpdate):
    url = _url(required=True)

    def check(self, data):
        from .. import endpoints

        endpoints.validate(
            data.get("url", ""), data.get("events"), data.get("description", ""), data.get("secret")
        )


class SecretInput(Body):
    secret = Str(required=True, pattern=f"^{SECRET}$", pattern_error=SECRET_ERROR)


class TestInput(Body):
    event = Event(metadata={"description": "Default sms.delivered."})


class BulkResendInput(Body):
    """The filters of the deliveries list; a bulk resend takes them as its body."""

    endpoint_id = IdFilter()
    event = Event()
    since = When("Created at or after.")
    until = When("Created before.")
    message_id = IdFilter()
    mobile = Str(
        validate=validate.Length(max=200, error="At most {max} characters."),
        metadata={"description": "A mobile number, in any form the API takes."},
    )


class DeliveryReport(Body):
    message_id = Id(required=True)
    status = Choice((MessageStatus.DELIVERED, MessageStatus.UNDELIVERED), required=True)


class Query(Schema):
    """Query-string parameters, validated like a body: each value is the JSON value it spells
    (digits for an integer)."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": "Unknown parameter."}

    @pre_load
    def _spelled(self, data, **kwargs):
        out = {}
        for name in data:
            value = data[name]
            if isinstance(self.fields.get(name), fields.Integer) and re.fullmatch(
                "[0-9]{1,4000}", value
            ):  # int() reads at most 4300 digits
                value = int(value)
            out[name] = value
        return out


class Paging(Query):
    cursor = Str(
        pattern=CURSOR,
        pattern_error="Must be a `next_cursor` of an earlier page.",
        metadata={"description": "`next_cursor` of the previous page."},
    )
    limit = Int(
        validate=validate.Range(1, 100, error="Must be between {min} and {max}."),
        metadata={"description": "Page size (default 50)."},
    )


class MessageQuery(Paging):
    status = Choice(MESSAGE_STATUSES)
    mobile = Str(validate=validate.Length(max=200, error="At most {max} characters."))
    source = Choice(SOURCES)
    since = When("Created at or after.")
    until = When("Created before.")


class DeliveryQuery(Paging, BulkResendInput):
    status = Choice(DELIVERY_STATUSES)


class AuditQuery(Paging):
    """Paging only: a key reads its own account's entries."""


# --- responses ------------------------------------------------------------------------------


def answer(cls):
    """A response schema: every field is always present (null where its type allows)."""
    for field in cls._declared_fields.values():
        field.required = True
    return cls


def _enum(choices, **kwargs) -> fields.String:
    return fields.String(validate=validate.OneOf(choices), **kwargs)


def _nullable(field_class, **kwargs):
    return field_class(allow_none=True, **kwargs)


@answer
class Message(Schema):
    """An SMS; the same object as a webhook payload's `data`."""

    id = fields.Integer()
    mobile = fields.String()
    sender_id = fields.String()
    message = fields.String()
    status = _enum(MESSAGE_STATUSES)
    network = fields.String()
    source = _enum(SOURCES)
    created_at = Time(metadata={"format": "date-time"})
    updated_at = Time(metadata={"format": "date-time"})


@answer
class MessagePage(Schema):
    data = fields.List(fields.Nested(Message))
    next_cursor = _nullable(fields.String)


@answer
class Endpoint(Schema):
    id = fields.Integer()
    url = fields.String()
    description = fields.String()
    events = fields.List(_enum(EVENTS), attribute="event_list")
    enabled = fields.Boolean()
    has_secret = fields.Function(lambda e: bool(e.secret), metadata={"type": "boolean"})
    created_at = Time(metadata={"format": "date-time"})


@answer
class EndpointWithSecret(Endpoint):
    """An endpoint as a secret change leaves it, with the secret it now signs with."""

    secret = _nullable(fields.String)


@answer
class EndpointSecret(Schema):
    secret = _nullable(
        fields.String,
        metadata={
            "description": "The signing secret, or null when requests are not signed. Every "
            "reveal of a secret is recorded in the audit trail (endpoint.secret_reveal)."
        },
    )


@answer
class EndpointList(Schema):
    data = fields.List(fields.Nested(Endpoint))


@answer
class Delivery(Schema):
    id = fields.Integer()
    uid = fields.String(metadata={"description": "The `X-TalkNTalk-Delivery` header."})
    endpoint_id = fields.Integer()
    event = _enum(EVENTS)
    event_id = fields.Integer()
    is_test = fields.Boolean()
    message_id = _nullable(fields.Integer)
    mobile = _nullable(fields.String)
    status = _enum(DELIVERY_STATUSES)
    attempts_count = fields.Integer()
    next_attempt_at = _nullable(Time, metadata={"format": "date-time"})
    last_error = _nullable(fields.String)
    created_at = Time(metadata={"format": "date-time"})
    updated_at = Time(metadata={"format": "date-time"})


@answer
class DeliveryPage(Schema):
    data = fields.List(fields.Nested(Delivery))
    next_cursor = _nullable(fields.String)


@answer
class WebhookPayload(Schema):
    """The body of a webhook POST (answered as it was sent, not re-serialised)."""

    event = _enum(EVENTS)
    timestamp = fields.String(metadata={"format": "date-time"})
    data = fields.Raw(metadata={"allOf": [{"$ref": "#/components/schemas/Message"}]})


@answer
class Attempt(Schema):
    id = fields.Integer()
    number = fields.Integer()
    trigger = _enum(tuple(Trigger))
    requested_by = fields.Function(
        lambda a: a.requested_by.email if a.requested_by else None,
        allow_none=True,
        metadata={"type": "string"},
    )
    started_at = Time(metadata={"format": "date-time"})
    duration_ms = fields.Integer()
    ok = fields.Boolean()
    status_code = _nullable(fields.Integer)
    response_headers = fields.Function(
        lambda a: _headers(a.response_headers),
        metadata={"type": "object", "additionalProperties": {"type": "string"}},
    )
    response_body = fields.String()
    error = _nullable(fields.String)


def _headers(stored: str | None) -> dict:
    import json

    try:
        headers = json.loads(stored or "{}")
    except ValueError:
        return {}
    return headers if isinstance(headers, dict) else {}


@answer
class DeliveryDetail(Delivery):
    payload = fields.Nested(WebhookPayload)
    attempts = fields.List(fields.Nested(Attempt))


@answer
class AuditEntry(Schema):
    """One change (or sign-in) in the account."""

    id = fields.Integer()
    at = Time(metadata={"format": "date-time"})
    action = _enum(tuple(Action))
    actor = fields.String(
        metadata={
            "description": "Who: a user's email, `API key <name> (<prefix>…)`, `cli`, or "
            "`not signed in` (a failed sign-in), as it was when the entry was made."
        }
    )
    actor_type = _enum(tuple(ActorType))
    address = _nullable(fields.String, metadata={"description": "The client's IP address."})
    target_type = _nullable(
        fields.String, metadata={"description": "endpoint, api_key, delivery, inspector or user."}
    )
    target_id = _nullable(fields.Integer)
    details = fields.Dict(
        keys=fields.String(),
        metadata={
            "description": "What changed (an edit: each field before and after). Never a "
            "secret's value."
        },
    )


@answer
class AuditPage(Schema):
    data = fields.List(fields.Nested(AuditEntry))
    next_cursor = _nullable(fields.String)


@answer
class BulkResendResult(Schema):
    queued = fields.Integer()


@answer
class EventType(Schema):
    type = _enum(EVENTS)
    description = fields.String()
    example = fields.Nested(WebhookPayload)


@answer
class EventTypeList(Schema):
    data = fields.List(fields.Nested(EventType))


@answer
class DeliveryReportResult(Schema):
    message_id = fields.Integer()
    status = fields.String()


@answer
class ErrorDetail(Schema):
    code = fields.String()
    message = fields.String()
    fields_ = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        data_key="fields",
        metadata={"description": "Each bad field or parameter: why."},
    )


@answer
class Error(Schema):
    error = fields.Nested(ErrorDetail)


# --- the request inspector (tnt.inspectors) -------------------------------------------------


class InspectorInput(Body):
    name = Str(
        validate=validate.Length(max=80, error="At most {max} characters."),
        metadata={"examples": ["my first webhook"]},
    )
    add_endpoint = Bool(
        metadata={
            "description": "Also add the capture URL as an endpoint: every event, a generated "
            "signing secret (default false)."
        }
    )


class MockInput(Body):
    """The inspector's answer; only the fields sent change. "Fail the first" counts afresh."""

    status_code = Int(validate=validate.Range(200, 599, error="Must be between {min} and {max}."))
    body = Str(
        validate=validate.Length(max=16 * 1024 // 4, error="At most {max} characters."),
        metadata={"description": "Sent as the answer's body (at most 16 KiB of UTF-8)."},
    )
    delay_ms = Int(
        validate=validate.Range(0, 15000, error="Must be between {min} and {max}."),
        metadata={
            "description": "Wait this long before answering; past 10000 a delivery times out."
        },
    )
    fail_first = Int(
        validate=validate.Range(0, 100, error="Must be between {min} and {max}."),
        metadata={"description": "Answer 500 to this many requests first, then as set."},
    )


class CapturedQuery(Query):
    after = Int(
        validate=validate.Range(0, error="Must be at least {min}."),
        metadata={"description": "Only requests with a larger id (the live view's poll)."},
    )


class ReplayQuery(Query):
    url = Str(
        required=True,
        pattern=r"^https?://[!-~]{1,2040}$",
        pattern_error="Use an http:// or https:// URL without spaces, such as your tunnel's.",
        metadata={
            "description": "Where the command sends the request (your local server, a tunnel). "
            "We never send it ourselves.",
            "examples": ["http://localhost:3000/webhooks"],
        },
    )


@answer
class Inspector(Schema):
    id = fields.Integer()
    name = fields.String()
    url = fields.String(metadata={"description": "The capture URL: POST anything to it."})
    endpoint_id = _nullable(
        fields.Integer, metadata={"description": "The endpoint made from it, if any."}
    )
    status_code = fields.Integer()
    body = fields.String()
    delay_ms = fields.Integer()
    fail_first = fields.Integer()
    failed = fields.Integer(metadata={"description": "Of fail_first, answered 500 so far."})
    created_at = Time(metadata={"format": "date-time"})
    expires_at = Time(metadata={"format": "date-time"})


@answer
class InspectorList(Schema):
    data = fields.List(fields.Nested(Inspector))


@answer
class Header(Schema):
    name = fields.String()
    value = fields.String()


@answer
class CapturedRequest(Schema):
    id = fields.Integer()
    inspector_id = fields.Integer()
    method = fields.String()
    query = fields.String()
    headers = fields.List(fields.Nested(Header), metadata={"description": "As received."})
    body = fields.String(metadata={"description": "The body as UTF-8 (bad bytes as U+FFFD)."})
    body_base64 = fields.String(metadata={"description": "The exact body bytes."})
    size = fields.Integer()
    remote_addr = fields.String()
    received_at = Time(metadata={"format": "date-time"})
    signature = _nullable(
        _enum,
        choices=("verified", "mismatch", "missing"),
        metadata={
            "description": "X-TalkNTalk-Signature against the endpoint's secret; null "
            "without an endpoint secret."
        },
    )
    event_key = _nullable(fields.String, metadata={"description": "The event and data.id."})
    repeat = _nullable(
        _enum,
        choices=("retry", "duplicate"),
        metadata={
            "description": "This event and data.id arrived before: `retry` with the same "
            "X-TalkNTalk-Delivery, `duplicate` in another delivery."
        },
    )
    answered_status = fields.Integer()


@answer
class CapturedRequestList(Schema):
    data = fields.List(fields.Nested(CapturedRequest))


@answer
class CurlCommand(Schema):
    command = fields.String()
