"""Messages: send a test SMS through the simulated carrier, list messages, cancel queued ones."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields import SelectChoice

from .. import messages as service
from ..errors import InvalidInput
from . import queries
from .scope import chosen_account_id, list_scope, owner_scope

bp = Blueprint("messages", __name__, url_prefix="/messages")

OUTCOMES = [
    SelectChoice("delivered", "Delivered (sms.sent, then sms.delivered)"),
    SelectChoice("undelivered", "Undelivered (sms.sent, then sms.undelivered)"),
    SelectChoice("failed", "Refused by the carrier (sms.failed)"),
    SelectChoice("hold", "Hold in the queue (cancel it to fire sms.cancelled)"),
]


@bp.before_request
@login_required
def _signed_in():
    pass


class SmsForm(FlaskForm):
    mobile = StringField("Mobile", default="0712345678")
    sender_id = StringField("Sender ID", default="TALKNTALK")
    message = TextAreaField("Message", default="Your OTP is 847291.")
    simulate = SelectField(
        "Simulated outcome", choices=OUTCOMES, default="delivered", validate_choice=False
    )


@bp.route("", methods=["GET", "POST"])
def index():
    account_id = chosen_account_id()
    form = SmsForm()
    errors: dict[str, str] = {}
    if request.method == "POST":
        if account_id is None:
            errors["account"] = "Choose the account to send from."
        elif form.validate_on_submit():
            try:
                msg = service.send_sms(
                    account_id,
                    form.mobile.data,
                    form.sender_id.data,
                    form.message.data,
                    source="dashboard",
                    simulate=form.simulate.data or None,
                )
            except InvalidInput as exc:
                errors = exc.fields
            else:
                flash(f"Message {msg.id} to {msg.mobile} queued.", "success")
                return redirect(url_for("messages.index", **_account_arg(account_id)))
    for name, text in errors.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*list(field.errors), text]
    items = queries.messages_for(list_scope())
    return render_template(
        "messages/index.html",
        form=form,
        errors=errors,
        messages=items,
        fired=queries.message_events([m.id for m in items]),
        account_id=account_id,
    ), 422 if errors else 200


@bp.post("/<int:message_id>/cancel")
def cancel(message_id: int):
    msg = service.cancel_message(owner_scope(), message_id)
    if request.headers.get("HX-Request"):
        return render_template("messages/_row.html", m=msg, fired=queries.message_events([msg.id]))
    flash(f"Message {msg.id} cancelled.", "success")
    return redirect(url_for("messages.index", **_account_arg(msg.account_id)))


def _account_arg(account_id):
    return {"account": account_id} if current_user.is_support else {}
