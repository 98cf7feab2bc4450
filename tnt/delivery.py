"""The delivery engine: claim due deliveries, POST them concurrently, record every attempt.

A drain job claims due deliveries with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and
hands them to this process's senders: one lane per endpoint, worked by at most PER_ENDPOINT
threads, so a slow endpoint never holds up the others. The job claims again at once, without
waiting for the POSTs; results are written by group commit (whichever sending thread finds no
write under way writes every result that has come in, attempts and new states in one
transaction). Failed automatic attempts are retried 1, 5 and 30 minutes later (RQ
`enqueue_in`); the fourth failure marks the delivery failed. The sweeper re-enqueues anything
due that Redis lost.
"""
import json
import logging
import os
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import Text, and_, bindparam, func, insert, or_, select, tuple_, type_coerce, update

from . import __version__, crypto, queue
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
# Claimed and unanswered, per endpoint per process: PER_ENDPOINT under way, the rest waiting.
# More is released at once, so a slow endpoint's backlog stays in the database for later. An
# endpoint that reached it is claimed for again once half of it is answered (not one by one).
HOLD_PER_ENDPOINT = 4 * PER_ENDPOINT
# An endpoint with every lane busy and no answer for SLOW_AFTER seconds is slow (black-holed,
# or timing out): its due deliveries are put off for the deadline, so claims stop scanning past
# a growing backlog that cannot be sent yet.
SLOW_AFTER = 1.0
SETTLE_SECONDS = 0.5  # a burst worker waits this long for POSTs under way before it returns
DRAIN_SECONDS = 2  # a drain job claims this long, then hands over to a fresh job
POLL = 0.05  # seconds a drain job waits for an event's bell before it looks again
# Batching under steady traffic: claims come at most this often (unless the last one was full),
# and a write waits this long for more answers to join it. Each costs a transaction.
CLAIM_EVERY = 0.025
WRITE_DELAY = 0.02
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
    resend_pending: bool  # a bulk resend's manual attempt
    resend_requested_by_id: int | None
    unusable: str | None = None  # why it cannot be sent (its signing secret cannot be read)
    token: str = ""  # the claim's lease token
    claimed_at: float = 0.0  # time.monotonic() of the claim


def deliver_due(ids: list[int] | None = None) -> int:
    """Claim due deliveries (these ids first) and hand them to the senders, for up to
    DRAIN_SECONDS; after TNT_DRAIN_IDLE seconds with nothing due, stop. Return how many."""
    senders = _senders()
    config = current_app.config
    batch, busy = config["TNT_BATCH_SIZE"], config["TNT_SEND_CONCURRENCY"]
    idle_polls = max(1, round(config["TNT_DRAIN_IDLE"] / POLL))
    with db.engine.connect() as conn:  # one connection for the job: no checkout per claim
        return _drain(conn, senders, ids, batch, busy, idle_polls)


def _drain(conn, senders: "_Senders", ids, batch: int, busy: int, idle_polls: int) -> int:
    started, sent, polls, last_claim, full = time.monotonic(), 0, 0, 0.0, False
    while time.monotonic() - started < DRAIN_SECONDS:
        if not senders.wait_for_room(4 * busy, POLL):  # enough claimed to keep every thread busy
            continue
        if not full:
            time.sleep(max(0.0, last_claim + CLAIM_EVERY - time.monotonic()))
        freed, last_claim = senders.freed, time.monotonic()
        slow = senders.newly_slow()
        if slow:
            with conn.begin():
                _put_off(conn, slow, current_app.config["TNT_DELIVERY_TIMEOUT"])
        limit = senders.claim_limit(batch)
        with conn.begin():
            _, items = claim(limit=limit, ids=ids, skip_endpoints=senders.saturated(), conn=conn)
            items, excess = senders.fit(items)
            if excess:
                _release(conn, excess)
        if ids and not items:
            ids = None
            continue
        ids = None
        full = len(items) + len(excess) == limit  # there may be more due right now
        if items:
            senders.submit(items)
            sent, polls = sent + len(items), 0
            if full:
                queue.kick()  # a backlog: an idle worker may join in
            continue
        # Nothing claimable. Claim again when a busy endpoint gets room or an event rings.
        if senders.freed != freed or queue.wait_for_bell(POLL):
            polls = 0
            continue
        polls += 1
        if polls >= idle_polls:
            return sent
    queue.kick()  # time is up and more may be due: a fresh job (maybe on another worker) goes on
    return sent


