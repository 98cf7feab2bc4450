"""Redis and RQ: transport only. The database is the truth; losing Redis loses nothing."""

import logging
import time
from datetime import timedelta

from flask import current_app
from redis import Redis
from rq import Queue

log = logging.getLogger(__name__)

KICK_KEY = "tnt:kick"
BELL_KEY = "tnt:bell"  # rung on every kick: wakes a drain job that is waiting for work
QUEUE_NAME = "tnt"


def redis() -> Redis:
    ext = current_app.extensions
    if "tnt_redis" not in ext:
        ext["tnt_redis"] = Redis.from_url(
            current_app.config["REDIS_URL"], socket_timeout=5, socket_connect_timeout=2
        )
    return ext["tnt_redis"]


# Results are not read; failures are kept a week for operators.
JOB_OPTIONS = {"result_ttl": 0, "failure_ttl": 7 * 86400}


def queue() -> Queue:
    return Queue(QUEUE_NAME, connection=redis(), default_timeout=300)


def kick() -> None:
    """Wake a worker for due deliveries; call after commit.

    Rings the bell (a drain job already running claims at once) and enqueues a drain job
    unless one is waiting in the queue: coalesced, one Redis round trip. If Redis is down the
    deliveries still wait in the database and the sweeper enqueues them when Redis is back.
    """
    try:
        pipe = redis().pipeline(transaction=False)
        pipe.rpush(BELL_KEY, 1).ltrim(BELL_KEY, -1, -1).expire(BELL_KEY, 60)
        pipe.set(KICK_KEY, 1, nx=True, ex=30)
        if pipe.execute()[-1]:
            from .jobs import deliver_due

            queue().enqueue(deliver_due, **JOB_OPTIONS)
    except Exception as exc:
        log.warning("could not enqueue deliveries (the sweeper will): %s", exc)


def wait_for_bell(timeout: float) -> bool:
    """Wait up to `timeout` s for a kick; True if one came. Without Redis, just wait."""
    try:
        return redis().blpop([BELL_KEY], timeout=timeout) is not None
    except Exception:
        time.sleep(timeout)
        return False


def enqueue_in(seconds: float, func, *args) -> None:
    """Schedule a job (a function of tnt.jobs); failures are logged, the sweeper covers them."""
    try:
        queue().enqueue_in(timedelta(seconds=seconds), func, *args, **JOB_OPTIONS)
    except Exception as exc:
        log.warning("could not schedule %s (the sweeper will): %s", func.__name__, exc)


def enqueue(func, *args) -> None:
    """Enqueue a job (a function of tnt.jobs); failures are logged, the sweeper covers them."""
    try:
        queue().enqueue(func, *args, **JOB_OPTIONS)
    except Exception as exc:
        log.warning("could not enqueue %s (the sweeper will): %s", func.__name__, exc)
