"""Operations: `/metrics` for Prometheus (a bearer token) and the System page for support staff."""

import hmac

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import func, select

from .. import metrics
from ..extensions import csrf, db
from ..models import Account, Delivery, Endpoint
from ..states import DeliveryStatus

bp = Blueprint("system", __name__)
csrf.exempt(bp)  # GETs only; /metrics authenticates with a bearer token, not a cookie


@bp.get("/metrics")
def scrape():
    """Prometheus exposition, for a scraper holding TNT_METRICS_TOKEN (404 while it is unset)."""
    token = current_app.config.get("TNT_METRICS_TOKEN") or ""
    if not token:
        abort(404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        return Response(
            "Send the metrics token: Authorization: Bearer <TNT_METRICS_TOKEN>\n",
            401,
            {
                "WWW-Authenticate": 'Bearer realm="metrics"',
                "Content-Type": "text/plain; charset=utf-8",
            },
        )
    return Response(metrics.exposition(), mimetype="text/plain; version=0.0.4")


@bp.get("/system")
@login_required
def index():
    """Support staff: the backlog, the workers, deliveries per minute, endpoints failing now."""
    if not current_user.is_support:
        abort(404)
    minutes = metrics.per_minute(60)
    peak = max([m.ok + m.failed for m in minutes] + [1])
    return render_template(
        "system/index.html",
        backlog=metrics.backlog(),
        workers=metrics.workers(),
        minutes=minutes,
        peak=peak,
        failing=failing_endpoints(),
        disabled=metrics.disabled_endpoints(),
    )


def failing_endpoints(limit: int = 20) -> list:
    """Endpoints with deliveries waiting for a retry now, across accounts, most first:
    (endpoint, account name, retrying, oldest retry due, a last error)."""
    rows = (
        select(
            Delivery.endpoint_id,
            func.count(),
            func.min(Delivery.next_attempt_at),
            func.max(Delivery.last_error),
        )
        .where(Delivery.next_attempt_at.is_not(None), Delivery.status == DeliveryStatus.RETRYING)
        .group_by(Delivery.endpoint_id)
        .order_by(func.count().desc())
        .limit(limit)
    ).subquery()
    return db.session.execute(
        select(Endpoint, Account.name, rows.c[1], rows.c[2], rows.c[3])
        .join(rows, rows.c.endpoint_id == Endpoint.id)
        .join(Account, Account.id == Endpoint.account_id)
        .order_by(rows.c[1].desc())
    ).all()
