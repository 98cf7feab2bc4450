"""The delivery engine: claim due deliveries, POST them concurrently, record every attempt.

A batch is claimed with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), sent on a thread pool
with a cap per endpoint, and its attempts and new states are written in one transaction. Failed
automatic attempts are retried 1, 5 and 30 minutes later (RQ `enqueue_in`); the fourth failure
marks the delivery failed. The sweeper re-enqueues anything due that Redis lost.
"""
import json
import logging
import os
import threading
import time
import uuid
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, func, insert, or_, select, update

from . import __version__, queue
from .clock import utcnow
from .errors import Conflict, NotFound
from .extensions import db
from .models import Attempt, Delivery, Endpoint, Event, Message
from .signing import signature
from .transport import Response, Transport

log = logging.getLogger(__name__)

RETRY_DELAYS = (60, 300, 1800)  # after automatic failures 1, 2 and 3
# Well past the 10 s deadline; a killed worker's claim expires. TNT_LEASE_SECONDS shortens it
# for fault tests and bench/chaos.py only: a lease shorter than a batch's sending time would
# let a second worker send a delivery that is still in flight.
LEASE = timedelta(seconds=float(os.environ.get("TNT_LEASE_SECONDS", "120")))
PER_ENDPOINT = 8  # concurrent requests to one endpoint from one worker process
BATCH_WAIT = 0.5  # seconds a batch waits for its slowest POST before recording the rest
DRAIN_SECONDS = 5  # a job drains due work this long, then hands over to a fresh job
SWEEP_GRACE = timedelta(seconds=5)  # due this long and unclaimed: its job was lost
USER_AGENT = f"TalkNTalk-Webhooks/{__version__}"


@dataclass
class Outgoing:
    delivery_id: int
    account_id: int
    endpoint_id: int
    url: str
    secret: str | None
    active: bool
    uid: str
    event_type: str
    body: bytes
    message_id: int | None
    mobile: str | None
    status: str
    auto_attempts: int
    attempts_count: int
    next_attempt_at: object


def deliver_due(ids: list[int] | None = None) -> int:
    """Send due deliveries (these ids first), draining for a few seconds; return how many."""
    started, sent = time.monotonic(), 0
    batch = current_app.config["TNT_BATCH_SIZE"]
    while True:
        token, items = claim(limit=batch, ids=ids, skip_endpoints=_inflight.saturated())
        if ids and not items:
            ids = None
            continue
        ids = None
        if not items:
            return sent
        send_batch(token, items, wait=BATCH_WAIT)
        sent += len(items)
        if time.monotonic() - started > DRAIN_SECONDS:
            queue.kick()  # more may be due: let a fresh job (maybe on another worker) go on
            return sent


def claim(limit: int, ids: list[int] | None = None, *, due_only: bool = True,
          skip_endpoints: list[int] = ()) -> tuple[str, list["Outgoing"]]:
    """Lease up to `limit` due, unclaimed deliveries and load what sending them needs.

    One transaction: `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite serialises writers), so
    workers claiming at once never share a delivery. Returns (lease token, items).
    """
    now = utcnow()
    token = str(uuid.uuid4())
    d = Delivery.__table__
    pick = select(d.c.id).where(or_(d.c.lease_expires_at.is_(None), d.c.lease_expires_at < now))
    if due_only:
        pick = pick.where(d.c.next_attempt_at <= now).order_by(d.c.next_attempt_at)
    if ids:
        pick = pick.where(d.c.id.in_(ids))
    if skip_endpoints:
        pick = pick.where(d.c.endpoint_id.not_in(skip_endpoints))
    pick = pick.limit(limit).with_for_update(skip_locked=True)
    conn = db.session.connection()
    claimed = conn.execute(
        update(d).where(d.c.id.in_(pick.scalar_subquery()))
        .values(lease_expires_at=now + LEASE, lease_token=token).returning(d.c.id)
    ).scalars().all()
    items = _load(conn, claimed) if claimed else []
    db.session.commit()
    return token, items


def send_batch(token: str, items: list["Outgoing"], *, trigger: str = "auto",
               requested_by: int | None = None, wait: float | None = None) -> None:
    """POST each claimed delivery and record the results in one transaction.

    With `wait`, results that take longer than `wait` seconds (a slow endpoint) are recorded by
    their own thread when they come, so one slow endpoint never holds up the next batch.
    """
    live = [o for o in items if o.active]
    results = _send_all(token, live, trigger, requested_by, wait)
    finished = [o for o in items if not o.active or o.delivery_id in results]
    _record(token, finished, results, trigger, requested_by)


