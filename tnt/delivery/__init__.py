"""The delivery engine: claim due deliveries, POST them, record every attempt, decide what next.

Its parts, each a module of its own:
- `claiming`: the SQL of claims and leases, and giving claims back;
- `sending`: per-endpoint lanes in front of the libcurl transport (`tnt.transport`);
- `recording`: group-commit writes of attempts and new states, fenced by lease tokens;
- `policy`: the retry policy, a pure function from (state, outcome) to the next state;
- `engine`: the dispatcher that ties them together in a worker process;
- `settings`: the one settings object, built from the app's config.

This module is the engine's public face: what jobs, the dashboard, the API and the CLI call.
"""

from datetime import timedelta

from flask import current_app

from .. import audit, queue
from ..clock import utcnow
from ..errors import Conflict, NotFound
from ..extensions import db
from ..models import Attempt, Delivery, Message
from ..scope import Scope
from ..states import MessageStatus
from ..transport import Response, Transport
from . import claiming, recording
from .engine import Engine, new_transport
from .outgoing import request_headers, sent_headers
from .recording import Answer
from .settings import EngineSettings

__all__ = [
    "deliver_due",
    "end_pending",
    "resend",
    "sent_headers",
    "settings",
    "settle",
    "shutdown",
    "sweep",
]


def settings() -> EngineSettings:
    return EngineSettings.from_config(current_app.config)


def deliver_due(ids: list[int] | None = None) -> int:
    """A drain job: claim due deliveries (these ids first) and send them; return how many."""
    return _engine().drain(ids)


def resend(delivery_id: int, *, scope: Scope, requested_by: int | None) -> Attempt:
    """One immediate manual attempt at a delivery the scope sees, logged with who asked.

    Runs in the caller's process (a web request): at most one POST deadline.
    """
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or not (scope.everyone or delivery.account_id == scope.account_id):
        raise NotFound("No such delivery.")
    if not delivery.endpoint.active:
        raise Conflict("Its endpoint is disabled or deleted; enable it to resend.")
    account, endpoint_id = delivery.account_id, delivery.endpoint_id
    s = settings()
    conn = db.session.connection()
    items = claiming.claim(conn, s, 1, [delivery_id], due_only=False)
    db.session.commit()
    items, expired = claiming.ready(items, s)
    if expired:  # this process stalled while claiming: the lease is too short to send now
        claiming.release(db.session.connection(), expired)
        db.session.commit()
    if not items:
        raise Conflict("This delivery is being sent right now; try again in a moment.")
    (o,) = items
    started = utcnow()
    response = (
        Response(status=None, error=o.unusable)
        if o.unusable
        else _transport().post(o.url, o.body, request_headers(o))
    )
    recorded = recording.record(
        db.session.connection(),
        [Answer(o, started, response, manual=True, requested_by=requested_by)],
    )
    # In the attempt's transaction: a resend that was made is never missing from the trail.
    audit.record(
        audit.Action.DELIVERY_RESEND,
        account,
        target=("delivery", delivery_id),
        details={"endpoint_id": endpoint_id, "ok": response.ok},
    )
    db.session.commit()
    recording.after_commit(recorded)
    attempt: Attempt | None = db.session.scalar(
        db.select(Attempt)
        .where(Attempt.delivery_id == delivery_id)
        .order_by(Attempt.id.desc())
        .limit(1)
    )
    assert attempt is not None  # just recorded (or the delivery was resent meanwhile)
    return attempt


def sweep() -> int:
    """Enqueue work whose wake-up Redis lost: due deliveries left unclaimed, queued messages
    never submitted. Safe to run anywhere, any time, by several processes at once."""
    from .. import jobs

    s = settings()
    lost = claiming.count_lost(db.session.connection(), s)
    grace = utcnow() - timedelta(seconds=s.sweep_grace)
    unsent = db.session.scalars(
        db.select(Message.id)
        .where(
            Message.status == MessageStatus.QUEUED,
            Message.created_at <= grace,
            db.or_(Message.simulate.is_(None), Message.simulate != "hold"),
        )
        .limit(1000)
    ).all()
    db.session.rollback()
    if lost:
        queue.redis().delete(queue.KICK_KEY)  # a kick flag may outlive a lost job
        queue.kick()
    for message_id in unsent:
        queue.enqueue(jobs.submit_message, message_id)
    return lost + len(unsent)


def end_pending(endpoint_id: int, reason: str) -> None:
    """Stop the automatic attempts of an endpoint that was disabled or deleted (no commit)."""
    recording.end_pending(db.session.connection(), endpoint_id, reason)


def settle(timeout: float) -> bool:
    """Wait up to `timeout` s for this process's POSTs under way to be answered and recorded."""
    engine = current_app.extensions.get("tnt_engine")
    return engine is None or engine.lanes.settle(timeout)


def shutdown(timeout: float) -> None:
    """Stop sending (SIGTERM): give back what was claimed but not started, wait for the rest."""
    engine = current_app.extensions.get("tnt_engine")
    if engine is not None:
        engine.lanes.close(timeout)


def _engine() -> Engine:
    ext = current_app.extensions
    if "tnt_engine" not in ext:
        ext["tnt_engine"] = Engine(current_app._get_current_object())  # type: ignore[attr-defined]
    engine: Engine = ext["tnt_engine"]
    return engine


def _transport() -> Transport:
    """The web process's transport, for manual resends (a worker's engine has its own)."""
    ext = current_app.extensions
    if "tnt_transport" not in ext:
        ext["tnt_transport"] = new_transport(current_app)
    transport: Transport = ext["tnt_transport"]
    return transport
