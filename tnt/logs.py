"""The delivery log's read model: whose rows (Scope), which rows (LogQuery), one filter builder,
and the reads the Logs page and the API's delivery listing make with them.

Plain domain code: the dashboard and the API parse their input into a LogQuery and render what
comes back. Times are naive UTC (see tnt.clock).
"""
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import case, exists, func, select, text, tuple_
from sqlalchemy.orm import aliased

from . import queue
from .clock import utcnow
from .extensions import db
from .models import Account, Attempt, Delivery, Endpoint, Event, Message, User

STATUSES = ("pending", "retrying", "delivered", "failed")
PAGE = 50


@dataclass(frozen=True)
class Scope:
    """Whose rows a read may see: one account's, or every account's (support staff only).

    Build it with Scope.account(id) or Scope.all_accounts(); an account scope without an
    account id is an error, never "everything".
    """

    account_id: int | None
    everyone: bool = False

    def __post_init__(self):
        if self.everyone != (self.account_id is None):
            raise ValueError("a Scope is one account's (an id) or all accounts', not neither")

    @classmethod
    def account(cls, account_id: int) -> "Scope":
        return cls(account_id)

    @classmethod
    def all_accounts(cls) -> "Scope":
        return cls(None, everyone=True)


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
    """Where each filter looks on the table being listed (`of_message`: the condition for one
    message's rows)."""

    account_id: object
    endpoint_id: object
    event: object
    of_message: object
    mobile: object
    time: object


def _attempts_of_message(message_id: int):
    # A message has a handful of attempts: found through its events and their deliveries
    # (indexes those tables have anyway), so attempts need no message index of their own.
    return Attempt.delivery_id.in_(
        select(Delivery.id).join(Event, Event.id == Delivery.event_id)
        .where(Event.message_id == message_id).scalar_subquery())


# Attempts carry copies of the event type and mobile, so most Logs filters read one table; a
# delivery's live in its event and message.
ON_ATTEMPT = _Columns(Attempt.account_id, Attempt.endpoint_id, Attempt.event_type,
                      _attempts_of_message, Attempt.mobile, Attempt.started_at)
ON_DELIVERY = _Columns(Delivery.account_id, Delivery.endpoint_id, Event.type,
                       lambda message_id: Event.message_id == message_id, Message.mobile,
                       Delivery.created_at)


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
        where.append(on.mobile == q.mobile)
    return where


def _serial() -> None:
    """No parallel workers for the rest of this transaction (PostgreSQL).

    The planner picks them for a LIMIT query over millions of rows, but a page of 50 never
    gains from them, and starting them took 10-70 ms of a 1 ms query at 10 M attempts.
    """
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


# --- deliveries (the API's listing, bulk resend, the Logs page's queued rows) -----------------

def delivery_select(q: LogQuery, *columns):
    """SELECT `columns` FROM deliveries matching `q` (with their event and message joined)."""
    query = (select(*columns).select_from(Delivery)
             .join(Event, Event.id == Delivery.event_id)
             .outerjoin(Message, Message.id == Event.message_id)
             .where(*conditions(q, ON_DELIVERY)))
    if q.status:
        query = query.where(Delivery.status == q.status)
    return query


def deliveries(q: LogQuery, *, before_id: int | None = None, limit: int = PAGE) -> list:
    """(delivery, event, mobile) rows, newest first; `before_id` pages by id (keyset)."""
    _serial()
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
    """Deliveries waiting for their first attempt (status pending), newest first by id (ids
    follow creation order)."""
    _serial()
    query = (delivery_select(q, Delivery, Event, Message.mobile, Endpoint.url, Account.name)
             .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
             .join(Account, Account.id == Delivery.account_id))
    if before_id is not None:
        query = query.where(Delivery.id < before_id)
    rows = db.session.execute(query.order_by(Delivery.id.desc()).limit(limit)).all()
    return [QueuedRow(*row) for row in rows]


# --- attempts (the Logs page) ---------------------------------------------------------------

Cursor = tuple[datetime, int]  # (started_at, id) of the last row shown


def attempts(q: LogQuery, *, before: Cursor | None = None, limit: int = PAGE) -> list:
    """Logs rows, newest first by (started_at, id): the attempt, its delivery's status and next
    attempt, endpoint URL, test flag, who resent it, the account's name."""
    _serial()
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
        newest_first = (func.coalesce(Attempt.started_at, Attempt.started_at).desc(),
                        Attempt.id.desc())
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
        select(func.count()).select_from(pick.limit(STATUS_LOOKUP_MAX + 1).subquery()))
    if count <= STATUS_LOOKUP_MAX:
        return Attempt.delivery_id.in_(pick.scalar_subquery()), True
    # Many: a correlated EXISTS per attempt keeps both databases walking time; a join made
    # SQLite build a filter over every delivery first.
    same = aliased(Delivery)
    return exists().where(same.id == Attempt.delivery_id, same.status == q.status), False


