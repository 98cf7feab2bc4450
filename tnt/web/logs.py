"""Webhooks -> Logs: every attempt, filters in the URL, expand a row, resend, keyset paging."""
import json
from types import SimpleNamespace

from flask import Blueprint, abort, render_template, request, url_for
from flask_login import current_user, login_required

from .. import delivery as engine
from ..extensions import db
from ..models import EVENTS, Delivery
from . import queries
from .scope import list_scope, owner_scope

bp = Blueprint("logs", __name__, url_prefix="/logs")


@bp.before_request
@login_required
def _signed_in():
    pass


@bp.get("")
def index():
    account_id = list_scope()
    f = queries.LogFilters.from_args(request.args, account_id)
    rows, more, more_url = _page(f)
    return render_template(
        "logs/index.html", rows=rows, more=more, more_url=more_url, f=f, statuses=queries.STATUSES, events=EVENTS,
        endpoints=queries.endpoints_for_filter(account_id), account_id=account_id,
    )


@bp.get("/chart")
def chart():
    account_id = list_scope()
    endpoint = request.args.get("endpoint_id", "")
    bars = queries.hourly_outcomes(account_id, int(endpoint) if endpoint.isdigit() else None)
    peak = max([b.ok + b.failed for b in bars] + [1])
    return render_template("logs/_chart.html", bars=bars, peak=peak)


@bp.get("/rows")
def rows():
    """The next page of rows (the "Load more" button swaps itself for these)."""
    f = queries.LogFilters.from_args(request.args, list_scope())
    rows_, more, more_url = _page(f)
    return render_template("logs/_rows.html", rows=rows_, more=more, more_url=more_url, f=f)


@bp.get("/attempts/<int:attempt_id>")
def detail(attempt_id: int):
    row = queries.log_row(attempt_id, owner_scope())
    if row is None:
        abort(404, "No such attempt.")
    attempt = row[0]
    d = attempt.delivery
    sent = SimpleNamespace(event_type=d.event.type, uid=d.uid, secret=d.endpoint.secret,
                           body=d.event.body)
    # The headers we send (tnt.delivery builds them); the secret itself is never shown.
    headers = engine.request_headers(sent)
    try:
        response_headers = json.loads(attempt.response_headers or "{}")
    except ValueError:
        response_headers = {}
    return render_template("logs/_detail.html", a=attempt, d=d, url=row[3], headers=headers,
                           body=d.event.body.decode("utf-8", "replace"),
                           response_headers=response_headers)


@bp.post("/deliveries/<int:delivery_id>/resend")
def resend(delivery_id: int):
    """One manual attempt now; answers the new attempt's row and the clicked row, updated."""
    new = engine.resend(delivery_id, account_id=owner_scope(), requested_by=current_user.id)
    db.session.expire_all()
    new_row = queries.log_row(new.id, None) if new else None
    shown = request.args.get("attempt", "")
    old_row = queries.log_row(int(shown), None) if shown.isdigit() else None
    if old_row is not None and old_row[0].delivery_id != delivery_id:
        old_row = None
    rows_ = [r for r in (new_row, old_row) if r is not None]
    if request.headers.get("HX-Request"):
        return render_template("logs/_rows.html", rows=rows_, more=False, f=None, fresh=new.id)
    return _back_to_logs(delivery_id)


def _back_to_logs(delivery_id: int):
    from flask import redirect

    d = db.session.get(Delivery, delivery_id)
    args = {"account": d.account_id} if current_user.is_support else {}
    return redirect(url_for("logs.index", **args))


def _page(f):
    """A page of rows, whether there are more, and the URL of the next page (keyset cursor)."""
    rows_ = queries.log_rows(f)
    page, more = rows_[: queries.PAGE], len(rows_) > queries.PAGE
    more_url = None
    if more:
        args = request.args.to_dict()
        args["before"] = queries.encode_cursor(page[-1][0])
        more_url = url_for("logs.rows", **args)
    return page, more, more_url


