"""Audit: who changed what in an account, newest first, "Load more" by keyset. Customers see
their account's entries; support sees every account's, or one chosen in the account bar. The
read is tnt.audit's; this module parses the page's input."""

from flask import Blueprint, abort, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from .. import MAX_ID, audit
from ..extensions import db
from ..models import Account
from ..scope import Scope
from .scope import list_scope

bp = Blueprint("audit", __name__, url_prefix="/audit")


@bp.before_request
@login_required
def _signed_in():
    pass


def _scope() -> Scope:
    """list_scope(), but an account filter that is no account's id is a 400, not "all"."""
    ref = request.args.get("account", "")
    if current_user.is_support and ref and not ref.isdigit():
        abort(400, "The account filter must be an account's id.")
    return list_scope()


def _before() -> int | None:
    raw = request.args.get("before", "")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        abort(400, "`before` must be the id of the last entry shown.")
    return min(int(raw), MAX_ID)


def _page():
    """A page of entries, the names of their accounts (support's Account column), and the URL
    of the next page if there is one."""
    rows = audit.entries(_scope(), before_id=_before(), limit=audit.PAGE + 1)
    page = rows[: audit.PAGE]
    more_url = None
    if len(rows) > audit.PAGE:
        more_url = url_for("audit.rows", **(request.args.to_dict() | {"before": page[-1].id}))
    names = {}
    if current_user.is_support:
        ids = {e.account_id for e in page if e.account_id is not None}
        names = dict(
            db.session.execute(select(Account.id, Account.name).where(Account.id.in_(ids))).all()
        )
    return page, names, more_url


@bp.get("")
def index():
    rows, names, more_url = _page()
    return render_template("audit/index.html", rows=rows, names=names, more_url=more_url)


@bp.get("/rows")
def rows():
    """The next page of rows (the "Load more" button swaps itself for these)."""
    rows_, names, more_url = _page()
    return render_template("audit/_rows.html", rows=rows_, names=names, more_url=more_url)


@bp.app_template_filter("audit_label")
def audit_label(action: str) -> str:
    """ "Endpoint edited" for endpoint.edit; an action this version does not know, as stored."""
    try:
        return audit.Action(action).label
    except ValueError:
        return action
