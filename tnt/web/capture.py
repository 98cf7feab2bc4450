"""The inspectors' public capture route, `POST /in/<token>`: anyone with the URL may POST.

No sign-in and no CSRF token (webhook senders have neither); rate-limited per inspector
(TNT_INSPECTOR_RATE_LIMIT, Flask-Limiter on Redis, registered with the API's limiter); at most
tnt.inspectors.MAX_BODY bytes stored, more refused with 413. The answer is never HTML: the mock
body goes out as text/plain (or JSON when it parses), under the app's CSP and nosniff, so a
customer's mock body cannot run script on this origin.
"""

import json
import logging
import time

from flask import Blueprint, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from .. import inspectors, queue
from ..clock import utcnow

bp = Blueprint("capture", __name__)
log = logging.getLogger(__name__)

MAX_DELAYED = 4  # delayed answers under way at once per inspector (each holds a web thread)


def rate_key() -> str:
    return "inspector:" + (request.view_args or {}).get("token", "?")[:64]


def rate_limit() -> str:
    return current_app.config["TNT_INSPECTOR_RATE_LIMIT"]


def _text(status: int, text: str, **headers: str):
    return text, status, {"Content-Type": "text/plain; charset=utf-8", **headers}


@bp.errorhandler(429)
def _too_many(exc):
    return _text(429, f"Too many requests to this inspector ({exc.description}); slow down.")


@bp.post("/in/<token>")
def capture(token: str):
    inspector = inspectors.by_token(token)
    if inspector is None:
        return _text(404, "No such inspector.")
    if inspector.expires_at <= utcnow():
        return _text(410, "This inspector expired; create a new one in the dashboard.")
    # One byte over the limit is read, so a chunked body (no Content-Length) that is too
    # long is told apart from one that is exactly the limit.
    request.max_content_length = inspectors.MAX_BODY + 1
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        body = None
    if body is None or len(body) > inspectors.MAX_BODY:
        return _text(413, f"The body is larger than {inspectors.MAX_BODY // 1024} KiB.")
    answer = inspectors.capture(
        inspector,
        request.method,
        request.query_string.decode("latin-1"),
        list(request.headers.items()),
        body,
        request.remote_addr or "",
    )
    if answer.delay > 0:
        _wait(inspector.id, answer.delay)
    return answer.body, answer.status, {"Content-Type": _content_type(answer.body)}


def _wait(inspector_id: int, seconds: float) -> None:
    """Hold the answer back, at most MAX_DELAYED at once per inspector (counted in Redis, so
    across processes); past that, or without Redis, answer at once rather than pile up
    threads."""
    key = f"tnt:inspector:{inspector_id}:delayed"
    try:
        r = queue.redis()
        under_way = r.incr(key)
        r.expire(key, int(inspectors.MAX_DELAY_MS / 1000) + 30)
    except Exception as exc:
        log.warning("inspector delay skipped: Redis unavailable (%s)", exc)
        return
    try:
        if under_way <= MAX_DELAYED:
            time.sleep(seconds)
        else:
            log.info(
                "inspector %s: %d delayed answers under way; answering now", inspector_id, under_way
            )
    finally:
        try:
            r.decr(key)
        except Exception as exc:
            log.warning("inspector delay count not released: %s", exc)


def _content_type(body: str) -> str:
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"
