"""Recording: every attempt and the delivery's new state, written together, by group commit.

Only a worker whose claim still holds may record: each delivery's UPDATE is fenced by its lease
token, and attempts are written only for the rows it changed. A worker whose lease passed to
another worker (it was paused, or the database was away too long) records nothing; the other
worker's attempt is the one in the Logs.
"""

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import Connection, insert, update

from .. import metrics
from ..clock import utcnow
from ..models import Attempt, Delivery
from ..states import DeliveryStatus
from ..transport import Response
from . import claiming, policy
from .outgoing import Outgoing
from .settings import EngineSettings

log = logging.getLogger(__name__)


# Deliveries that end the same way share one UPDATE: (lease token, status, next attempt,
# error, count as automatic, an attempt was made).
_Key = tuple[str, DeliveryStatus, datetime | None, str | None, bool, bool]


@dataclass(slots=True)
class Answer:
    """One attempt's result, waiting to be recorded."""

    o: Outgoing
    started: datetime
    response: Response | None  # None: not sent (its endpoint is gone)
    manual: bool = False  # a person's resend
    requested_by: int | None = None  # the user who asked for it


@dataclass
class Recorded:
    """What a write did, for after its commit."""

    retries: dict[int, list[int]]  # wake-ups to schedule: {delay: delivery ids}
    counted: list[metrics.Counted]  # the attempts written, for the figures


def record(conn: Connection, answers: list[Answer]) -> Recorded:
    """Write the attempts and new states of the answers whose claim still holds, inside the
    caller's transaction; the caller passes the result to `after_commit` once committed.

    Deliveries that end the same way (delivered, the first retry...) share one UPDATE, fenced
    by their lease tokens, which also returns each attempt's number.
    """
    now = utcnow()
    groups: defaultdict[_Key, list[tuple[Answer, policy.Decision, bool]]] = defaultdict(list)
    for a in answers:
        decision, ok = _decide(a, now)
        bump = decision.auto_attempts != a.o.auto_attempts
        key = (
            a.o.token,
            decision.status,
            decision.next_attempt_at,
            decision.last_error,
            bump,
            decision.trigger is not None,
        )
        groups[key].append((a, decision, ok))
    t = Delivery.__table__
    attempts: list[dict[str, Any]] = []
    retries: defaultdict[int, list[int]] = defaultdict(list)
    counted: list[metrics.Counted] = []
    lost = 0
    for (token, status, next_at, error, bump, attempted), members in groups.items():
        values: dict[str, Any] = {
            "status": status,
            "next_attempt_at": next_at,
            "last_error": error,
            "updated_at": now,
            "lease_expires_at": None,
            "lease_token": None,
            "resend_pending": False,
            "resend_requested_by_id": None,
        }
        if bump:
            values["auto_attempts"] = t.c.auto_attempts + 1
        if attempted:
            values["attempts_count"] = t.c.attempts_count + 1
        held: dict[int, int] = dict(
            conn.execute(  # the fence: rows still carrying our token
                update(t)
                .where(
                    t.c.lease_token == token,
                    claiming.among(conn, t.c.id, [a.o.delivery_id for a, _, _ in members]),
                )
                .values(values)
                .returning(t.c.id, t.c.attempts_count)
            ).all()
        )
        for a, decision, ok in members:
            number = held.get(a.o.delivery_id)
            if number is None:
                lost += 1
                continue
            if decision.retry_in:
                retries[decision.retry_in].append(a.o.delivery_id)
            if attempted:
                attempts.append(_attempt_row(a, decision, ok, number))
                assert a.response is not None  # an attempt was made
                counted.append(
                    metrics.Counted(a.o.event_type, status, ok, a.response.duration_ms / 1000)
                )
    if attempts:
        _insert_attempts(conn, attempts)
    if lost:
        log.warning(
            "%d answers came after their claim passed to another worker; not recorded", lost
        )
    return Recorded(retries, counted)


