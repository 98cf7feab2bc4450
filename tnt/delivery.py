"""The delivery engine: claim due deliveries, POST them concurrently, record every attempt.

A batch is claimed with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), sent on a thread pool
with a cap per endpoint, and its attempts and new states are written in one transaction. Failed
automatic attempts are retried 1, 5 and 30 minutes later (RQ `enqueue_in`); the fourth failure
marks the delivery failed. The sweeper re-enqueues anything due that Redis lost.
"""
import json
import logging
import time
import uuid
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
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
LEASE = timedelta(minutes=2)  # well past the 10 s deadline; a killed worker's claim expires
PER_ENDPOINT = 8  # concurrent requests to one endpoint from one batch
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
        token, claimed = claim(limit=batch, ids=ids)
        if ids and not claimed:
            ids = None
            continue
        ids = None
        if not claimed:
            return sent
        send_batch(token, claimed)
        sent += len(claimed)
        if time.monotonic() - started > DRAIN_SECONDS:
            queue.kick()  # more may be due: let a fresh job (maybe on another worker) go on
            return sent


def claim(limit: int, ids: list[int] | None = None, *, due_only: bool = True):
    """Lease up to `limit` due, unclaimed deliveries; return (token, ids)."""
    now = utcnow()
    token = str(uuid.uuid4())
    free = or_(Delivery.lease_expires_at.is_(None), Delivery.lease_expires_at < now)
    pick = select(Delivery.id).where(free)
    if due_only:
        pick = pick.where(Delivery.next_attempt_at <= now).order_by(Delivery.next_attempt_at)
    if ids:
        pick = pick.where(Delivery.id.in_(ids))
    pick = pick.limit(limit).with_for_update(skip_locked=True)
    claimed = db.session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(pick.scalar_subquery()))
        .values(lease_expires_at=now + LEASE, lease_token=token)
        .returning(Delivery.id),
        execution_options={"synchronize_session": False},
    ).all()
    db.session.commit()
    return token, claimed


def send_batch(token: str, ids: list[int], *, trigger: str = "auto", requested_by: int | None = None):
    """POST each claimed delivery and record the results in one transaction."""
    items = _load(ids)
    live = [o for o in items if o.active]
    results = _send_all(live)
    _record(token, items, results, trigger, requested_by)
    return results


def resend(delivery_id: int, *, account_id: int | None, requested_by: int | None) -> Attempt:
    """One immediate manual attempt, logged with who asked. account_id None: support (any)."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or (account_id is not None and delivery.account_id != account_id):
        raise NotFound("No such delivery.")
    if not delivery.endpoint.active:
        raise Conflict("Its endpoint is disabled or deleted; enable it to resend.")
    token, claimed = claim(limit=1, ids=[delivery_id], due_only=False)
    if not claimed:
        raise Conflict("This delivery is being sent right now; try again in a moment.")
    send_batch(token, claimed, trigger="manual", requested_by=requested_by)
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


def _load(ids: list[int]) -> list[Outgoing]:
    rows = db.session.execute(
        select(Delivery, Endpoint, Event.type, Event.body, Event.message_id, Message.mobile)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .join(Event, Event.id == Delivery.event_id)
        .outerjoin(Message, Message.id == Event.message_id)
        .where(Delivery.id.in_(ids))
    ).all()
    out = [
        Outgoing(d.id, d.account_id, e.id, e.url, e.secret, e.active, d.uid, etype, body, mid,
                 mobile, d.status, d.auto_attempts, d.attempts_count, d.next_attempt_at)
        for d, e, etype, body, mid, mobile in rows
    ]
    db.session.rollback()  # end the read transaction: no connection is held while sending
    return out


def _headers(o: Outgoing) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-TalkNTalk-Event": o.event_type,
        "X-TalkNTalk-Delivery": o.uid,
    }
    if o.secret:
        headers["X-TalkNTalk-Signature"] = signature(o.body, o.secret)
    return headers


def _send_all(items: list[Outgoing]) -> dict[int, tuple]:
    """POST concurrently, at most PER_ENDPOINT at a time to one endpoint.

    Returns {delivery_id: (started_at, Response)}.
    """
    transport, pool = _transport(), _pool()
    lanes = defaultdict(deque)
    for o in items:
        lanes[o.endpoint_id].append(o)
    results = {}

    def run_lane(lane: deque):
        while True:
            try:
                o = lane.popleft()
            except IndexError:
                return
            started = utcnow()
            results[o.delivery_id] = (started, transport.post(o.url, o.body, _headers(o)))

    futures = [
        pool.submit(run_lane, lane)
        for lane in lanes.values()
        for _ in range(min(PER_ENDPOINT, len(lane)))
    ]
    for f in futures:
        f.result()
    return results


def _record(token, items, results, trigger, requested_by) -> None:
    """Write attempts and the deliveries' new states in one transaction; schedule retries."""
    now = utcnow()
    attempts, changes, retry_at = [], [], defaultdict(list)
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
            change.update(status="delivered", next_attempt_at=None)
        elif trigger == "auto":
            change["auto_attempts"] += 1
            n = change["auto_attempts"]
            if n <= len(RETRY_DELAYS):
                delay = RETRY_DELAYS[n - 1]
                change.update(status="retrying", next_attempt_at=now + timedelta(seconds=delay))
                retry_at[delay].append(o.delivery_id)
            else:
                change.update(status="failed", next_attempt_at=None)
    if attempts:
        db.session.execute(insert(Attempt), attempts)
    if changes:
        table = Delivery.__table__
        db.session.connection().execute(
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