def resend(delivery_id: int, *, account_id: int | None, requested_by: int | None) -> Attempt:
    """One immediate manual attempt, logged with who asked. account_id None: support (any)."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or (account_id is not None and delivery.account_id != account_id):
        raise NotFound("No such delivery.")
    if not delivery.endpoint.active:
        raise Conflict("Its endpoint is disabled or deleted; enable it to resend.")
    token, items = claim(limit=1, ids=[delivery_id], due_only=False)
    if not items:
        raise Conflict("This delivery is being sent right now; try again in a moment.")
    send_batch(token, items, trigger="manual", requested_by=requested_by)
    return db.session.scalar(
        select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.id.desc()).limit(1)
    )


def sweep() -> int:
    """Enqueue work that Redis lost: due deliveries left unclaimed, queued messages never
    submitted. Safe to run anywhere, any time, by several processes at once."""
    now = utcnow()
    stale = db.session.scalar(
        select(func.count()).select_from(Delivery).where(
            Delivery.next_attempt_at <= now - SWEEP_GRACE,
            or_(Delivery.lease_expires_at.is_(None), Delivery.lease_expires_at < now),
        )
    )
    unsent = db.session.scalars(
        select(Message.id).where(
            Message.status == "queued",
            Message.created_at <= now - SWEEP_GRACE,
            or_(Message.simulate.is_(None), Message.simulate != "hold"),
        ).limit(1000)
    ).all()
    db.session.rollback()
    if stale:
        queue.redis().delete(queue.KICK_KEY)  # a kick flag may outlive a lost job
        queue.kick()
    for message_id in unsent:
        queue.enqueue("tnt.jobs.submit_message", message_id)
    return stale + len(unsent)


def end_pending(endpoint_id: int, reason: str) -> None:
    """Stop the automatic attempts of an endpoint that was disabled or deleted (no commit)."""
    db.session.execute(
        update(Delivery)
        .where(Delivery.endpoint_id == endpoint_id, Delivery.status.in_(("pending", "retrying")))
        .values(status="failed", next_attempt_at=None, last_error=reason, updated_at=utcnow())
    )


def _load(conn, ids: list[int]) -> list[Outgoing]:
    d, e, ev, m = (t.__table__ for t in (Delivery, Endpoint, Event, Message))
    rows = conn.execute(
        select(d.c.id, d.c.account_id, d.c.endpoint_id, e.c.url, e.c.secret, e.c.enabled,
               e.c.deleted_at, d.c.uid, ev.c.type, ev.c.body, ev.c.message_id, m.c.mobile,
               d.c.status, d.c.auto_attempts, d.c.attempts_count, d.c.next_attempt_at)
        .join(e, e.c.id == d.c.endpoint_id)
        .join(ev, ev.c.id == d.c.event_id)
        .outerjoin(m, m.c.id == ev.c.message_id)
        .where(d.c.id.in_(ids))
    ).all()
    return [Outgoing(r.id, r.account_id, r.endpoint_id, r.url, r.secret,
                     r.enabled and r.deleted_at is None, r.uid, r.type, r.body, r.message_id,
                     r.mobile, r.status, r.auto_attempts, r.attempts_count, r.next_attempt_at)
            for r in rows]


def request_headers(o) -> dict[str, str]:
    """The headers of a delivery's POST (`o` has event_type, uid, body and secret)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-TalkNTalk-Event": o.event_type,
        "X-TalkNTalk-Delivery": o.uid,
    }
    if o.secret:
        headers["X-TalkNTalk-Signature"] = signature(o.body, o.secret)
    return headers


