"""The worker process: an RQ SimpleWorker with the scheduler, plus a sweeper thread.

SimpleWorker runs jobs in this process instead of forking one per job: the app, its database
pool and the delivery engine (its libcurl connections) are built once, which is what makes
batching pay off. `run_many` forks several such processes under one supervisor, so one worker
container can use every core.
"""

import contextlib
import logging
import os
import resource
import signal
import threading

import redis.exceptions
from flask import Flask
from rq import SimpleWorker
from sqlalchemy import event

from . import delivery, inspectors, queue
from .extensions import db

log = logging.getLogger(__name__)

SWEEP_EVERY = 5.0  # seconds
SETTLE_SECONDS = 0.5  # a burst worker waits this long for POSTs under way before it returns


def run(app: Flask, *, burst: bool = False, sweep: bool = True) -> bool:
    """Work until stopped (SIGTERM/SIGINT finish the running batch first)."""
    _raise_open_files_limit()
    with app.app_context():
        if sweep and not burst:
            threading.Thread(
                target=_sweep_forever, args=(app,), daemon=True, name="sweeper"
            ).start()
        wait = 1.0
        while True:
            worker = None
            try:
                worker = SimpleWorker([queue.queue()], connection=queue.redis())  # talks to Redis
                # An idle RQ worker retries a lost Redis with doubling waits up to 60 s, so it
                # could sleep half a minute after Redis is back; the sweeper retries every 5 s.
                worker.max_connection_wait_time = 5.0
                done = worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                if burst:
                    raise
                done = False
                log.warning("worker stopped by a Redis error: %s", exc)
                if worker is not None and worker.pubsub_thread:  # teardown could not unsubscribe
                    worker.pubsub_thread.stop()
            if burst:
                delivery.settle(SETTLE_SECONDS)  # slower POSTs record themselves later
                return done
            if worker is not None and worker._shutdown_requested_date is not None:
                delivery.shutdown(app.config["TNT_DELIVERY_TIMEOUT"] + 5)
                return done
            # RQ quits its loop when Redis goes away mid-job, and fails to start while Redis is
            # down. A PaaS restarting a crashing process backs off for minutes; deliveries would
            # wait that long after a short Redis outage. Start a fresh worker here instead.
            log.warning("RQ worker quit without being asked to; starting again in %.0f s", wait)
            if _stopped_within(wait):
                delivery.shutdown(app.config["TNT_DELIVERY_TIMEOUT"] + 5)
                return done
            wait = min(wait * 2, 10.0)


def _stopped_within(seconds: float) -> bool:
    """Wait, returning True early if SIGTERM or SIGINT arrives meanwhile."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        return stop.wait(seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _sweep_forever(app: Flask) -> None:
    stop = threading.Event()
    while not stop.wait(SWEEP_EVERY):
        with app.app_context():
            try:
                # One process per interval does the sweep; a lost lock only means a spare sweep.
                if queue.redis().set("tnt:sweep-lock", 1, nx=True, px=int(SWEEP_EVERY * 900)):
                    found = delivery.sweep()
                    if found:
                        log.info("sweeper re-enqueued %d", found)
                    inspectors.purge_expired()  # request inspectors past their 7 days
            except Exception as exc:
                log.warning("sweep failed: %s", exc)
            finally:
                db.session.remove()


def _raise_open_files_limit() -> None:
    """Up to TNT_SEND_CONCURRENCY sockets may be open at once: take the soft limit on open
    files (often 1024) up to the hard one, as servers do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def limit_database_sessions(app: Flask) -> None:
    """On PostgreSQL, end a worker's session that sits inside a transaction, or runs one
    statement, for long (a frozen or paused process), well within the delivery lease: its row
    locks are released so other workers can claim the rows, and its late commit fails cleanly
    instead of sending deliveries another worker may send too."""
    if db.engine.dialect.name != "postgresql":
        return  # SQLite (development) has no such limits
    s = delivery.settings()
    limits = {
        "idle_in_transaction_session_timeout": int(s.idle_in_transaction * 1000),
        "statement_timeout": int(s.statement_timeout * 1000),
    }

    @event.listens_for(db.engine, "connect")
    def _limit(dbapi_connection, _record):
        with dbapi_connection.cursor() as cur:
            for name, ms in limits.items():
                cur.execute(f"SET {name} = {ms}")
        dbapi_connection.commit()

    db.engine.dispose()  # connections made before this have no limits


def run_many(app: Flask, processes: int) -> int:
    """Fork `processes` workers and look after them: one that dies is started again, and
    SIGTERM/SIGINT is passed on to all and waited for (each finishes what it holds)."""
    children: dict[int, int] = {}  # pid -> slot
    stopping = threading.Event()

    def start(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child: nothing of the parent's is in use yet (no threads, no sockets)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            code = 0
            try:
                run(app)
            except BaseException:
                log.exception("worker process %d crashed", os.getpid())
                code = 1
            os._exit(code)
        children[pid] = slot

    def stop(sig, _frame):
        stopping.set()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    for slot in range(processes):
        start(slot)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        slot = children.pop(pid, None)
        if slot is not None and not stopping.is_set():
            log.warning(
                "worker process %d exited (%s); starting another",
                pid,
                os.waitstatus_to_exitcode(status),
            )
            if not stopping.wait(1):  # a process that dies at once must not spin
                start(slot)
    return 0
