"""Read-side queries for the dashboard pages (the Logs table, success rates, the chart).

The Logs list reads the Attempt table newest first by (started_at, id) and pages by keyset, so
every filter is an index range scan (see the indexes on Attempt and Delivery in tnt.models).
"""
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, exists, func, select, tuple_
from sqlalchemy.orm import aliased

from ..clock import NAIROBI, utcnow
from ..extensions import db
from ..models import Account, Attempt, Delivery, Endpoint, Event, Message, User
from ..phones import InvalidMobile, normalise_mobile

PAGE = 50
STATUSES = ("pending", "retrying", "delivered", "failed")
UTC = ZoneInfo("UTC")


@dataclass
class LogFilters:
    account_id: int | None = None
    status: str = ""
    endpoint_id: int | None = None
    event: str = ""
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""
    before: tuple[datetime, int] | None = None

    @classmethod
    def from_args(cls, args, account_id: int | None) -> "LogFilters":
        f = cls(account_id=account_id)
        f.status = args.get("status", "") if args.get("status") in STATUSES else ""
        endpoint = args.get("endpoint_id", "")
        f.endpoint_id = int(endpoint) if endpoint.isdigit() else None
        f.event = args.get("event", "")[:32]
        f.date_from = _date(args.get("from"))
        f.date_to = _date(args.get("to"))
        f.q = args.get("q", "").strip()[:40]
        f.before = decode_cursor(args.get("before", ""))
        return f

    def search(self) -> tuple[str, object] | None:
        """The search box: a message id (up to 9 digits) or a mobile number."""
        q = self.q.replace(" ", "")
        if not q:
            return None
        if q.isdigit() and len(q) <= 9:
            return "message_id", int(q)
        try:
            return "mobile", normalise_mobile(q)
        except InvalidMobile:
            return "nothing", None


def _date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _utc(day: date) -> datetime:
    """Midnight in Nairobi at the start of `day`, as naive UTC."""
    return datetime.combine(day, time(), NAIROBI).astimezone(UTC).replace(tzinfo=None)


def encode_cursor(attempt: Attempt) -> str:
    return f"{attempt.started_at.isoformat()}_{attempt.id}"


def decode_cursor(raw: str) -> tuple[datetime, int] | None:
    match = re.fullmatch(r"([0-9T:.\-]{19,26})_(\d{1,18})", raw or "")
    if not match:
        return None
    try:
        return datetime.fromisoformat(match.group(1)), int(match.group(2))
    except ValueError:
        return None


def log_rows(f: LogFilters, limit: int = PAGE) -> list:
    """Attempts newest first with what a Logs row shows; `limit + 1` rows tell if there is more."""
    where = []
    if f.account_id is not None:
        where.append(Attempt.account_id == f.account_id)
    if f.endpoint_id is not None:
        where.append(Attempt.endpoint_id == f.endpoint_id)
    if f.event:
        where.append(Attempt.event_type == f.event)
    if f.date_from:
        where.append(Attempt.started_at >= _utc(f.date_from))
    if f.date_to:
        where.append(Attempt.started_at < _utc(f.date_to + timedelta(days=1)))
    search = f.search()
    if search:
        kind, value = search
        if kind == "message_id":
            where.append(Attempt.message_id == value)
        elif kind == "mobile":
            where.append(Attempt.mobile == value)
        else:
            where.append(Attempt.id < 0)
    if f.before:
        where.append(tuple_(Attempt.started_at, Attempt.id) < tuple_(*f.before))
    newest_first = (Attempt.started_at.desc(), Attempt.id.desc())
    if f.status:
        condition, by_delivery = _status_filter(f)
        where.append(condition)
        if by_delivery:
            # Few deliveries: look their attempts up by delivery id and sort those; an
            # expression key stops the planner walking the whole time index instead.
            newest_first = (func.coalesce(Attempt.started_at, Attempt.started_at).desc(),
                            Attempt.id.desc())
    query = (
        _log_rows()
        .where(*where)
        .order_by(*newest_first)
        .limit(limit + 1)
    )
    return db.session.execute(query).all()


# Up to this many deliveries in a status, the status filter looks their attempts up by
# delivery id; more, and they are common enough that walking the attempts newest first and
# checking each one's delivery finds a page quickly. (Pending and retrying are transient and
# few; delivered and failed pile up but then make up much of the log.)
STATUS_LOOKUP_MAX = 5000


