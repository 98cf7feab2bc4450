"""RQ job functions. They take ids, never payloads, and run inside the worker's app context
(see tnt.worker); each ends by returning its database connection to the pool.

A job that fails because the database went away (a restart, a failover, a statement cut off by
the worker's session limits) ends quietly with a warning instead of piling up in RQ's failed-job
registry: its work is still in the database, and the sweeper enqueues it again.
"""

import functools
import logging

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from . import delivery, mail, messages
from .extensions import db

log = logging.getLogger(__name__)


def database_went_away(exc: BaseException) -> bool:
    """A lost connection, a restart, or our own session limits (tnt.worker) ending a session
    that was frozen inside a transaction (SQLSTATE 25P03)."""
    return isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DBAPIError)
        and (exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) == "25P03")
    )


def _job(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DBAPIError as exc:
            if not database_went_away(exc):
                raise
            log.warning(
                "%s stopped: the database is unavailable (%s); the sweeper will "
                "enqueue its work again",
                func.__name__,
                str(exc).splitlines()[0],
            )
            return None
        finally:
            db.session.remove()

    return wrapper


@_job
def deliver_due(ids: list[int] | None = None) -> int:
    from . import queue

    queue.redis().delete(queue.KICK_KEY)  # later events enqueue a fresh kick
    return delivery.deliver_due(ids)


@_job
def submit_message(message_id: int) -> None:
    messages.submit_message(message_id)


@_job
def report_delivery(message_id: int, status: str) -> None:
    """The simulated carrier's delivery report."""
    messages.record_delivery_report(message_id, status)


@_job
def notify_url_change(audit_entry_id: int) -> None:
    """Email an account's users that support changed an endpoint's URL (tnt.mail)."""
    mail.notify_url_change(audit_entry_id)
