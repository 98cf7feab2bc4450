"""Webhooks -> Logs: every attempt (and every delivery still queued), filters in the URL, expand a
row, resend, keyset paging. The reads are tnt.logs'; this module parses the page's input."""

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import MAX_ID, hourly, logs
from .. import delivery as engine
from ..clock import NAIROBI
from ..extensions import db
from ..models import EVENTS, Delivery
from ..phones import for_search
from ..states import DeliveryStatus
from . import queries
from .scope import list_scope, owner_scope

bp = Blueprint("logs", __name__, url_prefix="/logs")

UTC = ZoneInfo("UTC")
# The dashboard offers Resend on these; a retrying one is sent now, its retries stand (or stop
# if it is delivered). Pending ones are about to be sent anyway.
RESENDABLE = (DeliveryStatus.FAILED, DeliveryStatus.RETRYING)


@bp.before_request
@login_required
def _signed_in():
    pass


@dataclass
class LogForm:
    """The filter form as typed (echoed back into the page), and the LogQuery it means."""

    status: str = ""
    endpoint_id: int | None = None
    event: str = ""
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""

    @classmethod
    def from_args(cls, args) -> "LogForm":
        return cls(
            status=args.get("status", "") if args.get("status") in logs.STATUSES else "",
            endpoint_id=_id(args.get("endpoint_id", "")),
            event=args.get("event", "")[:32],
            date_from=_date(args.get("from")),
            date_to=_date(args.get("to")),
            q=args.get("q", "").strip()[:40],
        )

    def query(self, scope: logs.Scope) -> logs.LogQuery:
        """The search box holds a message id (up to 9 digits) or a mobile number; the dates are
        whole days in Nairobi."""
        text = self.q.replace(" ", "")
        message_id = int(text) if text.isdigit() and len(text) <= 9 else None
        return logs.LogQuery(
            scope,
            status=self.status or None,
            endpoint_id=self.endpoint_id,
            event=self.event or None,
            since=_utc(self.date_from) if self.date_from else None,
            until=_utc(self.date_to + timedelta(days=1)) if self.date_to else None,
            message_id=message_id,
            mobile=for_search(text) if text and message_id is None else None,
        )


# The Outcome cell's label for a failed attempt, by how its reason (tnt.delivery.policy's or
# tnt.transport's) begins; the whole reason is the cell's title and is in the expanded row.
SHORT_REASONS = (
    ("Timed out", "timeout"),
    ("Connection refused", "refused"),
    ("Refused: ", "blocked"),  # the address is one netguard forbids
    ("TLS error", "TLS"),
    ("Could not resolve host", "DNS"),
    ("Connection reset", "reset"),
    ("Connection closed", "closed"),
    ("Connection failed", "unreachable"),
    ("Invalid HTTP response", "bad response"),
    ("Response header", "bad response"),
    ("Too many", "bad response"),
    ("No response", "no response"),
    ("Not sent", "not sent"),
    ("Endpoint disabled or deleted", "not sent"),
)


@bp.app_template_filter()
def short_reason(reason: str | None, status_code: int | None = None) -> str:
    """ "503" for an answer that was not a 2xx, "timeout", "TLS", ... for the rest."""
    reason = reason or ""
    if status_code and reason.startswith("HTTP "):
        return str(status_code)
    return next((short for start, short in SHORT_REASONS if reason.startswith(start)), "error")


def _id(raw: str) -> int | None:
    """An id from the URL; one too big for the database is 0, which no row has (not a 500)."""
    if not raw.isdigit():
        return None
    return int(raw) if int(raw) <= MAX_ID else 0


def _date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _utc(day: date) -> datetime:
    """Midnight in Nairobi at the start of `day`, as naive UTC."""
    return datetime.combine(day, time(), NAIROBI).astimezone(UTC).replace(tzinfo=None)


def encode_cursor(started_at: datetime, row_id: int) -> str:
    return f"{started_at.isoformat()}_{row_id}"


def decode_cursor(raw: str) -> logs.Cursor | None:
    match = re.fullmatch(r"([0-9T:.\-]{19,26})_(\d{1,18})", raw or "")
    if not match:
        return None
    try:
        return datetime.fromisoformat(match.group(1)), min(int(match.group(2)), MAX_ID)
    except ValueError:
        return None


