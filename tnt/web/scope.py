"""Who sees what: a customer sees their account; support sees all, narrowed by ?account=."""

from flask import abort, request, url_for
from flask_login import current_user
from sqlalchemy import select

from .. import MAX_ID
from ..extensions import db
from ..models import Account
from ..scope import Scope


def owner_scope() -> Scope:
    """Whose rows a lookup by id may find: the customer's account's; any account's for support."""
    if current_user.is_support:
        return Scope.all_accounts()
    return Scope.account(current_user.account_id)


def list_scope() -> Scope:
    """Whose rows a list shows: the customer's account's, or support's ?account= (none: all)."""
    account_id = chosen_account_id()
    if account_id is None and current_user.is_support:
        return Scope.all_accounts()
    return Scope.account(account_id)


def chosen_account_id() -> int | None:
    """The account a new row is made in (not a scope): the customer's, or the one support chose
    with ?account= (None: support has not chosen one)."""
    if not current_user.is_support:
        return current_user.account_id
    ref = request.values.get("account", "")
    if not ref.isdigit():
        return None
    if int(ref) > MAX_ID or db.session.get(Account, int(ref)) is None:
        abort(404)
    return int(ref)


def aurl(_endpoint: str, _account: int | None = None, **values) -> str:
    """url_for that keeps support's chosen account across pages; `_account` names the account
    of the thing a link is about instead (customers' links never carry an account)."""
    if getattr(current_user, "is_support", False) and "account" not in values:
        chosen = str(_account) if _account is not None else request.args.get("account", "")
        if chosen.isdigit():
            values["account"] = chosen
    return url_for(_endpoint, **values)


def template_context() -> dict:
    ctx = {"aurl": aurl, "all_accounts": []}
    if getattr(current_user, "is_authenticated", False) and current_user.is_support:
        ctx["all_accounts"] = list(db.session.scalars(select(Account).order_by(Account.name)))
    return ctx