def claim(limit: int, ids: list[int] | None = None, *, due_only: bool = True,
          skip_endpoints: list[int] = (), conn=None) -> tuple[str, list["Outgoing"]]:
    """Lease up to `limit` due, unclaimed deliveries and load what sending them needs.

    `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite serialises writers), so workers claiming at
    once never share a delivery. On `conn`, inside the caller's transaction; without it, on the
    session, committed. Returns (lease token, items).
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
    on = conn if conn is not None else db.session.connection()
    claimed = on.execute(
        update(d).where(d.c.id.in_(pick.scalar_subquery()))
        .values(lease_expires_at=now + LEASE, lease_token=token).returning(d.c.id)
    ).scalars().all()
    items = _load(on, claimed) if claimed else []
    if conn is None:
        db.session.commit()
    claimed_at = time.monotonic()
    for o in items:
        o.token, o.claimed_at = token, claimed_at
    return token, items


def resend(delivery_id: int, *, account_id: int | None, requested_by: int | None) -> Attempt:
    """One immediate manual attempt, logged with who asked. account_id None: support (any)."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or (account_id is not None and delivery.account_id != account_id):
        raise NotFound("No such delivery.")
    if not delivery.endpoint.active:
        raise Conflict("Its endpoint is disabled or deleted; enable it to resend.")
    _, items = claim(limit=1, ids=[delivery_id], due_only=False)
    if not items:
        raise Conflict("This delivery is being sent right now; try again in a moment.")
    (o,) = items
    started = utcnow()
    response = (Response(status=None, error=o.unusable) if o.unusable
                else _transport().post(o.url, o.body, request_headers(o)))
    _schedule(_record(db.session.connection(), [(o, started, response)], trigger="manual",
                      requested_by=requested_by))
    db.session.commit()
    return db.session.scalar(
        select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.id.desc()).limit(1)
    )


def settle(timeout: float) -> bool:
    """Wait up to `timeout` s for this process's POSTs under way to be answered and recorded."""
    return _senders().settle(timeout)


def shutdown(timeout: float) -> None:
    """Stop sending: release what was claimed but not started, wait for the rest (SIGTERM)."""
    _senders().close(timeout)


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
        .values(status="failed", next_attempt_at=None, last_error=reason, updated_at=utcnow(),
                resend_pending=False, resend_requested_by_id=None)
    )


def _load(conn, ids: list[int]) -> list[Outgoing]:
    d, e, ev, m = (t.__table__ for t in (Delivery, Endpoint, Event, Message))
    active = and_(e.c.enabled.is_(True), e.c.deleted_at.is_(None))
    rows = conn.execute(  # in Outgoing's field order; the secret as stored, read per row below
        select(d.c.id, d.c.account_id, d.c.endpoint_id, e.c.url,
               type_coerce(e.c.secret, Text), active, d.c.uid,
               ev.c.type, ev.c.body, ev.c.message_id, m.c.mobile, d.c.status,
               d.c.auto_attempts, d.c.attempts_count, d.c.next_attempt_at, d.c.resend_pending,
               d.c.resend_requested_by_id)
        .join(e, e.c.id == d.c.endpoint_id)
        .join(ev, ev.c.id == d.c.event_id)
        .outerjoin(m, m.c.id == ev.c.message_id)
        .where(d.c.id.in_(ids))
    ).all()
    items = [Outgoing(*r) for r in rows]
    for o in items:
        try:
            o.secret = crypto.read(o.secret)
        except crypto.SecretsKeyError:
            # Never sent unsigned, and no reason to hold up the rest of the claim: it fails
            # (and is retried) with the reason in the Logs until the key is put back.
            o.secret, o.unusable = None, ("Not sent: its signing secret cannot be decrypted "
                                          "with TNT_SECRETS_KEY (see docs/security.md)")
    return items


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


