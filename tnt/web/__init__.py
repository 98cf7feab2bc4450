"""The dashboard (Flask + htmx): server-rendered pages, partials for htmx swaps."""

from datetime import UTC

from flask import render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .. import accounts
from ..clock import NAIROBI
from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import login_manager


def register(app) -> None:
    """Attach the dashboard's blueprints, login manager hooks and error handlers."""
    from ..extensions import csrf
    from . import audit, auth, capture, endpoints, inspectors, logs, messages, scope, system

    for module in (auth, endpoints, logs, messages, system, inspectors, capture, audit):
        app.register_blueprint(module.bp)
    csrf.exempt(capture.bp)  # webhook senders have no session and no token

    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to continue."
    login_manager.login_message_category = "info"

    login_manager.user_loader(accounts.user_for_session)  # refuses ended sessions

    app.jinja_env.filters["nairobi"] = nairobi
    app.jinja_env.filters["nairobi_short"] = nairobi_short
    app.context_processor(scope.template_context)

    @app.after_request
    def vary_on_htmx(response):
        # Several views answer a partial to htmx and a page otherwise; caches must keep both.
        response.vary.add("HX-Request")
        return response

    @app.errorhandler(NotFound)
    def not_found(exc):
        return _error(404, str(exc) or "Not found.")

    @app.errorhandler(Conflict)
    def conflict(exc):
        return _error(409, str(exc))

    @app.errorhandler(InvalidInput)
    def invalid(exc):
        return _error(422, "; ".join(exc.fields.values()))

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return _error(
            400, "Your session expired or the form was stale: reload the page and try again."
        )

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if request.path.startswith("/api/"):
            return exc
        return _error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(500)
    def server_error(exc):
        return _error(500, "Something went wrong on our side. It has been logged.")


def _error(code: int, text: str):
    if request.path.startswith("/api/"):
        return {"error": text}, code
    if request.headers.get("HX-Request"):
        # htmx shows this text in its error banner (static/app.js); nothing is swapped.
        return text, code, {"Content-Type": "text/plain; charset=utf-8"}
    return render_template("error.html", code=code, text=text), code


def nairobi(dt) -> str:
    """`2026-05-20 11:30:04` in Nairobi time for a naive UTC datetime."""
    if dt is None:
        return ""
    return dt.replace(tzinfo=UTC).astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M:%S")


def nairobi_short(dt) -> str:
    if dt is None:
        return ""
    return dt.replace(tzinfo=UTC).astimezone(NAIROBI).strftime("%d %b %H:%M:%S")
