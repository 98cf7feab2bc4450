"""The API's JSON errors: every error under /api/v1 and /provider is
`{"error": {"code", "message", "fields"}}`."""

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

from ..errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # 1 MiB


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields, self.headers = fields or {}, headers or {}


def error_response(
    status: int, code: str, message: str, fields: dict | None = None, headers: dict | None = None
):
    resp = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}


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
        return error_response(
            status, HTTP_CODES.get(status, "http_error"), message, headers=headers
        )
    log.exception("API error")
    from ..extensions import db

    db.session.rollback()  # whatever failed, leave nothing half-written for the next request
    return error_response(500, "internal_error", "Something went wrong on our side.")