@bp.get("")
def index():
    scope = list_scope()
    form = LogForm.from_args(request.args)
    q = form.query(scope)
    rows, queued, more_url = _page(q)
    # The unfiltered log of attempts says when deliveries wait for their first one. (Counting
    # them under other filters could read every queued delivery of the account.)
    waiting = logs.queued_count(scope) if q == logs.LogQuery(scope) else 0
    pending_args = {k: v for k, v in request.args.items() if k != "before"} | {
        "status": DeliveryStatus.PENDING
    }
    return render_template(
        "logs/index.html",
        rows=rows,
        queued=queued,
        more_url=more_url,
        f=form,
        waiting=waiting,
        waiting_url=url_for("logs.index", **pending_args),
        statuses=logs.STATUSES,
        events=EVENTS,
        resendable=RESENDABLE,
        endpoints=queries.endpoints_for_filter(scope),
    )


@bp.get("/chart")
def chart():
    bars = hourly.hourly_outcomes(list_scope(), _id(request.args.get("endpoint_id", "")))
    peak = max([b.ok + b.failed for b in bars] + [1])
    return render_template("logs/_chart.html", bars=bars, peak=peak)


@bp.get("/rows")
def rows():
    """The next page of rows (the "Load more" button swaps itself for these)."""
    rows_, queued, more_url = _page(LogForm.from_args(request.args).query(list_scope()))
    return render_template(
        "logs/_rows.html", rows=rows_, queued=queued, more_url=more_url, resendable=RESENDABLE
    )


@bp.get("/attempts/<int:attempt_id>")
def detail(attempt_id: int):
    row = logs.attempt_row(attempt_id, owner_scope())
    if row is None:
        abort(404, "No such attempt.")
    attempt = row[0]
    d = attempt.delivery
    # The headers this attempt carried, its signature as sent (not one made with today's secret)
    headers = engine.sent_headers(d.event.type, d.uid, attempt.signature)
    try:
        response_headers = json.loads(attempt.response_headers or "{}")
    except ValueError:
        response_headers = {}
    return render_template(
        "logs/_detail.html",
        a=attempt,
        d=d,
        url=row[3],
        headers=headers,
        body=d.event.body.decode("utf-8", "replace"),
        response_headers=response_headers,
    )


@bp.post("/deliveries/<int:delivery_id>/resend")
def resend(delivery_id: int):
    """One manual attempt now; answers the new attempt's row and the clicked row, updated."""
    scope = owner_scope()
    new = engine.resend(delivery_id, scope=scope, requested_by=current_user.id)
    db.session.expire_all()
    new_row = logs.attempt_row(new.id, scope) if new else None
    shown = request.args.get("attempt", "")
    old_row = logs.attempt_row(int(shown), scope) if shown.isdigit() else None
    if old_row is not None and old_row[0].delivery_id != delivery_id:
        old_row = None
    rows_ = [r for r in (new_row, old_row) if r is not None]
    if request.headers.get("HX-Request"):
        return render_template(
            "logs/_rows.html",
            rows=rows_,
            queued=False,
            more_url=None,
            fresh=new.id,
            resendable=RESENDABLE,
        )
    d = db.session.get(Delivery, delivery_id)
    args = {"account": d.account_id} if current_user.is_support else {}
    return redirect(url_for("logs.index", **args))


def _page(q: logs.LogQuery):
    """A page of rows, whether they are queued deliveries (status pending: no attempt yet) or
    attempts, and the URL of the next page (keyset cursor), if there is one."""
    queued = q.status == DeliveryStatus.PENDING
    before = decode_cursor(request.args.get("before", ""))
    if queued:
        rows_ = logs.queued(q, before_id=before[1] if before else None, limit=logs.PAGE + 1)
    else:
        rows_ = logs.attempts(q, before=before, limit=logs.PAGE + 1)
    page = rows_[: logs.PAGE]
    more_url = None
    if len(rows_) > logs.PAGE:
        last = page[-1]
        args = request.args.to_dict()
        args["before"] = (
            encode_cursor(last.delivery.created_at, last.delivery.id)
            if queued
            else encode_cursor(last[0].started_at, last[0].id)
        )
        more_url = url_for("logs.rows", **args)
    return page, queued, more_url