def _status_filter(f: LogFilters):
    """(condition, by_delivery): the status condition, and whether to sort the few matching
    attempts rather than walk the time index."""
    pick = select(Delivery.id).where(Delivery.status == f.status)
    if f.account_id is not None:
        pick = pick.where(Delivery.account_id == f.account_id)
    if f.endpoint_id is not None:
        pick = pick.where(Delivery.endpoint_id == f.endpoint_id)
    few = db.session.scalar(
        select(func.count()).select_from(pick.limit(STATUS_LOOKUP_MAX + 1).subquery())
    ) <= STATUS_LOOKUP_MAX
    if few:  # fetch their attempts by delivery id, then sort those
        return Attempt.delivery_id.in_(pick.scalar_subquery()), True
    # Many: walk attempts newest first and check each one's delivery. A correlated EXISTS
    # keeps both databases on that plan; a condition on the joined delivery made SQLite build
    # a filter over every delivery first (~300 ms at a million rows), an IN list of them too.
    same = aliased(Delivery)
    return exists().where(same.id == Attempt.delivery_id, same.status == f.status), False


def _log_rows():
    """A Logs row: the attempt, its delivery's state, endpoint URL, test flag, who resent it
    and the account."""
    return (
        select(Attempt, Delivery.status, Delivery.next_attempt_at, Endpoint.url, Event.is_test,
               User.email, Account.name)
        .join(Delivery, Delivery.id == Attempt.delivery_id)
        .join(Endpoint, Endpoint.id == Attempt.endpoint_id)
        .join(Event, Event.id == Delivery.event_id)
        .join(Account, Account.id == Attempt.account_id)
        .outerjoin(User, User.id == Attempt.requested_by_id)
    )


def latest_attempt_of(delivery_id: int) -> int | None:
    return db.session.scalar(select(Attempt.id).where(Attempt.delivery_id == delivery_id)
                             .order_by(Attempt.id.desc()).limit(1))


def log_row(attempt_id: int, account_id: int | None):
    """One Logs row by attempt id, within account_id (None: any)."""
    query = _log_rows().where(Attempt.id == attempt_id)
    if account_id is not None:
        query = query.where(Attempt.account_id == account_id)
    return db.session.execute(query).first()


def success_rates(endpoint_ids: list[int]) -> dict[int, tuple[int, int]]:
    """{endpoint_id: (ok attempts, attempts)} over the last 24 h."""
    if not endpoint_ids:
        return {}
    since = utcnow() - timedelta(hours=24)
    rows = db.session.execute(
        select(Attempt.endpoint_id, func.count(), func.sum(case((Attempt.ok, 1), else_=0)))
        .where(Attempt.endpoint_id.in_(endpoint_ids), Attempt.started_at >= since)
        .group_by(Attempt.endpoint_id)
    ).all()
    return {eid: (int(ok or 0), int(total)) for eid, total, ok in rows}


@dataclass
class HourBar:
    start: datetime
    ok: int
    failed: int


def hourly_outcomes(account_id: int | None, endpoint_id: int | None = None) -> list[HourBar]:
    """Attempts per hour by outcome over the last 24 h (24 bars, oldest first)."""
    now = utcnow()
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    where = [Attempt.started_at >= first]
    if account_id is not None:
        where.append(Attempt.account_id == account_id)
    if endpoint_id is not None:
        where.append(Attempt.endpoint_id == endpoint_id)
    if db.engine.dialect.name == "postgresql":
        hour = func.date_trunc("hour", Attempt.started_at)
    else:
        hour = func.strftime("%Y-%m-%d %H:00:00", Attempt.started_at)
    rows = db.session.execute(
        select(hour, Attempt.ok, func.count()).where(*where).group_by(hour, Attempt.ok)
    ).all()
    bars = {first + timedelta(hours=i): HourBar(first + timedelta(hours=i), 0, 0)
            for i in range(24)}
    for start, ok, count in rows:
        if isinstance(start, str):
            start = datetime.fromisoformat(start)
        bar = bars.get(start.replace(tzinfo=None))
        if bar is None:
            continue
        if ok:
            bar.ok += count
        else:
            bar.failed += count
    return list(bars.values())


def message_events(message_ids: list[int]) -> dict[int, list[str]]:
    if not message_ids:
        return {}
    out: dict[int, list[str]] = {}
    for mid, etype in db.session.execute(
        select(Event.message_id, Event.type).where(Event.message_id.in_(message_ids))
        .order_by(Event.id)
    ):
        out.setdefault(mid, []).append(etype)
    return out


def messages_for(account_id: int | None, limit: int = 100) -> list[Message]:
    query = select(Message).where(Message.is_test.is_(False)).order_by(Message.id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(Message.account_id == account_id)
    return list(db.session.scalars(query))


def endpoints_for_filter(account_id: int | None) -> list[Endpoint]:
    """Endpoints to offer in the Logs filter, deleted ones too (their attempts stay)."""
    query = select(Endpoint).order_by(Endpoint.id)
    if account_id is not None:
        query = query.where(Endpoint.account_id == account_id)
    return list(db.session.scalars(query.limit(500)))