def _insert_attempts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert attempt rows: the engine's hottest write. On PostgreSQL with COPY (psycopg's C
    path): a fifth of the client CPU of an INSERT per row (bench/throughput.py), and less
    work for the server too."""
    table = Attempt.__table__
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    names = list(rows[0])
    driver = conn.connection.driver_connection
    assert driver is not None  # a live psycopg connection inside the caller's transaction
    with (
        driver.cursor() as cur,
        cur.copy(f"COPY attempt ({', '.join(names)}) FROM STDIN") as copy,
    ):
        for r in rows:
            copy.write_row([r[n] for n in names])


def _decide(a: Answer, now: datetime) -> tuple[policy.Decision, bool]:
    if a.response is None:
        return policy.not_sent(a.o.state), False
    r = a.response
    outcome = policy.Outcome.of(r.status, r.error, _location(r.headers), manual=a.manual)
    return policy.decide(a.o.state, outcome, now), outcome.ok


def _location(headers: dict[str, str]) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == "location"), None)


def _attempt_row(a: Answer, decision: policy.Decision, ok: bool, number: int) -> dict[str, Any]:
    o, r = a.o, a.response
    assert r is not None
    return {
        "delivery_id": o.delivery_id,
        "account_id": o.account_id,
        "endpoint_id": o.endpoint_id,
        "event_type": o.event_type,
        "message_id": o.message_id,
        "mobile": o.mobile,
        "number": number,
        "trigger": decision.trigger,
        "requested_by_id": a.requested_by if a.manual else o.resend_requested_by_id,
        "started_at": a.started,
        "duration_ms": r.duration_ms,
        "ok": ok,
        "status_code": r.status,
        "response_headers": json.dumps(r.headers),
        "response_body": r.body,
        "error": None if ok else decision.last_error,
        "signature": o.signature,
    }


def end_pending(conn: Connection, endpoint_id: int, reason: str) -> None:
    """Stop the automatic attempts of an endpoint that was disabled or deleted (inside the
    caller's transaction)."""
    t = Delivery.__table__
    conn.execute(
        update(t)
        .where(
            t.c.endpoint_id == endpoint_id,
            t.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.RETRYING)),
        )
        .values(
            status=DeliveryStatus.FAILED,
            next_attempt_at=None,
            last_error=reason,
            updated_at=utcnow(),
            resend_pending=False,
            resend_requested_by_id=None,
        )
    )


def after_commit(recorded: Recorded) -> None:
    """Wake a worker when each retry is due (RQ's scheduler; only a wake-up: the database's
    `next_attempt_at` is the truth, and the sweeper covers a lost one), and count the attempts."""
    from .. import jobs, queue

    for delay, ids in recorded.retries.items():
        queue.enqueue_in(delay, jobs.deliver_due, ids)
    metrics.count(recorded.counted)


class Recorder:
    """This process's writer: one thread that writes whatever has been answered meanwhile in
    one transaction (group commit), and gives back claims that will not be sent.

    While the database is away it keeps trying for as long as the answers' leases hold: the
    answers exist only here, and once a lease expires another worker may send it again.
    """

    def __init__(self, app: Flask, settings: EngineSettings, recorded: Callable[[int], None]):
        self.app, self.settings, self.recorded = app, settings, recorded
        self.cond = threading.Condition()
        self.answers: list[Answer] = []
        self.unsent: list[Outgoing] = []  # claims to give back
        self.conn: Connection | None = None
        threading.Thread(target=self._run, name="tnt-recorder", daemon=True).start()

    def add(self, answer: Answer) -> None:
        """Queue an answer (cheap: called on the transport's thread)."""
        with self.cond:
            self.answers.append(answer)
            self.cond.notify()

    def give_back(self, items: list[Outgoing]) -> None:
        with self.cond:
            self.unsent.extend(items)
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.answers or self.unsent)
            time.sleep(self.settings.write_delay)  # let the answers coming in now join this write
            with self.cond:
                answers, self.answers = self.answers, []
                unsent, self.unsent = self.unsent, []
            self._write(answers, unsent)
            self.recorded(len(answers) + len(unsent))

    def _write(self, answers: list[Answer], unsent: list[Outgoing]) -> None:
        from ..extensions import db

        lease_ends = [
            o.send_by + self.settings.send_window for o in [a.o for a in answers] + unsent
        ]
        patience = min(lease_ends) - self.settings.margin
        wait = 0.25
        with self.app.app_context():
            while True:
                try:
                    if self.conn is None:
                        self.conn = db.engine.connect()
                    with self.conn.begin():
                        recorded = record(self.conn, answers)
                        claiming.release(self.conn, unsent)
                    after_commit(recorded)
                    return
                except Exception as exc:
                    if self.conn is not None:
                        self.conn.invalidate()
                        self.conn = None
                    if time.monotonic() + wait >= patience:
                        log.error(
                            "gave up recording %d attempts (their leases end): %s",
                            len(answers),
                            exc,
                        )
                        return
                    log.warning("could not record %d attempts, retrying: %s", len(answers), exc)
                    time.sleep(wait)
                    wait = min(wait * 2, 5.0)