class _Senders:
    """This process's sending machinery, shared by its drain jobs.

    One lane (a queue) per endpoint, worked by at most PER_ENDPOINT threads of a shared pool:
    a black-holed endpoint holds PER_ENDPOINT threads, never all of them. Results are written
    by group commit: whichever thread finds no write under way writes everything answered so
    far, then what came in meanwhile, until nothing is left.
    """

    def __init__(self, app: Flask):
        self.app = app
        self.transport = _transport()
        self.pool = ThreadPoolExecutor(app.config["TNT_SEND_CONCURRENCY"],
                                       thread_name_prefix="send")
        self.cond = threading.Condition()
        self.lanes: dict[int, deque] = defaultdict(deque)  # claimed, not started
        self.threads = Counter()  # endpoint id -> threads working its lane
        self.load = Counter()  # endpoint id -> claimed and not yet answered
        self.unrecorded = 0  # claimed and neither recorded nor given up
        self.full: set[int] = set()  # endpoints holding HOLD_PER_ENDPOINT, until half is answered
        self.freed = 0  # goes up when an endpoint leaves `full`
        self.answered_at: dict[int, float] = {}  # endpoint id -> last answer (or first claim)
        self.put_off_at: dict[int, float] = {}  # endpoint id -> when its backlog was put off
        self.answered: list[tuple] = []  # (Outgoing, started_at, Response | None) to record
        self.writing = False
        self.writer = None  # the connection results are written on (by one thread at a time)
        self.closing = False

    def saturated(self) -> list[int]:
        """Endpoints holding all this process may hold: the next claim passes them by."""
        with self.cond:
            return list(self.full)

    def claim_limit(self, batch: int) -> int:
        """What the endpoints with work here can take, plus one more endpoint's share."""
        with self.cond:
            room = sum(HOLD_PER_ENDPOINT - n for e, n in self.load.items() if e not in self.full)
        return min(batch, room + HOLD_PER_ENDPOINT)

    def newly_slow(self) -> list[int]:
        """Slow endpoints whose backlog was not put off in the last deadline."""
        now = time.monotonic()
        again = now - self.app.config["TNT_DELIVERY_TIMEOUT"]
        with self.cond:
            slow = [e for e, n in self.load.items() if n >= PER_ENDPOINT
                    and now - self.answered_at.get(e, now) > SLOW_AFTER
                    and self.put_off_at.get(e, 0.0) < again]
            for e in slow:
                self.put_off_at[e] = now
            return slow

    def wait_for_room(self, most: int, timeout: float) -> bool:
        """True once at most `most` claimed deliveries are unanswered."""
        with self.cond:
            return self.cond.wait_for(lambda: self.unrecorded <= most, timeout)

    def fit(self, items: list[Outgoing]) -> tuple[list[Outgoing], list[Outgoing]]:
        """Split a claim into what the endpoints' lanes may hold and the rest."""
        keep, excess, taken = [], [], Counter()
        with self.cond:
            for o in items:
                if self.load[o.endpoint_id] + taken[o.endpoint_id] < HOLD_PER_ENDPOINT:
                    taken[o.endpoint_id] += 1
                    keep.append(o)
                else:
                    excess.append(o)
        return keep, excess

    def submit(self, items: list[Outgoing]) -> None:
        starts, unsent = [], []
        with self.cond:
            self.unrecorded += len(items)
            for o in items:
                if not o.active or o.unusable:  # disabled or deleted since queued; or no secret
                    unsent.append(o)
                    continue
                if not self.load[o.endpoint_id]:
                    self.answered_at[o.endpoint_id] = time.monotonic()
                self.lanes[o.endpoint_id].append(o)
                self.load[o.endpoint_id] += 1
                if self.load[o.endpoint_id] >= HOLD_PER_ENDPOINT:
                    self.full.add(o.endpoint_id)
            for e in {o.endpoint_id for o in items if o.active and not o.unusable}:
                n = min(PER_ENDPOINT - self.threads[e], len(self.lanes[e]))
                if n > 0:
                    self.threads[e] += n
                    starts += [e] * n
        for e in starts:
            self.pool.submit(self._work_lane, e)
        for o in unsent:
            failed = Response(status=None, error=o.unusable) if o.active else None
            self._answered(o, utcnow(), failed, sent=False)

    def _work_lane(self, endpoint_id: int) -> None:
        """Send the next delivery of an endpoint's lane, then queue up behind the other lanes
        for the one after (a lane that kept its thread would starve lanes waiting for one)."""
        with self.cond:
            lane = self.lanes[endpoint_id]
            if not lane or self.closing:
                self.threads[endpoint_id] -= 1
                if not self.threads[endpoint_id]:
                    del self.threads[endpoint_id]
                    if not lane:
                        del self.lanes[endpoint_id]
                return
            o = lane.popleft()
        # No POST for a delivery claimed more than half a lease ago: it could still be under
        # way when the lease expires and another worker sends it too. It is left to its lease
        # (a slow endpoint with a long queue).
        if time.monotonic() - o.claimed_at > LEASE.total_seconds() / 2:
            self._forget([o])
        else:
            started = utcnow()
            try:
                response = self.transport.post(o.url, o.body, request_headers(o))
            except Exception as exc:  # noqa: BLE001 - a bug, not the receiver: retry later
                log.exception("sending delivery %s failed", o.delivery_id)
                response = Response(status=None, error=f"Internal error while sending: {exc}")
            self._answered(o, started, response)
        self.pool.submit(self._work_lane, endpoint_id)

    def _answered(self, o: Outgoing, started, response: Response | None, *,
                  sent: bool = True) -> None:
        with self.cond:
            if sent:
                self._unload(o.endpoint_id)
                self.answered_at[o.endpoint_id] = time.monotonic()
            self.answered.append((o, started, response))
            if self.writing:
                return
            self.writing = True
        time.sleep(WRITE_DELAY)  # let the answers coming in now join this write
        while True:
            with self.cond:
                batch, self.answered = self.answered, []
                if not batch:
                    self.writing = False
                    return
            self._write(batch)
            with self.cond:
                self.unrecorded -= len(batch)
                self.cond.notify_all()

    def _write(self, batch: list[tuple]) -> None:
        """Record a batch; while the database is away, keep trying while the leases hold (the
        answers exist only here; once a lease expires another worker may send it again)."""
        oldest = min(o.claimed_at for o, _, _ in batch)
        patience = oldest + LEASE.total_seconds() - 1.0 - time.monotonic()
        wait, waited = 0.25, 0.0
        with self.app.app_context():
            while True:
                try:
                    if self.writer is None:
                        self.writer = db.engine.connect()
                    with self.writer.begin():
                        retries = _record(self.writer, batch, trigger="auto", requested_by=None)
                    _schedule(retries)
                    return
                except Exception as exc:  # noqa: BLE001 - the database is down or restarting
                    if self.writer is not None:
                        self.writer.invalidate()
                        self.writer = None
                    if waited >= patience:
                        log.error("gave up recording %d attempts: %s", len(batch), exc)
                        return
                    log.warning("could not record %d attempts, retrying: %s", len(batch), exc)
                    time.sleep(wait)
                    waited, wait = waited + wait, min(wait * 2, 5.0)

    def _unload(self, endpoint_id: int) -> None:
        self.load[endpoint_id] -= 1
        if endpoint_id in self.full and self.load[endpoint_id] <= HOLD_PER_ENDPOINT // 2:
            self.full.discard(endpoint_id)
            self.freed += 1
        if not self.load[endpoint_id]:
            del self.load[endpoint_id]
            self.answered_at.pop(endpoint_id, None)

    def _forget(self, items: list[Outgoing]) -> None:
        """Claimed deliveries this process will not send (their leases decide)."""
        with self.cond:
            for o in items:
                self._unload(o.endpoint_id)
            self.unrecorded -= len(items)
            self.cond.notify_all()

    def settle(self, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: not self.unrecorded, timeout)

    def close(self, timeout: float) -> None:
        with self.cond:
            self.closing = True
            left = [o for lane in self.lanes.values() for o in lane]
            for lane in self.lanes.values():
                lane.clear()
        if left:
            _release(db.session.connection(), left)
            db.session.commit()
            log.info("released %d claimed deliveries not yet sent", len(left))
        self._forget(left)
        if not self.settle(timeout):
            log.warning("stopped with POSTs still under way; their leases will expire")


