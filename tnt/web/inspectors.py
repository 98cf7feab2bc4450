"""Webhooks -> Inspector: capture URLs, their live view, mock answers and curl replays
(tnt.inspectors). The capture route itself is public: tnt/web/capture.py."""

from flask import Blueprint, flash, redirect, render_template, request
from flask_login import login_required

from .. import inspectors as service
from ..errors import Conflict, InvalidInput, NotFound
from .scope import aurl, chosen_account_id, list_scope, owner_scope

bp = Blueprint("inspectors", __name__, url_prefix="/inspectors")
POLL_SECONDS = 1


@bp.before_request
@login_required
def _signed_in():
    pass


@bp.get("")
def index():
    account_id = chosen_account_id()
    return render_template(
        "inspectors/index.html",
        items=service.list_for(list_scope()),
        account_id=account_id,
        errors={},
        capture_url=service.capture_url,
    )


@bp.post("")
def create():
    account_id = chosen_account_id()
    errors: dict[str, str] = {}
    status = 422
    if account_id is None:
        errors["account"] = "Choose the account this inspector belongs to."
    else:
        try:
            inspector = service.create(
                account_id,
                request.form.get("name", ""),
                add_endpoint=request.form.get("add_endpoint") == "1",
            )
        except InvalidInput as exc:
            errors = exc.fields
        except Conflict as exc:  # too many at once, or no public address configured
            errors, status = {"inspector": str(exc)}, 409
        else:
            return redirect(_page_url(inspector))
    return render_template(
        "inspectors/index.html",
        items=service.list_for(list_scope()),
        account_id=account_id,
        errors=errors,
        capture_url=service.capture_url,
    ), status


@bp.get("/<int:inspector_id>")
def show(inspector_id: int):
    inspector = service.get(owner_scope(), inspector_id)
    rows = service.requests_of(inspector)
    return render_template(
        "inspectors/show.html",
        i=inspector,
        url=service.capture_url(inspector),
        rows=rows,
        last_id=rows[0].id if rows else 0,
        mock=_mock_values(inspector),
        errors={},
        service=service,
        poll=POLL_SECONDS,
    )


@bp.get("/<int:inspector_id>/requests")
def newer(inspector_id: int):
    """The live view's poll: rows newer than `after`, under a poller that asks from the newest."""
    inspector = service.get(owner_scope(), inspector_id)
    after = request.args.get("after", "0")
    after_id = int(after) if after.isdigit() and len(after) < 12 else 0
    rows = service.requests_of(inspector, after=after_id)
    return render_template(
        "inspectors/_poll.html",
        i=inspector,
        rows=rows,
        last_id=rows[0].id if rows else after_id,
        service=service,
        poll=POLL_SECONDS,
    )


@bp.post("/<int:inspector_id>/mock")
def mock(inspector_id: int):
    inspector = service.get(owner_scope(), inspector_id)
    values = _mock_values(inspector) | {
        k: request.form.get(k, "") for k in ("status_code", "body", "delay", "fail_first")
    }
    errors: dict[str, str] = {}
    parsed = {}
    for name, text in (
        ("status_code", values["status_code"]),
        ("fail_first", values["fail_first"]),
    ):
        text = text.strip()
        if not text.isdigit() or len(text) > 6:
            errors[name] = "Enter a whole number."
        else:
            parsed[name] = int(text)
    try:
        seconds = float(values["delay"].strip() or "0")
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            raise ValueError
        parsed["delay_ms"] = round(seconds * 1000)
    except ValueError:
        errors["delay"] = "Enter a number of seconds, such as 0 or 12.5."
    parsed["body"] = values["body"].replace("\r\n", "\n")
    # The domain's checks too, on what did parse, so one answer names every bad field.
    current = {"status_code": inspector.status_code, "delay_ms": 0, "fail_first": 0}
    try:
        service.validate_mock(**(current | parsed))
    except InvalidInput as exc:
        for key, text in exc.fields.items():
            errors.setdefault("delay" if key == "delay_ms" else key, text)
    if not errors:
        service.set_mock(inspector, **parsed)
    status = 422 if errors else 200
    if not errors:
        values = _mock_values(inspector)
    return render_template(
        "inspectors/_mock.html", i=inspector, mock=values, errors=errors, saved=not errors
    ), status


@bp.post("/<int:inspector_id>/endpoint")
def add_endpoint(inspector_id: int):
    inspector = service.get(owner_scope(), inspector_id)
    endpoint = service.add_as_endpoint(inspector)
    flash(
        f"Endpoint {endpoint.url} added, with every event and a signing secret. Send a test SMS "
        "from Messages and watch it arrive here.",
        "success",
    )
    return redirect(_page_url(inspector))


@bp.post("/<int:inspector_id>/delete")
def delete(inspector_id: int):
    inspector = service.get(owner_scope(), inspector_id)
    account_id = inspector.account_id
    service.delete_inspector(inspector)
    flash("Inspector deleted.", "success")
    return redirect(aurl("inspectors.index", _account=account_id))


@bp.get("/<int:inspector_id>/requests/<int:request_id>/curl")
def curl(inspector_id: int, request_id: int):
    """A curl command that re-sends this request to the URL typed (we never send it)."""
    inspector = service.get(owner_scope(), inspector_id)
    row = service.get_request(owner_scope(), request_id)
    if row.inspector_id != inspector.id:
        raise NotFound("No such request.")
    try:
        command = service.curl_command(row, request.args.get("url", ""))
    except InvalidInput as exc:
        return render_template("inspectors/_curl.html", command=None, error=exc.fields["url"]), 422
    return render_template("inspectors/_curl.html", command=command, error=None, row=row)


def _mock_values(inspector) -> dict[str, str]:
    return {
        "status_code": str(inspector.status_code),
        "body": inspector.body,
        "delay": f"{inspector.delay_ms / 1000:g}",
        "fail_first": str(inspector.fail_first),
    }


def _page_url(inspector) -> str:
    return aurl("inspectors.show", _account=inspector.account_id, inspector_id=inspector.id)
