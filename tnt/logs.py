"""The delivery log's read model: whose rows (Scope, tnt.scope's), which rows (LogQuery), one
filter builder, and the reads the Logs page and the API's delivery listing make with them (the
24 h counts are tnt.hourly's).

Plain domain code: the dashboard and the API parse their input into a LogQuery and render what
comes back. Times are naive UTC (see tnt.clock).
"""

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import exists, func, select, text, tuple_
from sqlalchemy.orm import aliased

from .extensions import db
from .models import Account, Attempt, Delivery, Endpoint, Event, Message, User
from .scope import Scope as Scope  # re-exported: logs.Scope is tnt.scope.Scope
from .states import DeliveryStatus

STATUSES = tuple(DeliveryStatus)
PAGE = 50


@dataclass(frozen=True)
class LogQuery:
    """Which deliveries (or attempts) to list. Every filter is optional except the scope.

    `since`/`until` bound an attempt's start (Logs rows) or a delivery's creation (deliveries);
    `mobile` is compared as stored (normalised), so a number that is not valid matches nothing.
    """

    scope: Scope
    status: str | None = None
    endpoint_id: int | None = None
    event: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    message_id: int | None = None
    mobile: str | None = None


@dataclass(frozen=True)
class _Columns:
    """Where each filter looks on the table being listed (`of_message`, `to_mobile`: the
    condition for one message's rows, one mobile's)."""

    account_id: object
    endpoint_id: object
    event: object
    of_message: object
    to_mobile: object
    time: object


def _attempts_of_message(message_id: int):
    # A message has a handful of attempts: found through its events and their deliveries
    # (indexes those tables have anyway), so attempts need no message index of their own.
    return Attempt.delivery_id.in_(
        select(Delivery.id)
        .join(Event, Event.id == Delivery.event_id)
        .where(Event.message_id == message_id)
        .scalar_subquery()
    )


def _deliveries_to_mobile(mobile: str):
    # From the mobile's messages to their events: a condition on the joined message would walk
    # every delivery of the account looking for it.
    return Event.message_id.in_(
        select(Message.id).where(Message.mobile == mobile).scalar_subquery()
    )


# Attempts carry copies of the event type and mobile, so most Logs filters read one table; a
# delivery's live in its event and message.
ON_ATTEMPT = _Columns(
    Attempt.account_id,
    Attempt.endpoint_id,
    Attempt.event_type,
    _attempts_of_message,
    lambda mobile: Attempt.mobile == mobile,
    Attempt.started_at,
)
ON_DELIVERY = _Columns(
    Delivery.account_id,
    Delivery.endpoint_id,
    Event.type,
    lambda message_id: Event.message_id == message_id,
    _deliveries_to_mobile,
    Delivery.created_at,
)


def conditions(q: LogQuery, on: _Columns) -> list:
    """The filter builder: `q`'s scope and filters (all but status) as WHERE conditions."""
    where = [] if q.scope.everyone else [on.account_id == q.scope.account_id]
    if q.endpoint_id is not None:
        where.append(on.endpoint_id == q.endpoint_id)
    if q.event:
        where.append(on.event == q.event)
    if q.since is not None:
        where.append(on.time >= q.since)
    if q.until is not None:
        where.append(on.time < q.until)
    if q.message_id is not None:
        where.append(on.of_message(q.message_id))
    if q.mobile:
        where.append(on.to_mobile(q.mobile))
    return where


def plain_plans() -> None:
    """No parallel workers and no JIT for the rest of this transaction (PostgreSQL).

    The planner picks both for queries over millions of rows, but a page of 50 rows or a 24 h
    count never gains from them: at 10 M attempts starting workers took 10-70 ms of a 1 ms
    query, and compiling added about 20 ms to a 45 ms count.
    """
    if db.engine.dialect.name == "postgresql":
        db.session.execute(
            text(
                "SELECT set_config('max_parallel_workers_per_gather', '0', true),"
                " set_config('jit', 'off', true)"
            )
        )


# --- deliveries (the API's listing, bulk resend, the Logs page's queued rows) -----------------


def delivery_select(q: LogQuery, *columns):
    """SELECT `columns` FROM deliveries matching `q` (with their event and message joined)."""
    query = (
        select(*columns)
        .select_from(Delivery)
        .join(Event, Event.id == Delivery.event_id)
        .outerjoin(Message, Message.id == Event.message_id)
        .where(*conditions(q, ON_DELIVERY))
    )
    if q.status:
        query = query.where(Delivery.status == q.status)
    return query


def deliveries(q: LogQuery, *, before_id: int | None = None, limit: int = PAGE) -> list:
    """(delivery, event, mobile) rows, newest first; `before_id` pages by id (keyset)."""
    plain_plans()
    query = delivery_select(q, Delivery, Event, Message.mobile)
    if before_id is not None:
        query = query.where(Delivery.id < before_id)
    return list(db.session.execute(query.order_by(Delivery.id.desc()).limit(limit)).all())


