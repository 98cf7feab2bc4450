"""Webhooks -> Endpoints: list, create, edit, toggle, delete, send a test event."""
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import StringField

from .. import endpoints as service
from ..errors import InvalidInput
from ..models import EVENTS
from .. import hourly
from .scope import list_scope, owner_scope

bp = Blueprint("endpoints", __name__, url_prefix="/endpoints")


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
    account_id = list_scope()
    items = service.list_for(account_id)
    return render_template("endpoints/index.html", endpoints=items,
                           rates=hourly.success_rates([e.id for e in items]),
                           account_id=account_id)


@bp.route("/new", methods=["GET", "POST"])
def new():
    account_id = list_scope()
    form = EndpointForm()
    chosen = request.form.getlist("events") if request.method == "POST" else list(EVENTS)
    errors: dict[str, str] = {}
    if account_id is None:
        errors["account"] = "Choose the account this endpoint belongs to."
    elif form.validate_on_submit():
        try:
            endpoint = service.create(account_id, form.url.data, chosen, form.description.data,
                                      form.secret.data or None)
        except InvalidInput as exc:
            errors = exc.fields
        else:
            flash(f"Endpoint {endpoint.url} created.", "success")
            return _to_index(account_id)
    return _form(form, None, chosen, errors, account_id)


@bp.route("/<int:endpoint_id>/edit", methods=["GET", "POST"])
def edit(endpoint_id: int):
    endpoint = service.get(owner_scope(), endpoint_id)
    form = EndpointForm(obj=endpoint)
    chosen = request.form.getlist("events") if request.method == "POST" else endpoint.event_list
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        # Secrets are shown to their owner only: support edits leave the secret as it is.
        secret = None if _hides_secret(endpoint) else (form.secret.data or "")
        try:
            service.update(endpoint, form.url.data, chosen, form.description.data, secret)
        except InvalidInput as exc:
            errors = exc.fields
        else:
            flash("Endpoint saved.", "success")
            return _to_index(endpoint.account_id)
    return _form(form, endpoint, chosen, errors, endpoint.account_id)


@bp.get("/generate-secret")
def generate_secret():
    return render_template("endpoints/_secret.html", secret=service.generate_secret(),
                           revealed=True, errors={})


@bp.post("/<int:endpoint_id>/toggle")
def toggle(endpoint_id: int):
    endpoint = service.get(owner_scope(), endpoint_id)
    service.set_enabled(endpoint, not endpoint.enabled)
    if request.headers.get("HX-Request"):
        return render_template("endpoints/_row.html", e=endpoint,
                               rate=hourly.success_rates([endpoint.id]).get(endpoint.id))
    return _to_index(endpoint.account_id)


@bp.post("/<int:endpoint_id>/delete")
def delete(endpoint_id: int):
    endpoint = service.get(owner_scope(), endpoint_id)
    service.delete(endpoint)
    if request.headers.get("HX-Request"):
        return ""  # the row swaps to nothing
    flash("Endpoint deleted.", "success")
    return _to_index(endpoint.account_id)


@bp.post("/<int:endpoint_id>/test")
def send_test(endpoint_id: int):
    endpoint = service.get(owner_scope(), endpoint_id)
    service.send_test(endpoint, request.form.get("event") or "sms.delivered")
    flash(f"Test event queued for {endpoint.url}. It appears below within seconds.", "success")
    args = {"endpoint_id": endpoint.id}
    if current_user.is_support:
        args["account"] = endpoint.account_id
    return redirect(url_for("logs.index", **args))


def _hides_secret(endpoint) -> bool:
    return current_user.is_support and current_user.account_id != endpoint.account_id


def _form(form, endpoint, chosen, errors, account_id):
    for name, text in errors.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = list(field.errors) + [text]
    status = 422 if errors else 200
    template = "endpoints/_form.html" if request.headers.get("HX-Request") else "endpoints/form.html"
    return render_template(template, form=form, endpoint=endpoint, chosen=chosen, events=EVENTS,
                           errors=errors, account_id=account_id,
                           show_secret=endpoint is None or not _hides_secret(endpoint)), status


def _to_index(account_id):
    args = {"account": account_id} if current_user.is_support else {}
    url = url_for("endpoints.index", **args)
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url}
    return redirect(url)
