"""What every /api/v1 route shares: the blueprint, bearer-key auth, path ids scoped to the key's
account, the per-key rate limit, paging."""

import hashlib

import flask_smorest
from flask import current_app, g, request

from .. import MAX_ID, apikeys, deliveries, endpoints, inspectors, messages
from ..scope import Scope
from .errors import MAX_BODY, ApiError, handle_exception
from .parsing import Parser

API_PREFIX = "/api/v1"


class Blueprint(flask_smorest.Blueprint):
    """A blueprint whose requests are read by our parser and whose errors are JSON."""

    ARGUMENTS_PARSER = Parser()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_error_handler(Exception, handle_exception)


bp = Blueprint("api", __name__, url_prefix=API_PREFIX)


def routing_error_for_api():
    """404/405 under /api/v1 are raised before any blueprint is known: answer them as JSON here
    (registered as an app-wide before_request, so the dashboard's own handlers stay untouched)."""
    exc = request.routing_exception
    if exc is not None and (
        request.path == API_PREFIX
        or request.path.startswith(API_PREFIX + "/")
        or request.path.startswith("/provider/")
    ):
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
        raise ApiError(
            401,
            "unauthorized",
            "Send a valid API key: `Authorization: Bearer <key>`.",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    g.api_key = key
    g.account_id = key.account_id


# Each kind of id a path can carry, looked up in the key's account (NotFound otherwise).
OWNED = {
    "endpoint_id": endpoints.get,
    "message_id": messages.get,
    "delivery_id": deliveries.get,
    "inspector_id": inspectors.get,
    "request_id": inspectors.get_request,  # a captured request, through its inspector
}


@bp.before_request
def _path_ids_are_the_accounts():
    """Another account's id is a 404 before the body is read: no answer about a body can tell
    whether someone else's id exists."""
    for name, value in (request.view_args or {}).items():
        OWNED[name](scope(), value)


def account_id() -> int:
    """The key's account: where the API creates rows."""
    return g.account_id


def scope() -> Scope:
    """The key's account, as the scope of every read: the API never reads another account."""
    return Scope.account(g.account_id)


def before_id(cursor: str | None) -> int | None:
    """The id a `cursor` pages below; one past the database's ids: as if none were bigger
    (PostgreSQL refuses to compare its 32-bit ids with it)."""
    return None if cursor is None else min(int(cursor), MAX_ID)


def page(items: list, limit: int, cursor_of=lambda item: item.id) -> dict:
    """A page of items; `next_cursor` is the last one's id when the page is full."""
    full = len(items) == limit
    return {"data": items, "next_cursor": str(cursor_of(items[-1])) if full else None}