def _attempt_rows():
    return (
        select(Attempt, Delivery.status, Delivery.next_attempt_at, Endpoint.url, Event.is_test,
               User.email, Account.name)
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


# --- what the last 24 hours look like ---------------------------------------------------------
# The chart and the Endpoints page's success rates count attempts per hour over 24 hour-long
# buckets: the current hour and the 23 before it. A past hour stops changing once its attempts
# are all recorded (within a claim's 2 minutes), so its counts are kept in Redis; a page view
# then counts only the last hour or so. Redis is a cache here: without it, everything is counted.

SETTLED = timedelta(minutes=5)
CACHE_TTL = 25 * 3600
log = logging.getLogger(__name__)


@dataclass
class HourBar:
    start: datetime
    ok: int
    failed: int


def _window(now: datetime) -> list[datetime]:
    """The starts of the 24 hours shown, oldest first."""
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    return [first + timedelta(hours=i) for i in range(24)]


def hourly_outcomes(scope: Scope, endpoint_id: int | None = None) -> list[HourBar]:
    """Attempts per hour by outcome over the last 24 h (24 bars, oldest first)."""
    key = f"{'all' if scope.everyone else scope.account_id}:{endpoint_id or ''}"
    where = conditions(LogQuery(scope, endpoint_id=endpoint_id), ON_ATTEMPT)
    now = utcnow()
    counts = _hourly({key: where}, now)[key]
    return [HourBar(h, *counts.get(h, (0, 0))) for h in _window(now)]


def success_rates(endpoint_ids: list[int]) -> dict[int, tuple[int, int]]:
    """{endpoint_id: (ok attempts, attempts)} over the chart's 24 hours."""
    groups = {f"e{eid}": [Attempt.endpoint_id == eid] for eid in endpoint_ids}
    out = {}
    for eid, counts in zip(endpoint_ids, _hourly(groups, utcnow()).values()):
        ok = sum(o for o, _ in counts.values())
        total = ok + sum(f for _, f in counts.values())
        if total:
            out[eid] = (ok, total)
    return out


def _hourly(groups: dict[str, list], now: datetime) -> dict[str, dict[datetime, tuple[int, int]]]:
    """{group key: {hour: (ok, failed)}} over the 24 hours, for each group's conditions."""
    hours = _window(now)
    settled = [h for h in hours if h + timedelta(hours=1) + SETTLED <= now]
    cached = _cache_get(list(groups), settled)
    out = {}
    for key, where in groups.items():
        known = cached.get(key, {})
        missing = [h for h in settled if h not in known]
        since = missing[0] if missing else hours[len(settled)]
        counted = _count_by_hour(where, since)
        _cache_put(key, {h: counted.get(h, (0, 0)) for h in missing})
        out[key] = known | counted
    return out


def _count_by_hour(where: list, since: datetime) -> dict[datetime, tuple[int, int]]:
    if db.engine.dialect.name == "postgresql":
        hour = func.date_trunc("hour", Attempt.started_at)
    else:
        hour = func.strftime("%Y-%m-%d %H:00:00", Attempt.started_at)
    rows = db.session.execute(
        select(hour, func.count(), func.sum(case((Attempt.ok, 1), else_=0)))
        .where(*where, Attempt.started_at >= since).group_by(hour)
    ).all()
    out = {}
    for start, total, ok in rows:
        if isinstance(start, str):
            start = datetime.fromisoformat(start)
        out[start.replace(tzinfo=None)] = (int(ok or 0), int(total) - int(ok or 0))
    return out


def _cache_key(key: str) -> str:
    return f"tnt:hourly:{key}"


def _cache_get(keys: list[str], hours: list[datetime]) -> dict[str, dict]:
    if not keys or not hours:
        return {}
    fields = [h.strftime("%Y%m%d%H") for h in hours]
    try:
        pipe = queue.redis().pipeline(transaction=False)
        for key in keys:
            pipe.hmget(_cache_key(key), fields)
        answers = pipe.execute()
    except RedisError as exc:
        log.warning("hourly counts cache unavailable: %s", exc)
        return {}
    out = {}
    for key, values in zip(keys, answers):
        out[key] = {h: tuple(int(n) for n in v.split(b":")) for h, v in zip(hours, values) if v}
    return out


def _cache_put(key: str, counts: dict[datetime, tuple[int, int]]) -> None:
    if not counts:
        return
    try:
        pipe = queue.redis().pipeline(transaction=False)
        pipe.hset(_cache_key(key), mapping={h.strftime("%Y%m%d%H"): f"{ok}:{failed}"
                                            for h, (ok, failed) in counts.items()})
        pipe.expire(_cache_key(key), CACHE_TTL)
        pipe.execute()
    except RedisError as exc:
        log.warning("hourly counts cache unavailable: %s", exc)
