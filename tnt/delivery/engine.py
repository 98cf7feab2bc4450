"""The dispatcher: one per worker process. It claims due deliveries and hands them to the lanes
without waiting for their POSTs; the transport answers on its own thread, and the recorder
writes the answers by group commit.

A drain job (an RQ job) runs `drain` for up to `drain_seconds`, claiming whenever there is room,
and waits on the Redis bell for new events while there is nothing due; after `drain_idle`
seconds of nothing it ends. So a steady stream of events costs no RQ job per event.
"""

import logging
import time

from flask import Flask

from .. import queue
from ..extensions import db
from ..transport import Transport
from . import claiming
from .outgoing import USER_AGENT
from .recording import Recorder
from .sending import Lanes
from .settings import EngineSettings

log = logging.getLogger(__name__)

POLL = 0.05  # seconds a drain job waits for an event's bell before it looks again


class Engine:
    def __init__(self, app: Flask):
        self.settings = settings = EngineSettings.from_config(app.config)
        self.transport = new_transport(app)
        self.recorder = Recorder(app, settings, recorded=lambda n: self.lanes.recorded(n))
        self.lanes = Lanes(self.transport, settings, self.recorder)

    def drain(self, ids: list[int] | None = None) -> int:
        """Claim due deliveries (these ids first) and hand them to the lanes; return how many."""
        s, lanes = self.settings, self.lanes
        idle_polls = max(1, round(s.drain_idle / POLL))
        started, sent, polls, last_claim, full = time.monotonic(), 0, 0, 0.0, False
        with db.engine.connect() as conn:  # one connection for the job: no checkout per claim
            while time.monotonic() - started < s.drain_seconds:
                if not lanes.wait_for_room(POLL):
                    continue
                if not full:
                    time.sleep(max(0.0, last_claim + s.claim_every - time.monotonic()))
                freed, last_claim = lanes.freed, time.monotonic()
                slow = lanes.newly_slow()
                limit = lanes.claim_limit()
                with conn.begin():
                    if slow:
                        claiming.put_off(conn, slow, s.timeout)
                    items = claiming.claim(conn, s, limit, ids, skip_endpoints=lanes.saturated())
                    items, excess = lanes.fit(items)
                    claiming.release(conn, excess)
                if items:
                    claiming.pause_here(s, "after-claim")
                items, expired = claiming.ready(items, s)
                if expired:  # this process was paused while claiming: not ours to send now
                    log.warning(
                        "%d claims came back with too little lease left; giving them back",
                        len(expired),
                    )
                    lanes.give_back(expired)
                if ids and not items:
                    ids = None
                    continue
                ids = None
                full = len(items) + len(excess) + len(expired) == limit  # more may be due now
                if items:
                    lanes.submit(items)
                    sent, polls = sent + len(items), 0
                    if full:
                        queue.kick()  # a backlog: an idle worker may join in
                    continue
                # Nothing claimable. Claim again when a busy endpoint gets room or an event rings.
                if lanes.freed != freed or queue.wait_for_bell(POLL):
                    polls = 0
                    continue
                polls += 1
                if polls >= idle_polls:
                    return sent
        queue.kick()  # time is up and more may be due: a fresh job (maybe elsewhere) goes on
        return sent


def new_transport(app: Flask) -> Transport:
    """The process's libcurl transport. Isolation is per endpoint (the lanes), not per host:
    many customers' endpoints may share one host, so a host may use every connection."""
    most = int(app.config["TNT_SEND_CONCURRENCY"])
    return Transport(
        allow_loopback=app.config["TNT_ALLOW_LOOPBACK"],
        https_only=app.config["TNT_HTTPS_ONLY"],
        own_capture_base=app.config.get("TNT_PUBLIC_URL"),
        timeout=app.config["TNT_DELIVERY_TIMEOUT"],
        user_agent=USER_AGENT,
        max_connections=most,
        max_per_host=most,
        max_idle=min(most, 256),
    )
