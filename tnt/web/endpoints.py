"""Webhooks -> Endpoints: list, an endpoint's page, create, edit, toggle, delete, send a test
event."""

from flask import Blueprint, abort, flash, redirect, render_template, request
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import StringField

from .. import endpoints as service
from .. import hourly, inspectors, logs
from ..errors import InvalidInput
from ..models import EVENTS
from .logs import RESENDABLE
from .scope import aurl, chosen_account_id, list_scope, owner_scope

bp = Blueprint("endpoints", __name__, url_prefix="/endpoints")
RECENT = 10  # attempts an endpoint's page lists; the Logs, filtered to it, have the rest


@bp.before_request
@login_required
def _signed_in():
    pass


class EndpointForm(FlaskForm):
    url = StringField("URL")
    description = StringField("Description")
    secret = StringField("Signing secret")


@bp.get("")
def index():
    account_id = chosen_account_id()
    items = service.list_for(list_scope())
    return render_template(
        "endpoints/index.html",
        endpoints=items,
        rates=hourly.success_rates([e.id for e in items]),
        account_id=account_id,
    )


@bp.get("/<int:endpoint_id>")
def show(endpoint_id: int):
    """The endpoint's settings and actions, its last 24 hours and its latest attempts."""
    endpoint = service.get(owner_scope(), endpoint_id)
    q = logs.LogQuery(logs.Scope.account(endpoint.account_id), endpoint_id=endpoint.id)
    return render_template(
        "endpoints/show.html",
        e=endpoint,
        rate=_rate(endpoint),
        rows=logs.attempts(q, limit=RECENT),
        resendable=RESENDABLE,
        inspector=inspectors.of_endpoint(endpoint),
    )


@bp.route("/new", methods=["GET", "POST"])
def new():
    account_id = chosen_account_id()
    form = EndpointForm()
    chosen = request.form.getlist("events") if request.method == "POST" else list(EVENTS)
    errors: dict[str, str] = {}
    if account_id is None:
        errors["account"] = "Choose the account this endpoint belongs to."
    elif form.validate_on_submit():
        try:
            endpoint = service.create(
                account_id, form.url.data, chosen, form.description.data, form.secret.data or None
            )
        except InvalidInput as exc:
            errors = exc.fields
        else:
            flash(f"Endpoint {endpoint.url} created.", "success")
            return _go(_index_url(endpoint))
    return _form(form, None, chosen, errors, account_id)


@bp.route("/<int:endpoint_id>/edit", methods=["GET", "POST"])
def edit(endpoint_id: int):
    endpoint = service.get(owner_scope(), endpoint_id)
    form = EndpointForm(obj=endpoint)
    chosen = request.form.getlist("events") if request.method == "POST" else endpoint.event_list
    errors: dict[str, str] = {}
    if request.method == "GET":
        form.secret.data = ""  # never in the page: Reveal asks for it (reveal_secret)
    if form.validate_on_submit():
        secret = form.secret.data or ""
        # Secrets are shown to their owner only: support edits leave the secret as it is, and
        # so does an owner's form whose field was left empty while it held one (secret_kept).
        if _hides_secret(endpoint) or (not secret and request.form.get("secret_kept")):
            secret = None
        try:
            service.update(endpoint, form.url.data, chosen, form.description.data, secret)
        except InvalidInput as exc:
            errors = exc.fields
        else:
            flash("Endpoint saved.", "success")
            return _go(_page_url(endpoint))
    return _form(form, endpoint, chosen, errors, endpoint.account_id)


@bp.post("/<int:endpoint_id>/secret")
def reveal_secret(endpoint_id: int):
    """The secret field, filled in and shown: for the account's own users, and recorded."""
    endpoint = service.get(owner_scope(), endpoint_id)
    if _hides_secret(endpoint):
        abort(403, "Secrets are shown to the account's own users only.")
    service.secret_shown(endpoint, via="dashboard")
    return render_template(
        "endpoints/_secret.html", secret=endpoint.secret or "", revealed=True, errors={}
    )


@bp.get("/generate-secret")
def generate_secret():
    return render_template(
        "endpoints/_secret.html", secret=service.generate_secret(), revealed=True, errors={}
    )


@bp.post("/<int:endpoint_id>/toggle")
def toggle(endpoint_id: int):
    endpoint = service.get(owner_scope(), endpoint_id)
    service.set_enabled(endpoint, not endpoint.enabled)
    if request.headers.get("HX-Request"):
        # The switch is in the endpoint's row of the list, or in the summary on its page.
        template = "endpoints/_summary.html" if _from_its_page() else "endpoints/_row.html"
        return render_template(template, e=endpoint, rate=_rate(endpoint))
    return redirect(_page_url(endpoint) if _from_its_page() else _index_url(endpoint))


@bp.post("/<int:endpoint_id>/delete")
def delete(endpoint_id: int):
    endpoint = service.get(owner_scope(), endpoint_id)
    service.delete(endpoint)
    if request.headers.get("HX-Request") and not _from_its_page():
        return ""  # the row swaps to nothing
    flash("Endpoint deleted.", "success")
    return _go(_index_url(endpoint))


@bp.post("/<int:endpoint_id>/test")
def send_test(endpoint_id: int):
    endpoint = service.get(owner_scope(), endpoint_id)
    service.send_test(endpoint, request.form.get("event") or "sms.delivered")
    flash(f"Test event queued for {endpoint.url}. It appears below within seconds.", "success")
    return redirect(aurl("logs.index", _account=endpoint.account_id, endpoint_id=endpoint.id))


def _hides_secret(endpoint) -> bool:
    return current_user.is_support and current_user.account_id != endpoint.account_id


def _form(form, endpoint, chosen, errors, account_id):
    for name, text in errors.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*list(field.errors), text]
    status = 422 if errors else 200
    template = (
        "endpoints/_form.html" if request.headers.get("HX-Request") else "endpoints/form.html"
    )
    return render_template(
        template,
        form=form,
        endpoint=endpoint,
        chosen=chosen,
        events=EVENTS,
        errors=errors,
        account_id=account_id,
        show_secret=endpoint is None or not _hides_secret(endpoint),
        # An owner editing an endpoint that has a secret: the field starts empty and means "keep".
        secret_kept=bool(
            endpoint is not None
            and endpoint.secret
            and not _hides_secret(endpoint)
            and not form.secret.data
            and (request.method == "GET" or request.form.get("secret_kept"))
        ),
    ), status


def _rate(endpoint) -> tuple[int, int] | None:
    return hourly.success_rates([endpoint.id]).get(endpoint.id)


def _from_its_page() -> bool:
    """The action was taken on the endpoint's own page (`?on=page`), not in the list."""
    return request.args.get("on") == "page"


def _page_url(endpoint) -> str:
    return aurl("endpoints.show", _account=endpoint.account_id, endpoint_id=endpoint.id)


def _index_url(endpoint) -> str:
    return aurl("endpoints.index", _account=endpoint.account_id)


def _go(url: str):
    """Redirect; to htmx (a form it posted), as HX-Redirect."""
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url}
    return redirect(url)
