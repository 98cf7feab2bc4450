"""Small read-side queries for the dashboard's Messages page and the Logs page's endpoint filter.

The log itself (rows, filters, the chart, success rates) is read through tnt.logs.
"""

from sqlalchemy import select

from ..extensions import db
from ..logs import Scope
from ..models import Endpoint, Event, Message


def message_events(message_ids: list[int]) -> dict[int, list[str]]:
    if not message_ids:
        return {}
    out: dict[int, list[str]] = {}
    for mid, etype in db.session.execute(
        select(Event.message_id, Event.type)
        .where(Event.message_id.in_(message_ids))
        .order_by(Event.id)
    ):
        out.setdefault(mid, []).append(etype)
    return out


def messages_for(scope: Scope, limit: int = 100) -> list[Message]:
    query = (
        select(Message).where(Message.is_test.is_(False)).order_by(Message.id.desc()).limit(limit)
    )
    if not scope.everyone:
        query = query.where(Message.account_id == scope.account_id)
    return list(db.session.scalars(query))


def endpoints_for_filter(scope: Scope) -> list[Endpoint]:
    """Endpoints to offer in the Logs filter, deleted ones too (their attempts stay)."""
    query = select(Endpoint).order_by(Endpoint.id)
    if not scope.everyone:
        query = query.where(Endpoint.account_id == scope.account_id)
    return list(db.session.scalars(query.limit(500)))
