"""The worker process: an RQ SimpleWorker with the scheduler, plus a sweeper thread.

SimpleWorker runs jobs in this process instead of forking one per job: the app, its database
pool and the HTTP keep-alive pools are built once, which is what makes batching pay off.
"""
import logging
import threading

from flask import Flask
from rq import SimpleWorker

from . import delivery, queue
from .extensions import db

log = logging.getLogger(__name__)

SWEEP_EVERY = 5.0  # seconds


def run(app: Flask, *, burst: bool = False, sweep: bool = True) -> bool:
    """Work until stopped (SIGTERM/SIGINT finish the running batch first)."""
    with app.app_context():
        if sweep and not burst:
            threading.Thread(target=_sweep_forever, args=(app,), daemon=True,
                             name="sweeper").start()
        worker = SimpleWorker([queue.queue()], connection=queue.redis())
        return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


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
            except Exception as exc:  # noqa: BLE001 - Redis or the database down: try again soon
                log.warning("sweep failed: %s", exc)
            finally:
                db.session.remove()
