"""RQ job functions. They take ids, never payloads, and run inside the worker's app context
(see tnt.worker); each ends by returning its database connection to the pool."""
import functools

from . import delivery, messages
from .extensions import db


def _session_scoped(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            db.session.remove()

    return wrapper


@_session_scoped
def deliver_due(ids: list[int] | None = None) -> int:
    from . import queue

    queue.redis().delete(queue.KICK_KEY)  # later events enqueue a fresh kick
    return delivery.deliver_due(ids)


@_session_scoped
def submit_message(message_id: int) -> None:
    messages.submit_message(message_id)
