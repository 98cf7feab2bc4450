"""Claims: which worker sends which delivery, for how long, and giving claims back.

A claim is a lease written on the delivery rows (`lease_expires_at`, `lease_token`): "this worker
sends these until then". Workers claim at once without sharing a row (`FOR UPDATE SKIP LOCKED`
on PostgreSQL; SQLite serialises writers), and a dead worker's claims come free when they expire.

A claimed delivery is sent only while the lease *as the database holds it* has room for the
whole POST (`EngineSettings.send_window`): a worker that was paused (a frozen VM, a stop-the-world
pause) after writing its claim, or inside the claim's transaction, finds its leases too short
and gives them back instead of sending what another worker may send too.
"""

import os
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    Integer,
    Table,
    Text,
    and_,
    any_,
    func,
    literal,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from .. import crypto
from ..clock import utcnow
from ..models import Delivery, Endpoint, Event, Message
from .outgoing import Outgoing, sign
from .settings import EngineSettings

_paused_once = False


def claim(
    conn: Connection,
    settings: EngineSettings,
    limit: int,
    ids: list[int] | None = None,
    *,
    due_only: bool = True,
    skip_endpoints: Collection[int] = (),
) -> list[Outgoing]:
    """Lease up to `limit` due, unclaimed deliveries (these ids only, if given) and load what
    sending them needs. Runs inside the caller's transaction on `conn`; call `ready` on the
    result after the commit."""
    now = utcnow()
    token = str(uuid.uuid4())
    d = Delivery.__table__
    pick = select(d.c.id).where(_unclaimed(d, now))
    if due_only:
        pick = pick.where(d.c.next_attempt_at <= now).order_by(d.c.next_attempt_at)
    if ids:
        pick = pick.where(d.c.id.in_(ids))
    if skip_endpoints:
        pick = pick.where(d.c.endpoint_id.not_in(skip_endpoints))
    pick = pick.limit(limit).with_for_update(skip_locked=True)
    claimed: list[int] = list(
        conn.execute(
            update(d)
            .where(d.c.id.in_(pick.scalar_subquery()))
            .values(lease_expires_at=now + timedelta(seconds=settings.lease), lease_token=token)
            .returning(d.c.id)
        ).scalars()
    )
    if not claimed:
        return []
    pause_here(settings, "in-claim")
    items = _load(conn, claimed)
    for o in items:
        o.token = token
    return items


def ready(items: list[Outgoing], settings: EngineSettings) -> tuple[list[Outgoing], list[Outgoing]]:
    """After the claim's commit: give each item the monotonic time by which its POST must start,
    from its lease as stored, and split off those whose lease has no room for a POST."""
    wall, mono = utcnow(), time.monotonic()
    keep: list[Outgoing] = []
    expired: list[Outgoing] = []
    for o in items:
        assert o.lease_expires_at is not None  # a claimed row has a lease
        left = (o.lease_expires_at - wall).total_seconds() - settings.send_window
        o.send_by = mono + left
        (keep if left > 0 else expired).append(o)
    return keep, expired


def release(conn: Connection, items: list[Outgoing]) -> None:
    """Give claimed deliveries back unsent (inside the caller's transaction). A claim that has
    already passed to another worker is left alone."""
    t = Delivery.__table__
    by_token: defaultdict[str, list[int]] = defaultdict(list)
    for o in items:
        by_token[o.token].append(o.delivery_id)
    for token, ids in by_token.items():
        conn.execute(
            update(t)
            .where(t.c.lease_token == token, among(conn, t.c.id, ids))
            .values(lease_expires_at=None, lease_token=None)
        )


def put_off(conn: Connection, endpoint_ids: list[int], seconds: float) -> None:
    """Make slow endpoints' due, unclaimed deliveries due again in `seconds`, so claims stop
    scanning past a backlog that cannot be sent yet."""
    now = utcnow()
    t = Delivery.__table__
    conn.execute(
        update(t)
        .where(
            t.c.endpoint_id.in_(endpoint_ids),
            t.c.next_attempt_at <= now,
            _unclaimed(t, now),
        )
        .values(next_attempt_at=now + timedelta(seconds=seconds))
    )


def count_lost(conn: Connection, settings: EngineSettings) -> int:
    """Deliveries due for `sweep_grace` or more and claimed by nobody: their wake-up was lost."""
    now = utcnow()
    t = Delivery.__table__
    return conn.execute(
        select(func.count())
        .select_from(t)
        .where(
            t.c.next_attempt_at <= now - timedelta(seconds=settings.sweep_grace), _unclaimed(t, now)
        )
    ).scalar_one()


def among(conn: Connection, column: ColumnElement[int], ids: list[int]) -> ColumnElement[bool]:
    """`column IN ids`; on PostgreSQL `= ANY(array)`, one parameter instead of one per id, so
    the statement's text (and its parsing, caching and planning) is the same for any batch."""
    if conn.dialect.name == "postgresql":
        return column == any_(literal(ids, ARRAY(Integer)))
    return column.in_(ids)


def _unclaimed(t: Table, now: datetime) -> ColumnElement[bool]:
    return or_(t.c.lease_expires_at.is_(None), t.c.lease_expires_at < now)


def _load(conn: Connection, ids: list[int]) -> list[Outgoing]:
    d, e, ev, m = (t.__table__ for t in (Delivery, Endpoint, Event, Message))
    active = and_(e.c.enabled.is_(True), e.c.deleted_at.is_(None))
    rows = conn.execute(  # in Outgoing's field order; the secret as stored, read per row below
        select(
            d.c.id,
            d.c.account_id,
            d.c.endpoint_id,
            e.c.url,
            type_coerce(e.c.secret, Text),
            active,
            d.c.uid,
            ev.c.type,
            ev.c.body,
            ev.c.message_id,
            m.c.mobile,
            d.c.status,
            d.c.auto_attempts,
            d.c.next_attempt_at,
            d.c.resend_pending,
            d.c.resend_requested_by_id,
            d.c.lease_expires_at,
        )
        .join(e, e.c.id == d.c.endpoint_id)
        .join(ev, ev.c.id == d.c.event_id)
        .outerjoin(m, m.c.id == ev.c.message_id)
        .where(among(conn, d.c.id, ids))
    ).all()
    items = [Outgoing(*r) for r in rows]
    for o in items:
        try:
            o.secret = crypto.read(o.secret)
        except crypto.SecretsKeyError:
            # Never sent unsigned, and no reason to hold up the rest of the claim: it fails
            # (and is retried) with the reason in the Logs until the key is put back.
            o.secret, o.unusable = (
                None,
                (
                    "Not sent: its signing secret cannot be decrypted "
                    "with TNT_SECRETS_KEY (see docs/security.md)"
                ),
            )
        sign(o)
    return items


def pause_here(settings: EngineSettings, point: str) -> None:
    """Fault injection for the pause tests: with TNT_FAULT=pause-<point>, the first time the
    process gets here with a claim in hand it stops itself (SIGSTOP), as a frozen VM would,
    until the test sends SIGCONT. Points: `in-claim` (inside the claim's transaction, its rows
    locked) and `after-claim` (just after its commit)."""
    global _paused_once
    if settings.fault == f"pause-{point}" and not _paused_once:
        _paused_once = True
        os.kill(os.getpid(), signal.SIGSTOP)
