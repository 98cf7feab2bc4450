"""Operational figures: what the workers count, and what the database says at a glance.

Workers count attempts in Redis (one pipeline per group commit), so every process on every host
adds to the same figures; `/metrics` exposes them in Prometheus' format (prometheus-client), and
the System page reads them. Counters live as long as Redis keeps them: a flush resets them,
which Prometheus reads as a counter reset. The backlog and the endpoints are read from the
database at each scrape (indexed, cheap); workers are RQ's own registrations with their
heartbeats.
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from rq import Worker
from sqlalchemy import func, select

from . import queue
from .clock import utcnow
from .extensions import db
from .models import Delivery, Endpoint
from .states import DeliveryStatus

log = logging.getLogger(__name__)

KEY = "tnt:metrics"  # one hash: the counters and the histogram
MINUTE_KEY = "tnt:minute:{}"  # a hash per minute {ok, failed}, for the System page's chart
MINUTE_TTL = 2 * 3600
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Counted:
    """One attempt, as the figures see it."""

    event: str
    outcome: str  # the state it left its delivery in: delivered, retrying or failed
    ok: bool
    seconds: float


def count(attempts: list[Counted]) -> None:
    """Add attempts to the shared figures: one Redis round trip. Never fails the caller."""
    if not attempts:
        return
    fields: dict[str, float] = {}

    def add(name: str, n: float = 1) -> None:
        fields[name] = fields.get(name, 0) + n

    minute = MINUTE_KEY.format(int(time.time() // 60))
    per_minute = {"ok": 0, "failed": 0}
    for a in attempts:
        add(f"deliveries|{a.event}|{a.outcome}")
        add("duration|sum", a.seconds)
        add(f"duration|{next((b for b in BUCKETS if a.seconds <= b), '+Inf')}")
        per_minute["ok" if a.ok else "failed"] += 1
    try:
        pipe = queue.redis().pipeline(transaction=False)
        for name, n in fields.items():
            if name == "duration|sum":
                pipe.hincrbyfloat(KEY, name, n)
            else:
                pipe.hincrby(KEY, name, int(n))
        for name, n in per_minute.items():
            if n:
                pipe.hincrby(minute, name, n)
        pipe.expire(minute, MINUTE_TTL)
        pipe.execute()
    except Exception as exc:
        log.warning("could not count %d attempts: %s", len(attempts), exc)


@dataclass
class Minute:
    start: datetime
    ok: int
    failed: int


def per_minute(minutes: int = 60) -> list[Minute]:
    """Attempts per minute by outcome, oldest first (zeros where Redis has nothing)."""
    now = int(time.time() // 60)
    spans = range(now - minutes + 1, now + 1)
    pipe = queue.redis().pipeline(transaction=False)
    for m in spans:
        pipe.hgetall(MINUTE_KEY.format(m))
    out = []
    for m, counts in zip(spans, pipe.execute(), strict=False):
        start = datetime.fromtimestamp(m * 60, UTC).replace(tzinfo=None)
        out.append(Minute(start, int(counts.get(b"ok", 0)), int(counts.get(b"failed", 0))))
    return out


@dataclass
class Backlog:
    by_status: dict[str, int]  # pending and retrying deliveries
    due: int  # of those, due now
    oldest_due: datetime | None


def backlog() -> Backlog:
    """Deliveries waiting for an attempt (only they have `next_attempt_at`: indexed)."""
    now = utcnow()
    by_status = dict(
        db.session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.next_attempt_at.is_not(None))
            .group_by(Delivery.status)
        ).all()
    )
    due, oldest = db.session.execute(
        select(func.count(), func.min(Delivery.next_attempt_at)).where(
            Delivery.next_attempt_at <= now
        )
    ).one()
    return Backlog(
        {s: by_status.get(s, 0) for s in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)},
        due,
        oldest,
    )


def disabled_endpoints() -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Endpoint)
        .where(Endpoint.enabled.is_(False), Endpoint.deleted_at.is_(None))
    )


@dataclass
class WorkerSeen:
    name: str
    host: str
    pid: int
    state: str
    last_heartbeat: datetime | None


def workers() -> list[WorkerSeen]:
    """The RQ workers registered in Redis, with their last heartbeat (RQ drops a worker whose
    heartbeat lapses)."""
    out = []
    for w in Worker.all(connection=queue.redis()):
        out.append(
            WorkerSeen(w.name, w.hostname or "", w.pid or 0, str(w.get_state()), w.last_heartbeat)
        )
    return sorted(out, key=lambda w: (w.host, w.pid))


class _Collector:
    """Reads the figures at scrape time."""

    def collect(self):
        raw = {k.decode(): float(v) for k, v in queue.redis().hgetall(KEY).items()}
        deliveries = CounterMetricFamily(
            "tnt_deliveries",
            "Attempts by event and the state they left their delivery in "
            "(delivered, retrying, failed).",
            labels=["event", "outcome"],
        )
        for name, n in sorted(raw.items()):
            kind, *labels = name.split("|")
            if kind == "deliveries":
                deliveries.add_metric(labels, n)
        yield deliveries
        counts, running = [], 0.0
        for bound in (*BUCKETS, "+Inf"):
            running += raw.get(f"duration|{bound}", 0)
            counts.append((str(bound) if bound == "+Inf" else repr(float(bound)), running))
        yield HistogramMetricFamily(
            "tnt_attempt_duration_seconds",
            "How long attempts took, request to answer.",
            buckets=counts,
            sum_value=raw.get("duration|sum", 0),
        )
        b = backlog()
        waiting = GaugeMetricFamily(
            "tnt_backlog_deliveries",
            "Deliveries waiting for an attempt, by status.",
            labels=["status"],
        )
        for status, n in b.by_status.items():
            waiting.add_metric([status], n)
        yield waiting
        yield GaugeMetricFamily("tnt_due_deliveries", "Deliveries due now.", value=b.due)
        age = (utcnow() - b.oldest_due).total_seconds() if b.oldest_due else 0
        yield GaugeMetricFamily(
            "tnt_oldest_due_seconds", "How long the oldest due delivery has been due.", value=age
        )
        yield GaugeMetricFamily(
            "tnt_endpoints_disabled", "Endpoints switched off.", value=disabled_endpoints()
        )
        beats = GaugeMetricFamily(
            "tnt_worker_heartbeat_timestamp_seconds",
            "Each registered worker's last heartbeat (Unix time).",
            labels=["worker", "host"],
        )
        for w in workers():
            if w.last_heartbeat:
                beat = w.last_heartbeat
                beats.add_metric(
                    [w.name, w.host],
                    (beat if beat.tzinfo else beat.replace(tzinfo=UTC)).timestamp(),
                )
        yield beats


def exposition() -> bytes:
    """The Prometheus text exposition of every figure."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry)
