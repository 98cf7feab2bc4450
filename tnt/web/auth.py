"""Sign in and out."""

import math
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField

from .. import accounts, audit
from ..extensions import db

bp = Blueprint("auth", __name__)


class SignInForm(FlaskForm):
    email = EmailField("Email")
    password = PasswordField("Password")


@bp.get("/")
def home():
    return redirect(
        url_for("endpoints.index") if current_user.is_authenticated else url_for("auth.login")
    )


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = SignInForm()
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("endpoints.index"))
    status = 200
    if form.validate_on_submit():
        email, ip = form.email.data or "", request.remote_addr or ""
        wait = accounts.login_locked_for(email, ip)
        if wait:
            form.password.errors.append(f"Too many failed attempts. Try again in {_span(wait)}.")
            status = 429
        else:
            user = accounts.authenticate(email, form.password.data)
            if user is None:
                _record_failure(email)
                wait = accounts.login_failed(email, ip)
                form.password.errors.append(
                    "Wrong email or password." + (f" Try again in {_span(wait)}." if wait else "")
                )
                status = 429 if wait else 401
            else:
                accounts.login_succeeded(email, ip)
                audit.record(
                    audit.Action.SIGN_IN,
                    user.account_id,
                    target=("user", user.id),
                    actor=audit.Actor.user(user),
                )
                db.session.commit()
                login_user(user)
                return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    accounts.end_sessions(current_user)  # every copy of the session, not only this browser's
    logout_user()
    flash("Signed out.", "info")
    return redirect(url_for("auth.login"))


def _record_failure(email: str) -> None:
    """A wrong password goes into the trail (for security review): a known user's into its
    account's, an unknown email's into the trail only support staff read. Both cost the same
    write, so the time an answer takes still says nothing of whether the email exists.
    Attempts refused by throttling are not recorded: tnt.accounts' limits bound the entries
    an attacker can cause."""
    user = accounts.find_user(email)
    audit.record(
        audit.Action.SIGN_IN_FAILED,
        user.account_id if user else None,
        target=("user", user.id) if user else None,
        details={"email": user.email if user else email[:254]},
        actor=audit.Actor.visitor(),
    )
    db.session.commit()


def _span(seconds: int) -> str:
    return f"{seconds} s" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"


def _safe_next(target: str | None) -> str:
    """Only a path on this site; never an open redirect."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("endpoints.index")
