"""What every API route shares: the blueprint, bearer-key auth, JSON errors, body and query
parsing, the per-key rate limit."""
import hashlib
import logging
from datetime import datetime, timezone

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import MAX_ID, apikeys
from ..clock import NAIROBI
from ..errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # 1 MiB
API_PREFIX = "/api/v1"


bp = Blueprint("api", __name__, url_prefix=API_PREFIX)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields, self.headers = fields or {}, headers or {}


def error_response(status: int, code: str, message: str, fields: dict | None = None,
                   headers: dict | None = None):
    resp = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "body_too_large",
              415: "unsupported_media_type", 422: "invalid_input", 429: "rate_limited"}


def handle_exception(exc: Exception):
    """Every error under the API becomes `{"error": {code, message, fields}}`."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.fields, exc.headers)
    if isinstance(exc, InvalidInput):
        return error_response(422, "invalid_input", "Some fields are not valid.", exc.fields)
    if isinstance(exc, NotFound):
        return error_response(404, "not_found", str(exc) or "Not found.")
    if isinstance(exc, Conflict):
        return error_response(409, "conflict", str(exc))
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        headers = {}
        if status == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        if status == 429:
            message = f"Rate limit exceeded ({exc.description}); retry later."
        elif status == 413:
            message = f"The body is larger than {MAX_BODY} bytes."
        else:
            message = exc.description or exc.name
        return error_response(status, HTTP_CODES.get(status, "http_error"), message,
                              headers=headers)
    log.exception("API error")
    from ..extensions import db

    db.session.rollback()  # whatever failed, leave nothing half-written for the next request
    return error_response(500, "internal_error", "Something went wrong on our side.")


bp.register_error_handler(Exception, handle_exception)


def routing_error_for_api():
    """404/405 under /api/v1 are raised before any blueprint is known: answer them as JSON here
    (registered as an app-wide before_request, so the dashboard's own handlers stay untouched)."""
    exc = request.routing_exception
    if exc is not None and (request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")
                            or request.path.startswith("/provider/")):
        return handle_exception(exc)
    return None


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def rate_key() -> str:
    """Rate limits count per presented key (hashed), or per address for requests without one."""
    raw = bearer()
    if raw:
        return "key:" + hashlib.sha256(raw.encode()).hexdigest()[:32]
    return "addr:" + (request.remote_addr or "?")


def rate_limit() -> str:
    return current_app.config["TNT_API_RATE_LIMIT"]


PUBLIC = {"api.openapi"}


@bp.before_request
def _authenticate():
    request.max_content_length = MAX_BODY
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "body_too_large", f"The body is larger than {MAX_BODY} bytes.")
    if request.endpoint in PUBLIC:
        return
    key = apikeys.authenticate(bearer())
    if key is None:
        raise ApiError(401, "unauthorized",
                       "Send a valid API key: `Authorization: Bearer <key>`.",
                       headers={"WWW-Authenticate": 'Bearer realm="api"'})
    g.api_key = key
    g.account_id = key.account_id


def account_id() -> int:
    return g.account_id


# --- request bodies --------------------------------------------------------------------------

def _type_ok(value, kind) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_ID
    if kind == "str?":
        return value is None or isinstance(value, str)
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, kind)


TYPE_NAMES = {bool: "a boolean", int: "an integer", str: "a string", "str?": "a string or null",
              "list[str]": "a list of strings"}


def json_body(fields: dict, required: tuple = (), *, allow_empty: bool = False,
              check=None) -> dict:
    """The request's JSON object, checked: known fields only, each of its type, required present.

    `fields` maps name -> bool | int | str | "str?" | "list[str]". `check(body)` is the domain's
    own validation (raising InvalidInput); it runs here only when some field is already wrong,
    so the 422 names every bad field at once. (A body that passes here meets the domain's
    check in the route itself, which is then the only time it runs.)
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        if allow_empty or not (fields and required):
            data = {}
        else:
            raise ApiError(400, "bad_request", "Send a JSON object as the request body.")
    else:
        data = request.get_json(force=True, silent=True)
        if data is None and raw.strip() != b"null":
            raise ApiError(400, "malformed_json", "The body is not valid JSON.")
        if not isinstance(data, dict):
            raise ApiError(400, "bad_request", "The body must be a JSON object.")
    errors = {}
    for name in data:
        if name not in fields:
            errors[name] = "Unknown field."
    for name, kind in fields.items():
        value = data.get(name)
        if kind is int and isinstance(value, float) and value.is_integer():
            data[name] = int(value)  # JSON has one number type: 5.0 is the integer 5
        if name in data and not _type_ok(data[name], kind):
            errors[name] = f"Must be {TYPE_NAMES[kind]}."
        elif "\x00" in str(data.get(name, "")):
            errors[name] = "Must not contain NUL characters."
    for name in required:
        if name not in data:
            errors[name] = "This field is required."
    if errors and check is not None:
        try:
            check({k: v for k, v in data.items() if k in fields and k not in errors})
        except InvalidInput as exc:
            errors = exc.fields | errors  # the type error is the more precise message
    if errors:
        raise ApiError(422, "invalid_input", "Some fields are not valid.", errors)
    return data


# --- query strings -----------------------------------------------------------------------------

def query_args(allowed: dict, values=None) -> dict:
    """Query parameters (or `values`), checked: known names only; `allowed` maps name ->
    "int" | "str" | "datetime" | tuple of choices."""
    values = request.args if values is None else values
    errors, out = {}, {}
    for name in values:
        if name not in allowed:
            errors[name] = "Unknown parameter."
    for name, kind in allowed.items():
        value = values.get(name)
        if value is None or value == "":
            continue
        if kind == "int":
            if not value.isdigit() or len(value) > 18:
                errors[name] = "Must be a positive integer."
            else:
                out[name] = int(value)
        elif kind == "datetime":
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                errors[name] = "Must be an ISO 8601 date or date-time."
            else:
                if parsed.tzinfo is None:  # shown in Nairobi time, so read in it too
                    parsed = parsed.replace(tzinfo=NAIROBI)
                out[name] = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        elif isinstance(kind, tuple):
            if value not in kind:
                errors[name] = "Must be one of: " + ", ".join(kind) + "."
            else:
                out[name] = value
        else:
            if len(value) > 200:
                errors[name] = "Too long."
            else:
                out[name] = value
    if errors:
        raise ApiError(422, "invalid_input", "Some query parameters are not valid.", errors)
    return out


def page_args(args: dict) -> tuple[int | None, int]:
    limit = args.pop("limit", 50)
    if not 1 <= limit <= 100:
        raise ApiError(422, "invalid_input", "Some query parameters are not valid.",
                       {"limit": "Must be between 1 and 100."})
    cursor = args.pop("cursor", None)
    return cursor, limit


def page(items: list, limit: int, as_json) -> dict:
    """A page of items; `next_cursor` is the last id when the page is full."""
    data = [as_json(i) for i in items]
    next_cursor = str(data[-1]["id"]) if len(items) == limit else None
    return {"data": data, "next_cursor": next_cursor}


def iso(dt) -> str | None:
    from ..clock import nairobi_iso

    return nairobi_iso(dt) if dt is not None else None