@dataclass
class QueuedRow:
    """A Logs row for a delivery that has had no attempt yet."""

    delivery: Delivery
    event: Event
    mobile: str | None
    url: str
    account_name: str


def queued(q: LogQuery, *, before_id: int | None = None, limit: int = PAGE) -> list[QueuedRow]:
    """Deliveries matching `q` that wait for their first attempt (status pending), newest
    first by id (ids follow creation order)."""
    plain_plans()
    q = replace(q, status=DeliveryStatus.PENDING)
    query = (
        delivery_select(q, Delivery, Event, Message.mobile, Endpoint.url, Account.name)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .join(Account, Account.id == Delivery.account_id)
    )
    if before_id is not None:
        query = query.where(Delivery.id < before_id)
    rows = db.session.execute(query.order_by(Delivery.id.desc()).limit(limit)).all()
    return [QueuedRow(*row) for row in rows]


def queued_count(scope: Scope, most: int = 1000) -> int:
    """How many of `scope`'s deliveries wait for their first attempt, counting up to `most`."""
    pick = (
        select(Delivery.id)
        .where(*conditions(LogQuery(scope), ON_DELIVERY))
        .where(Delivery.status == DeliveryStatus.PENDING)
        .limit(most)
    )
    return db.session.scalar(select(func.count()).select_from(pick.subquery()))


# --- attempts (the Logs page) ---------------------------------------------------------------

Cursor = tuple[datetime, int]  # (started_at, id) of the last row shown


def attempts(q: LogQuery, *, before: Cursor | None = None, limit: int = PAGE) -> list:
    """Logs rows, newest first by (started_at, id): the attempt, its delivery's status and next
    attempt, endpoint URL, test flag, who resent it, the account's name."""
    plain_plans()
    where = conditions(q, ON_ATTEMPT)
    if before:
        where.append(tuple_(Attempt.started_at, Attempt.id) < tuple_(*before))
    few = q.message_id is not None
    if q.status:
        condition, few_in_status = _status_condition(q)
        where.append(condition)
        few = few or few_in_status
    newest_first = (Attempt.started_at.desc(), Attempt.id.desc())
    if few:
        # Look the few deliveries' attempts up by delivery id and sort those; an expression
        # key stops the planner walking the whole time index instead.
        newest_first = (
            func.coalesce(Attempt.started_at, Attempt.started_at).desc(),
            Attempt.id.desc(),
        )
    query = _attempt_rows().where(*where).order_by(*newest_first).limit(limit)
    return db.session.execute(query).all()


# Up to this many deliveries in a status, the status filter looks their attempts up by
# delivery id; more, and they are common enough that walking the attempts newest first and
# checking each one's delivery finds a page quickly.
STATUS_LOOKUP_MAX = 5000


def _status_condition(q: LogQuery):
    """(condition, few): the status condition on attempts, and whether few deliveries match
    (then their attempts are fetched by delivery id rather than found by walking time)."""
    pick = select(Delivery.id).where(Delivery.status == q.status)
    if not q.scope.everyone:
        pick = pick.where(Delivery.account_id == q.scope.account_id)
    if q.endpoint_id is not None:
        pick = pick.where(Delivery.endpoint_id == q.endpoint_id)
    count = db.session.scalar(
        select(func.count()).select_from(pick.limit(STATUS_LOOKUP_MAX + 1).subquery())
    )
    if count <= STATUS_LOOKUP_MAX:
        return Attempt.delivery_id.in_(pick.scalar_subquery()), True
    # Many: a correlated EXISTS per attempt keeps both databases walking time; a join made
    # SQLite build a filter over every delivery first.
    same = aliased(Delivery)
    return exists().where(same.id == Attempt.delivery_id, same.status == q.status), False


def _attempt_rows():
    return (
        select(
            Attempt,
            Delivery.status,
            Delivery.next_attempt_at,
            Endpoint.url,
            Event.is_test,
            User.email,
            Account.name,
        )
        .join(Delivery, Delivery.id == Attempt.delivery_id)
        .join(Endpoint, Endpoint.id == Attempt.endpoint_id)
        .join(Event, Event.id == Delivery.event_id)
        .join(Account, Account.id == Attempt.account_id)
        .outerjoin(User, User.id == Attempt.requested_by_id)
    )


def attempt_row(attempt_id: int, scope: Scope):
    """One Logs row by attempt id, or None outside `scope`."""
    query = _attempt_rows().where(Attempt.id == attempt_id)
    if not scope.everyone:
        query = query.where(Attempt.account_id == scope.account_id)
    return db.session.execute(query).first()
