"""Attempts per hour and outcome over the last 24 hours: the Logs chart and the Endpoints page's
success rates.

Both count 24 hour-long buckets: the current hour and the 23 before it. A past hour stops
changing once its attempts are all recorded (within a claim's 2 minutes), so its counts are
kept in Redis and a page view counts only the last hour or so. Redis is only a cache here:
without it, everything is counted.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import case, func, select

from . import queue
from .clock import utcnow
from .extensions import db
from .logs import ON_ATTEMPT, LogQuery, Scope, conditions, plain_plans
from .models import Attempt

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
    for eid, counts in zip(endpoint_ids, _hourly(groups, utcnow()).values(), strict=False):
        ok = sum(o for o, _ in counts.values())
        total = ok + sum(f for _, f in counts.values())
        if total:
            out[eid] = (ok, total)
    return out


def _hourly(groups: dict[str, list], now: datetime) -> dict[str, dict[datetime, tuple[int, int]]]:
    """{group key: {hour: (ok, failed)}} over the 24 hours, for each group's conditions."""
    hours = _window(now)
    settled = settled_hours(now)
    cached = _cache_get(list(groups), settled)
    plain_plans()
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
        .where(*where, Attempt.started_at >= since)
        .group_by(hour)
    ).all()
    out = {}
    for start, total, ok in rows:
        if isinstance(start, str):
            start = datetime.fromisoformat(start)
        out[start.replace(tzinfo=None)] = (int(ok or 0), int(total) - int(ok or 0))
    return out


def _cache_key(key: str) -> str:
    return f"tnt:hourly:{key}"


def cache_field(hour: datetime) -> str:
    """An hour's field in a group's Redis hash."""
    return hour.strftime("%Y%m%d%H")


def settled_hours(now: datetime) -> list[datetime]:
    """The hours of the window that can no longer change, oldest first."""
    return [h for h in _window(now) if h + timedelta(hours=1) + SETTLED <= now]


def _cache_get(keys: list[str], hours: list[datetime]) -> dict[str, dict]:
    if not keys or not hours:
        return {}
    fields = [cache_field(h) for h in hours]
    try:
        pipe = queue.redis().pipeline(transaction=False)
        for key in keys:
            pipe.hmget(_cache_key(key), fields)
        answers = pipe.execute()
    except RedisError as exc:
        log.warning("hourly counts cache unavailable: %s", exc)
        return {}
    out = {}
    for key, values in zip(keys, answers, strict=False):
        out[key] = {
            h: tuple(int(n) for n in v.split(b":"))
            for h, v in zip(hours, values, strict=False)
            if v
        }
    return out


def _cache_put(key: str, counts: dict[datetime, tuple[int, int]]) -> None:
    if not counts:
        return
    try:
        pipe = queue.redis().pipeline(transaction=False)
        pipe.hset(
            _cache_key(key),
            mapping={cache_field(h): f"{ok}:{failed}" for h, (ok, failed) in counts.items()},
        )
        pipe.expire(_cache_key(key), CACHE_TTL)
        pipe.execute()
    except RedisError as exc:
        log.warning("hourly counts cache unavailable: %s", exc)