def _release(conn, items: list[Outgoing]) -> None:
    """Give claimed deliveries back unsent (inside the caller's transaction)."""
    t = Delivery.__table__
    conn.execute(update(t).where(tuple_(t.c.id, t.c.lease_token).in_(
        [(o.delivery_id, o.token) for o in items])).values(lease_expires_at=None, lease_token=None))


def _put_off(conn, endpoint_ids: list[int], seconds: float) -> None:
    """Make slow endpoints' due, unclaimed deliveries due again in `seconds`."""
    now = utcnow()
    t = Delivery.__table__
    conn.execute(update(t).where(
        t.c.endpoint_id.in_(endpoint_ids), t.c.next_attempt_at <= now,
        or_(t.c.lease_expires_at.is_(None), t.c.lease_expires_at < now),
    ).values(next_attempt_at=now + timedelta(seconds=seconds)))


def _senders() -> _Senders:
    ext = current_app.extensions
    if "tnt_senders" not in ext:
        ext["tnt_senders"] = _Senders(current_app._get_current_object())
    return ext["tnt_senders"]


def _record(conn, results: list[tuple], trigger: str,
            requested_by: int | None) -> dict[int, list[int]]:
    """Write attempts and the deliveries' new states on `conn`, inside the caller's transaction;
    return the retries to schedule after commit ({delay: delivery ids}).

    `results` holds (Outgoing, started_at, Response); a None response means the endpoint was
    disabled or deleted before the attempt. Only deliveries whose claim still holds (lease
    token checked under a row lock) are recorded: one whose lease passed to another worker is
    that worker's to record. An attempt a bulk resend asked for is manual, whoever sends it.
    """
    table = Delivery.__table__
    held = set(conn.execute(
        select(table.c.id).where(tuple_(table.c.id, table.c.lease_token).in_(
            [(o.delivery_id, o.token) for o, _, _ in results])).with_for_update()
    ).scalars())
    if len(held) < len(results):
        log.warning("%d answers came after their claim passed to another worker; not recorded",
                    len(results) - len(held))
        results = [r for r in results if r[0].delivery_id in held]
    now = utcnow()
    attempts, changes, delivered, retry_at = [], [], [], defaultdict(list)
    for o, started, resp in results:
        manual = trigger == "manual" or o.resend_pending
        change = {"b_id": o.delivery_id, "b_token": o.token, "updated_at": now,
                  "lease_expires_at": None, "lease_token": None,
                  "auto_attempts": o.auto_attempts, "attempts_count": o.attempts_count,
                  "status": o.status, "next_attempt_at": o.next_attempt_at, "last_error": None,
                  "resend_pending": False, "resend_requested_by_id": None}
        changes.append(change)
        if resp is None:
            change.update(status="failed", next_attempt_at=None,
                          last_error="Endpoint disabled or deleted before this attempt.")
            continue
        ok = resp.ok  # a 2xx whose body then timed out or broke off is a failure
        error = None if ok else _reason(resp)
        change["attempts_count"] += 1
        attempts.append({
            "delivery_id": o.delivery_id, "account_id": o.account_id,
            "endpoint_id": o.endpoint_id, "event_type": o.event_type,
            "message_id": o.message_id, "mobile": o.mobile,
            "number": change["attempts_count"], "trigger": "manual" if manual else "auto",
            "requested_by_id": requested_by if trigger == "manual" else o.resend_requested_by_id,
            "started_at": started,
            "duration_ms": resp.duration_ms, "ok": ok, "status_code": resp.status,
            "response_headers": json.dumps(resp.headers), "response_body": resp.body,
            "error": error,
        })
        change["last_error"] = error
        if ok:
            changes.pop()  # the common case: one statement for the whole batch, below
            delivered.append((o.delivery_id, o.token))
        elif o.resend_pending:  # one attempt was asked for: no new retry series
            change.update(status="failed", next_attempt_at=None)
        elif not manual:
            change["auto_attempts"] += 1
            n = change["auto_attempts"]
            if n <= len(RETRY_DELAYS):
                delay = RETRY_DELAYS[n - 1]
                change.update(status="retrying", next_attempt_at=now + timedelta(seconds=delay))
                retry_at[delay].append(o.delivery_id)
            else:
                change.update(status="failed", next_attempt_at=None)
    if attempts:
        conn.execute(insert(Attempt.__table__), attempts)
    if delivered:
        conn.execute(
            update(table).where(tuple_(table.c.id, table.c.lease_token).in_(delivered))
            .values(status="delivered", next_attempt_at=None, last_error=None, updated_at=now,
                    lease_expires_at=None, lease_token=None, resend_pending=False,
                    resend_requested_by_id=None, attempts_count=table.c.attempts_count + 1)
        )
    if changes:
        conn.execute(
            update(table)
            .where(and_(table.c.id == bindparam("b_id"), table.c.lease_token == bindparam("b_token")))
            .values({k: bindparam(k) for k in changes[0] if not k.startswith("b_")}),
            changes,
        )
    return retry_at


def _schedule(retry_at: dict[int, list[int]]) -> None:
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
            https_only=current_app.config["TNT_HTTPS_ONLY"],
            timeout=current_app.config["TNT_DELIVERY_TIMEOUT"],
            user_agent=USER_AGENT,
            # Every sending thread may be on one host (several endpoints on one server): a
            # smaller cap would make them queue for a connection.
            max_per_host=current_app.config["TNT_SEND_CONCURRENCY"],
        )
    return ext["tnt_transport"]