class _InFlight:
    """Requests under way from this process, per endpoint: the cap that keeps one slow or
    black-holed endpoint from taking every sending thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._count = defaultdict(int)

    def free(self, endpoint_id: int) -> int:
        with self._lock:
            return PER_ENDPOINT - self._count[endpoint_id]

    def add(self, endpoint_id: int, n: int) -> None:
        with self._lock:
            self._count[endpoint_id] += n

    def saturated(self) -> list[int]:
        with self._lock:
            return [e for e, n in self._count.items() if n >= PER_ENDPOINT]


_inflight = _InFlight()


def _send_all(token, items: list[Outgoing], trigger, requested_by,
              wait: float | None) -> dict[int, tuple]:
    """POST concurrently, at most PER_ENDPOINT at a time to one endpoint.

    Returns {delivery_id: (started_at, Response)} for those done within `wait` seconds (all,
    if `wait` is None); the rest record themselves when they finish.
    """
    transport, pool = _transport(), _pool()
    app = current_app._get_current_object()
    lanes = defaultdict(deque)
    for o in items:
        lanes[o.endpoint_id].append(o)
    results, lock, state = {}, threading.Lock(), {"handed_over": False}

    # A lane starts no POST after half the lease: one that starts later could still be under
    # way when the lease expires and another worker sends the same delivery. What is left is
    # sent by whoever claims it after the lease (a slow endpoint with a long queue).
    last_start = time.monotonic() + LEASE.total_seconds() / 2

    def run_lane(lane: deque, endpoint_id: int):
        try:
            while lane and time.monotonic() < last_start:
                o = lane.popleft()
                started = utcnow()
                response = transport.post(o.url, o.body, request_headers(o))
                with lock:
                    if not state["handed_over"]:
                        results[o.delivery_id] = (started, response)
                        continue
                with app.app_context():  # the batch was recorded without this one
                    try:
                        _record(token, [o], {o.delivery_id: (started, response)}, trigger,
                                requested_by)
                    finally:
                        db.session.remove()
        finally:
            _inflight.add(endpoint_id, -1)

    futures = []
    for endpoint_id, lane in lanes.items():
        n = max(1, min(_inflight.free(endpoint_id), len(lane)))
        _inflight.add(endpoint_id, n)
        futures += [pool.submit(run_lane, lane, endpoint_id) for _ in range(n)]
    futures_wait(futures, timeout=wait)
    with lock:
        state["handed_over"] = True
        return dict(results)


def _record(token, items, results, trigger, requested_by) -> None:
    """Write attempts and the deliveries' new states in one transaction; schedule retries."""
    now = utcnow()
    attempts, changes, delivered, retry_at = [], [], [], defaultdict(list)
    for o in items:
        change = {"b_id": o.delivery_id, "updated_at": now, "lease_expires_at": None,
                  "lease_token": None, "auto_attempts": o.auto_attempts,
                  "attempts_count": o.attempts_count, "status": o.status,
                  "next_attempt_at": o.next_attempt_at, "last_error": None}
        changes.append(change)
        if o.delivery_id not in results:  # endpoint disabled or deleted since it was queued
            change.update(status="failed", next_attempt_at=None,
                          last_error="Endpoint disabled or deleted before this attempt.")
            continue
        started, resp = results[o.delivery_id]
        ok = resp.ok  # a 2xx whose body then timed out or broke off is a failure
        error = None if ok else _reason(resp)
        change["attempts_count"] += 1
        attempts.append({
            "delivery_id": o.delivery_id, "account_id": o.account_id,
            "endpoint_id": o.endpoint_id, "event_type": o.event_type,
            "message_id": o.message_id, "mobile": o.mobile,
            "number": change["attempts_count"], "trigger": trigger,
            "requested_by_id": requested_by, "started_at": started,
            "duration_ms": resp.duration_ms, "ok": ok, "status_code": resp.status,
            "response_headers": json.dumps(resp.headers), "response_body": resp.body,
            "error": error,
        })
        change["last_error"] = error
        if ok:
            changes.pop()  # the common case: one statement for the whole batch, below
            delivered.append(o.delivery_id)
        elif trigger == "auto":
            change["auto_attempts"] += 1
            n = change["auto_attempts"]
            if n <= len(RETRY_DELAYS):
                delay = RETRY_DELAYS[n - 1]
                change.update(status="retrying", next_attempt_at=now + timedelta(seconds=delay))
                retry_at[delay].append(o.delivery_id)
            else:
                change.update(status="failed", next_attempt_at=None)
    table = Delivery.__table__
    conn = db.session.connection()
    if attempts:
        conn.execute(insert(Attempt.__table__), attempts)
    if delivered:
        conn.execute(
            update(table).where(table.c.id.in_(delivered), table.c.lease_token == token)
            .values(status="delivered", next_attempt_at=None, last_error=None, updated_at=now,
                    lease_expires_at=None, lease_token=None,
                    attempts_count=table.c.attempts_count + 1)
        )
    if changes:
        conn.execute(
            update(table)
            .where(and_(table.c.id == bindparam("b_id"), table.c.lease_token == token))
            .values({k: bindparam(k) for k in changes[0] if k != "b_id"}),
            changes,
        )
    db.session.commit()
    for delay, ids in retry_at.items():
        queue.enqueue_in(delay, "tnt.jobs.deliver_due", ids)


def _reason(resp: Response) -> str:
    if resp.error:
        return resp.error
    if 300 <= resp.status < 400:
        where = resp.headers.get("Location") or resp.headers.get("location")
        return f"HTTP {resp.status}: redirects are not followed" + (f" (to {where})" if where else "")
    return f"HTTP {resp.status}: not a 2xx response"


def _transport() -> Transport:
    """One transport (keep-alive pools) per process, shared by the sending threads."""
    ext = current_app.extensions
    if "tnt_transport" not in ext:
        ext["tnt_transport"] = Transport(
            allow_loopback=current_app.config["TNT_ALLOW_LOOPBACK"],
            timeout=current_app.config["TNT_DELIVERY_TIMEOUT"],
            user_agent=USER_AGENT,
        )
    return ext["tnt_transport"]


def _pool() -> ThreadPoolExecutor:
    ext = current_app.extensions
    if "tnt_send_pool" not in ext:
        ext["tnt_send_pool"] = ThreadPoolExecutor(
            current_app.config["TNT_SEND_CONCURRENCY"], thread_name_prefix="send"
        )
    return ext["tnt_send_pool"]
