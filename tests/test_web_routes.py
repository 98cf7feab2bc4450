"""Dashboard routes through the Flask test client: sign-in, Endpoints, Logs, Messages, CSRF."""

import re
import uuid
from datetime import timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import insert, select
from web_fixtures import PASSWORD, sign_in

from tnt import endpoints, messages, transport
from tnt.clock import utcnow
from tnt.delivery import policy
from tnt.extensions import db
from tnt.models import Attempt, Delivery, Endpoint, Event, Message
from tnt.scope import Scope
from tnt.web.logs import short_reason

HX = {"HX-Request": "true"}


@pytest.fixture
def web(app):
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


@pytest.fixture
def alice(web, people):
    assert sign_in(web, people.alice.email).status_code == 302
    return web


@pytest.fixture
def endpoint(people, receiver):
    return endpoints.create(
        people.a.id, receiver.url, list(endpoints.EVENTS), "Acme hook", "whsec_acme_secret_value"
    )


def text(resp) -> str:
    return resp.get_data(as_text=True)


# --- sign in -------------------------------------------------------------------------------


def test_pages_need_sign_in(web):
    for path in ("/endpoints", "/logs", "/messages", "/endpoints/new", "/logs/chart"):
        resp = web.get(path)
        assert resp.status_code == 302 and "/login" in resp.location, path


def test_an_anonymous_client_beside_a_signed_in_one_is_sent_to_sign_in(app, alice):
    """Each test client request has its own context, as on a server: alice's sign-in (kept
    by Flask-Login in `g`) must not leak into another client's request."""
    assert alice.get("/endpoints").status_code == 200
    resp = app.test_client().get("/endpoints")
    assert resp.status_code == 302 and "/login" in resp.location
    assert alice.get("/endpoints").status_code == 200


def test_sign_in_and_out(web, people):
    resp = sign_in(web, people.alice.email, "wrong-password")
    assert resp.status_code == 401 and "Wrong email or password" in text(resp)
    resp = sign_in(web, "ALICE@acme.test")
    assert resp.status_code == 302 and resp.location.endswith("/endpoints")
    assert "alice@acme.test" in text(web.get("/endpoints"))
    assert web.post("/logout").status_code == 302
    assert web.get("/endpoints").status_code == 302


def test_session_cookie_is_httponly_and_samesite(web, people):
    resp = sign_in(web, people.alice.email)
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_next_never_redirects_off_site(web, people):
    resp = web.post(
        "/login?next=//evil.example/x", data={"email": people.alice.email, "password": PASSWORD}
    )
    assert resp.location.endswith("/endpoints")


def test_repeated_bad_passwords_lock_the_email_at_that_address(web, people):
    for _ in range(4):
        assert sign_in(web, people.alice.email, "nope-nope").status_code == 401
    resp = sign_in(web, people.alice.email, "nope-nope")
    assert resp.status_code == 429 and "Try again in 15 minutes" in text(resp)
    # Even the right password waits out the lock ...
    resp = sign_in(web, people.alice.email)
    assert resp.status_code == 429 and "Too many failed attempts" in text(resp)
    # ... and another email from the same address is not affected.
    assert sign_in(web, people.bob.email).status_code == 302


def test_sign_in_works_when_redis_is_down(app, web, people):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop("tnt_redis", None)
    assert sign_in(web, people.alice.email, "nope-nope").status_code == 401
    assert sign_in(web, people.alice.email).status_code == 302


def test_a_post_without_the_csrf_token_is_refused(app, people, endpoint):
    client = app.test_client()  # CSRF on, as in production
    page = text(client.get("/login"))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert (
        client.post("/login", data={"email": people.alice.email, "password": PASSWORD}).status_code
        == 400
    )
    assert (
        client.post(
            "/login", data={"email": people.alice.email, "password": PASSWORD, "csrf_token": token}
        ).status_code
        == 302
    )
    resp = client.post(f"/endpoints/{endpoint.id}/toggle", headers=HX)
    assert resp.status_code == 400 and "reload the page" in text(resp)
    assert resp.content_type.startswith("text/plain")
    db.session.refresh(endpoint)
    assert endpoint.enabled
    # The token on <body hx-headers> is what htmx sends.
    page = text(client.get("/endpoints"))
    header_token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    resp = client.post(
        f"/endpoints/{endpoint.id}/toggle", headers=HX | {"X-CSRFToken": header_token}
    )
    assert resp.status_code == 200 and "Off" in text(resp)


# --- endpoints ------------------------------------------------------------------------------


def test_create_edit_toggle_delete_an_endpoint(alice, people, receiver):
    resp = alice.post(
        "/endpoints/new",
        data={
            "url": receiver.url,
            "description": "Main",
            "events": ["sms.sent", "sms.failed"],
            "secret": "whsec_0123456789",
        },
    )
    assert resp.status_code == 302
    e = db.session.scalars(select(Endpoint)).one()
    assert (e.account_id, e.events, e.secret) == (
        people.a.id,
        "sms.sent sms.failed",
        "whsec_0123456789",
    )
    page = text(alice.get("/endpoints"))
    assert receiver.url in page and "no attempts" in page and ">set<" in page

    resp = alice.post(
        f"/endpoints/{e.id}/edit",
        data={
            "url": receiver.url,
            "description": "Edited",
            "events": ["sms.delivered"],
            "secret": "",
        },
    )
    assert resp.status_code == 302
    db.session.refresh(e)
    assert (e.description, e.events, e.secret) == ("Edited", "sms.delivered", None)

    resp = alice.post(f"/endpoints/{e.id}/toggle", headers=HX)
    assert resp.status_code == 200 and text(resp).startswith(f'<tr id="endpoint-{e.id}"')
    assert 'aria-checked="false"' in text(resp)
    db.session.refresh(e)
    assert not e.enabled

    resp = alice.post(f"/endpoints/{e.id}/delete", headers=HX)
    assert resp.status_code == 200 and text(resp) == ""
    db.session.refresh(e)
    assert e.deleted_at is not None
    assert receiver.url not in text(alice.get("/endpoints"))


@pytest.mark.parametrize(
    "url, events, production, message",
    [
        ("not a url", ["sms.sent"], False, "must not contain spaces"),
        ("ftp://example.com/x", ["sms.sent"], False, "Use an http:// or https:// URL."),
        ("https://example.com/hook", [], False, "Choose at least one event."),
        ("http://example.com/hook", ["sms.sent"], True, "http is not allowed in production"),
        ("http://10.1.2.3/hook", ["sms.sent"], False, "private"),
    ],
)
def test_invalid_endpoint_input_rerenders_the_form_with_the_error(
    app, alice, url, events, production, message
):
    app.config["TNT_HTTPS_ONLY"] = production
    resp = alice.post("/endpoints/new", data={"url": url, "events": events})
    assert resp.status_code == 422
    page = text(resp)
    assert message in page
    assert 'class="field has-error"' in page or 'class="field has-error"' in page.replace(
        "fieldset", "div"
    )
    assert db.session.scalar(select(Endpoint)) is None
    # htmx gets only the form back, to swap in place.
    resp = alice.post("/endpoints/new", data={"url": url, "events": events}, headers=HX)
    assert resp.status_code == 422 and text(resp).lstrip().startswith('<form id="endpoint-form"')


def test_generate_secret_gives_a_fresh_revealed_secret(alice):
    resp = alice.get("/endpoints/generate-secret", headers=HX)
    secret = re.search(r'name="secret" type="text" value="(whsec_[\w-]{20,})"', text(resp))
    assert secret


def test_success_rate_over_the_last_24_hours(alice, endpoint, receiver, work):
    receiver.respond = [(200, b"ok"), (500, b"no"), (200, b"ok"), (200, b"ok")]
    for _ in range(4):
        endpoints.send_test(endpoint)
        work()
    page = text(alice.get("/endpoints"))
    assert "75%" in page and "of 4" in page


def test_send_test_event_is_delivered_and_marked_as_test(alice, endpoint, receiver, work):
    resp = alice.post(f"/endpoints/{endpoint.id}/test", data={"event": "sms.sent"})
    assert resp.status_code == 302 and f"endpoint_id={endpoint.id}" in resp.location
    work()
    assert [r["event"] for r in receiver.json()] == ["sms.sent"]
    page = text(alice.get(resp.location))
    assert "badge-test" in page and "✓ 200" in page and "delivered" in page


# --- an endpoint's page ---------------------------------------------------------------------


def test_the_list_links_each_endpoint_to_its_page(alice, endpoint):
    page = text(alice.get("/endpoints"))
    assert f'<a class="url" href="/endpoints/{endpoint.id}">{endpoint.url}</a>' in page


def test_an_endpoints_page_shows_its_settings_24_hours_recent_deliveries_and_actions(
    alice, people, endpoint, receiver
):
    mine, other = (
        _delivery(endpoint),
        _delivery(endpoints.create(people.a.id, receiver.url + "/other", ["sms.sent"])),
    )
    now = utcnow()
    db.session.execute(
        insert(Attempt),
        [_attempt(mine, endpoint, now - timedelta(seconds=i), number=i + 1) for i in range(12)]
        + [_attempt(other, other.endpoint, now)],
    )
    db.session.commit()
    page = text(alice.get(f"/endpoints/{endpoint.id}"))
    assert f'<h1 class="url">{endpoint.url}</h1>' in page and "Acme hook" in page
    assert all(f'<span class="chip">{name}</span>' in page for name in endpoints.EVENTS)
    assert "requests are signed" in page and "whsec_acme_secret_value" not in page
    assert "0%</span>" in page and "of 12" in page
    # The 24 h chart of this endpoint alone.
    assert f'hx-get="/logs/chart?endpoint_id={endpoint.id}"' in page
    assert "12 failed" in text(alice.get(f"/logs/chart?endpoint_id={endpoint.id}", headers=HX))
    # Its newest attempts (the other endpoint's aren't), and all of them in the Logs.
    newest = db.session.scalars(
        select(Attempt.id)
        .where(Attempt.endpoint_id == endpoint.id)
        .order_by(Attempt.started_at.desc())
        .limit(10)
    ).all()
    assert re.findall(r'id="attempt-(\d+)"', page) == [str(i) for i in newest]
    assert f'href="/logs?endpoint_id={endpoint.id}"' in page
    # Its actions: edit, toggle (htmx), a test event, delete (confirmed).
    assert f'href="/endpoints/{endpoint.id}/edit"' in page
    assert f'hx-post="/endpoints/{endpoint.id}/toggle?on=page"' in page
    assert f'action="/endpoints/{endpoint.id}/test"' in page
    assert f'hx-post="/endpoints/{endpoint.id}/delete?on=page"' in page and "hx-confirm=" in page


def test_toggle_and_delete_on_an_endpoints_page(alice, endpoint):
    resp = alice.post(f"/endpoints/{endpoint.id}/toggle?on=page", headers=HX)
    # The page's summary comes back (its test button follows the switch), not a list row.
    assert text(resp).startswith('<section class="card endpoint-summary" id="endpoint-summary">')
    assert 'aria-checked="false"' in text(resp) and "Enable the endpoint first" in text(resp)
    resp = alice.post(f"/endpoints/{endpoint.id}/delete?on=page", headers=HX)
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == "/endpoints"
    assert "Endpoint deleted." in text(alice.get("/endpoints"))
    # A deleted endpoint has no page, like its edit form.
    assert alice.get(f"/endpoints/{endpoint.id}").status_code == 404
    assert alice.get(f"/endpoints/{endpoint.id}/edit").status_code == 404


def test_saving_an_edit_returns_to_the_endpoints_page(alice, endpoint, receiver):
    form = text(alice.get(f"/endpoints/{endpoint.id}/edit"))
    assert f'<a class="btn btn-quiet" href="/endpoints/{endpoint.id}">Cancel</a>' in form
    resp = alice.post(
        f"/endpoints/{endpoint.id}/edit", data={"url": receiver.url, "events": ["sms.sent"]}
    )
    assert resp.status_code == 302 and resp.location.endswith(f"/endpoints/{endpoint.id}")


# --- logs -----------------------------------------------------------------------------------


def _fire(account_id, n=1, simulate="hold"):
    """Messages held then cancelled: one sms.cancelled event each, with a mobile."""
    out = []
    for i in range(n):
        msg = messages.send_sms(account_id, f"07123456{i:02d}", "TNT", "hi", simulate=simulate)
        messages.cancel_message(Scope.account(account_id), msg.id)
        out.append(msg)
    return out


def test_logs_show_every_attempt_with_its_columns(alice, endpoint, receiver, work):
    receiver.respond = [(503, b"busy")]
    (msg,) = _fire(endpoint.account_id)
    work()
    page = text(alice.get("/logs"))
    assert "sms.cancelled" in page and ">254712345600<" in page and f">{msg.id}<" in page
    # The outcome is short, its whole reason the title (and in the expanded row).
    assert "#1" in page and 'title="HTTP 503: not a 2xx response">✕ 503<' in page
    assert " ms<" in page and "badge-retrying" in page and "next " in page
    assert 'hx-get="/logs/chart' in page


@pytest.mark.parametrize(
    "reason, status, short",
    [
        (policy.failure_reason(503, None), 503, "503"),
        (policy.failure_reason(302, None, "https://elsewhere.example/"), 302, "302"),
        (policy.failure_reason(None, None), None, "no response"),
        ("Timed out after 10 s", None, "timeout"),
        ("Connection refused", None, "refused"),
        ("Refused: 10.0.0.5 is a private-use address", None, "blocked"),
        (
            "TLS error: certificate verify failed: unable to get local issuer certificate",
            None,
            "TLS",
        ),
        ("Could not resolve host hooks.example.invalid", None, "DNS"),
        ("Connection reset by the server", None, "reset"),
        ("Connection closed without a response", None, "closed"),
        (transport._CUT, 200, "closed"),  # a 2xx whose body broke off
        ("Connection failed: Network is unreachable", None, "unreachable"),
        (transport._INVALID, None, "bad response"),
        (transport._HEADERS_TOO_LARGE, None, "bad response"),
        (transport._TOO_MANY_INTERIM, None, "bad response"),
        (policy.NOT_SENT, None, "not sent"),
        ("Not sent: its signing secret cannot be decrypted with TNT_SECRETS_KEY", None, "not sent"),
        ("Internal error in the transport", None, "error"),
    ],
)
def test_every_failure_reason_has_a_short_label(reason, status, short):
    assert short_reason(reason, status) == short


def test_a_transport_failure_shows_a_short_outcome_and_its_whole_reason(alice, people, work):
    e = endpoints.create(people.a.id, "http://127.0.0.1:9/refused", ["sms.sent"])
    endpoints.send_test(e, "sms.sent")
    work()
    attempt = db.session.scalars(select(Attempt)).one()
    page = text(alice.get("/logs"))
    assert f'<span class="outcome fail" title="{attempt.error}">✕ refused</span>' in page
    detail = text(alice.get(f"/logs/attempts/{attempt.id}", headers=HX))
    assert f'<p class="error">{attempt.error}</p>' in detail


def test_logs_filters_live_in_the_url(alice, people, endpoint, receiver, work):
    receiver.respond = [(200, b"ok"), (500, b"no")]
    first, _second = _fire(people.a.id, 2)
    work()
    # Both are sent at once, so either may get the 200.
    d_ok, d_bad = sorted(db.session.scalars(select(Delivery)), key=lambda d: d.status)
    assert (d_ok.status, d_bad.status) == ("delivered", "retrying")

    def rows(query):
        return re.findall(r'id="attempt-(\d+)"', text(alice.get("/logs" + query)))

    assert len(rows("")) == 2
    assert len(rows("?status=delivered")) == 1
    assert len(rows("?status=retrying")) == 1
    assert rows("?status=failed") == []
    assert len(rows(f"?endpoint_id={endpoint.id}")) == 2
    assert rows(f"?endpoint_id={endpoint.id + 99}") == []
    assert len(rows("?event=sms.cancelled")) == 2
    assert rows("?event=sms.sent") == []
    assert len(rows(f"?q={first.id}")) == 1
    assert len(rows("?q=0712345601")) == 1
    assert len(rows("?q=%2B254712345601")) == 1
    assert rows("?q=nonsense") == []
    today = (utcnow() + timedelta(hours=3)).date()
    assert len(rows(f"?from={today}&to={today}")) == 2
    assert rows(f"?to={today - timedelta(days=1)}") == []
    page = text(alice.get("/logs?status=retrying&q=0712345601"))
    assert 'value="retrying" selected' in page and 'value="0712345601"' in page


def test_logs_page_by_keyset_with_load_more(alice, people, endpoint):
    d = _delivery(endpoint)
    now = utcnow()
    db.session.execute(
        insert(Attempt),
        [_attempt(d, endpoint, now - timedelta(seconds=i), number=i + 1) for i in range(120)],
    )
    db.session.commit()
    page = text(alice.get("/logs"))
    ids = re.findall(r'id="attempt-(\d+)"', page)
    assert len(ids) == 50
    more = re.search(r'hx-get="(/logs/rows\?[^"]+)"', page).group(1).replace("&amp;", "&")
    assert "before=" in more and "offset" not in more
    page2 = text(alice.get(more, headers=HX))
    ids2 = re.findall(r'id="attempt-(\d+)"', page2)
    assert len(ids2) == 50 and not set(ids) & set(ids2)
    more = re.search(r'hx-get="(/logs/rows\?[^"]+)"', page2).group(1).replace("&amp;", "&")
    page3 = text(alice.get(more, headers=HX))
    ids3 = re.findall(r'id="attempt-(\d+)"', page3)
    assert len(ids3) == 20 and "Load more" not in page3
    assert len(set(ids + ids2 + ids3)) == 120


def _delivery(endpoint, status="failed"):
    event = Event(account_id=endpoint.account_id, type="sms.sent", body=b'{"event":"sms.sent"}')
    db.session.add(event)
    d = Delivery(
        uid="u-" + str(utcnow().timestamp()),
        account_id=endpoint.account_id,
        event=event,
        endpoint_id=endpoint.id,
        status=status,
    )
    db.session.add(d)
    db.session.commit()
    return d


def _attempt(d, endpoint, at, number=1, ok=False):
    return {
        "delivery_id": d.id,
        "account_id": endpoint.account_id,
        "endpoint_id": endpoint.id,
        "event_type": "sms.sent",
        "message_id": 7,
        "mobile": "254712345678",
        "number": number,
        "trigger": "auto",
        "requested_by_id": None,
        "started_at": at,
        "duration_ms": 5,
        "ok": ok,
        "status_code": 500,
        "response_headers": "{}",
        "response_body": "",
        "error": "HTTP 500: not a 2xx response",
    }


def test_expanding_a_row_shows_the_request_and_the_escaped_response(
    alice, endpoint, receiver, work
):
    receiver.respond = [(500, b"<script>alert('x')</script> oops")]
    endpoints.send_test(endpoint)
    work()
    attempt = db.session.scalars(select(Attempt)).one()
    resp = alice.get(f"/logs/attempts/{attempt.id}", headers=HX)
    page = text(resp)
    assert resp.status_code == 200 and page.startswith(
        f'<tr class="detail-row" id="detail-{attempt.id}"'
    )
    for header in (
        "Content-Type",
        "User-Agent",
        "X-TalkNTalk-Event",
        "X-TalkNTalk-Delivery",
        "X-TalkNTalk-Signature",
    ):
        assert f"<dt>{header}</dt>" in page
    assert "sha256=" in page and "whsec_acme_secret_value" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; oops" in page
    assert "<script>alert" not in page
    assert "&#34;event&#34;: &#34;sms.delivered&#34;" in page


def test_the_detail_shows_the_signature_that_was_sent_not_todays(alice, endpoint, receiver, work):
    endpoints.send_test(endpoint)
    work()
    (request,) = receiver.received()
    sent = request["headers"]["X-TalkNTalk-Signature"]
    endpoints.rotate_secret(endpoint)  # rotated since
    attempt = db.session.scalars(select(Attempt)).one()
    page = text(alice.get(f"/logs/attempts/{attempt.id}", headers=HX))
    assert f"<dt>X-TalkNTalk-Signature</dt><dd>{sent}</dd>" in page
    assert attempt.signature == sent


def test_resend_updates_the_row_and_shows_the_new_attempt(alice, people, endpoint, receiver, work):
    d = _delivery(endpoint)
    db.session.execute(insert(Attempt), [_attempt(d, endpoint, utcnow(), number=4)])
    db.session.commit()
    old = db.session.scalars(select(Attempt)).one()
    page = text(alice.get("/logs"))
    assert f"/logs/deliveries/{d.id}/resend?attempt={old.id}" in page
    resp = alice.post(f"/logs/deliveries/{d.id}/resend?attempt={old.id}", headers=HX)
    assert resp.status_code == 200
    rows = re.findall(r'<tr id="attempt-(\d+)"', text(resp))
    new = db.session.scalars(select(Attempt).order_by(Attempt.id.desc())).first()
    assert rows == [str(new.id), str(old.id)]
    assert new.trigger == "manual" and new.requested_by_id == people.alice.id and new.ok
    assert "resend by alice@acme.test" in text(resp)
    assert "badge-delivered" in text(resp) and "Resend</button>" not in text(resp)
    assert len(receiver.received()) == 1


def test_resend_of_a_disabled_endpoint_is_a_visible_conflict(alice, endpoint):
    d = _delivery(endpoint)
    endpoints.set_enabled(endpoint, False)
    resp = alice.post(f"/logs/deliveries/{d.id}/resend", headers=HX)
    assert resp.status_code == 409 and "enable it to resend" in text(resp)


def test_pending_lists_the_deliveries_queued_for_their_first_attempt(alice, people, endpoint):
    """Pending deliveries have no attempt yet: the filter shows them as rows of their own."""
    (msg,) = _fire(people.a.id)  # no worker: its sms.cancelled delivery waits
    d = db.session.scalars(select(Delivery)).one()
    assert d.status == "pending"
    page = text(alice.get("/logs?status=pending"))
    assert f'id="delivery-{d.id}"' in page and "Queued, not yet attempted" in page
    assert "sms.cancelled" in page and ">254712345600<" in page and f">{msg.id}<" in page
    assert endpoint.url in page and "badge-pending" in page and "due " in page
    assert "Resend" not in page and 'id="attempt-' not in page
    # The unfiltered log of attempts says that one waits, and links to it.
    page = text(alice.get("/logs"))
    assert "1 delivery is queued, not yet attempted" in page
    assert 'href="/logs?status=pending"' in page
    assert "queued, not yet attempted" not in text(alice.get(f"/logs?endpoint_id={endpoint.id}"))

    def rows(query):
        return re.findall(r'id="delivery-(\d+)"', text(alice.get("/logs?status=pending" + query)))

    assert rows(f"&endpoint_id={endpoint.id}") == [str(d.id)]
    assert rows(f"&endpoint_id={endpoint.id + 1}") == []
    assert rows("&event=sms.cancelled") == [str(d.id)] and rows("&event=sms.sent") == []
    assert rows(f"&q={msg.id}") == [str(d.id)] and rows("&q=0712345600") == [str(d.id)]
    assert rows("&q=0799999999") == [] and rows("&q=nonsense") == []
    today = (utcnow() + timedelta(hours=3)).date()
    assert rows(f"&from={today}") == [str(d.id)]
    assert rows(f"&to={today - timedelta(days=1)}") == []


def test_pending_rows_page_by_keyset(alice, endpoint):
    event = Event(account_id=endpoint.account_id, type="sms.sent", body=b"{}")
    db.session.add(event)
    db.session.commit()
    db.session.execute(
        insert(Delivery),
        [
            {
                "uid": str(uuid.uuid4()),
                "account_id": endpoint.account_id,
                "event_id": event.id,
                "endpoint_id": endpoint.id,
                "status": "pending",
                "next_attempt_at": utcnow(),
            }
            for _ in range(70)
        ],
    )
    db.session.commit()
    page = text(alice.get("/logs?status=pending"))
    ids = re.findall(r'id="delivery-(\d+)"', page)
    more = re.search(r'hx-get="(/logs/rows\?[^"]+)"', page).group(1).replace("&amp;", "&")
    ids2 = re.findall(r'id="delivery-(\d+)"', text(alice.get(more, headers=HX)))
    assert len(ids) == 50 and len(ids2) == 20
    assert [int(i) for i in ids + ids2] == sorted((int(i) for i in ids + ids2), reverse=True)


def _retrying(web, people, receiver, work, clock):
    """Support signed in; Beta's test delivery failed its first attempt and is retrying."""
    e = endpoints.create(people.b.id, receiver.url, ["sms.delivered"])
    receiver.respond = [(500, b"down")]
    d = endpoints.send_test(e)
    work()
    db.session.refresh(d)
    assert (d.status, d.auto_attempts) == ("retrying", 1)
    receiver.received()
    sign_in(web, people.sam.email)
    first = db.session.scalars(select(Attempt)).one()
    page = text(web.get(f"/logs?account={people.b.id}&status=retrying"))
    assert f"/logs/deliveries/{d.id}/resend?attempt={first.id}" in page  # offered on retrying
    return d, first


def test_resend_of_a_retrying_delivery_that_succeeds_stops_its_retries(web, people, receiver, work):
    with freeze_time("2026-05-20 08:30") as clock:
        d, first = _retrying(web, people, receiver, work, clock)
        receiver.respond = [(200, b"fixed")]
        resp = web.post(f"/logs/deliveries/{d.id}/resend?attempt={first.id}", headers=HX)
        assert resp.status_code == 200 and "resend by sam@tnt.test" in text(resp)
        assert "badge-delivered" in text(resp) and "Resend</button>" not in text(resp)
        db.session.refresh(d)
        assert (d.status, d.next_attempt_at, d.auto_attempts, d.attempts_count) == (
            "delivered",
            None,
            1,
            2,
        )
        assert len(receiver.received()) == 1
        # The retries it had scheduled (1, 5, 30 minutes) send nothing more.
        for minutes in (1, 5, 30):
            clock.tick(timedelta(minutes=minutes, seconds=1))
            work()
        assert receiver.received() == []
        db.session.refresh(d)
        assert (d.status, d.attempts_count) == ("delivered", 2)


def test_resend_of_a_retrying_delivery_that_fails_keeps_its_schedule(web, people, receiver, work):
    with freeze_time("2026-05-20 08:30") as clock:
        d, first = _retrying(web, people, receiver, work, clock)
        due, auto = d.next_attempt_at, d.auto_attempts
        clock.tick(timedelta(seconds=20))
        resp = web.post(f"/logs/deliveries/{d.id}/resend?attempt={first.id}", headers=HX)
        assert resp.status_code == 200 and "resend by sam@tnt.test" in text(resp)
        assert "badge-retrying" in text(resp) and "Resend</button>" in text(resp)
        db.session.refresh(d)
        # One more attempt, not a second retry series: the same due time and automatic count.
        assert (d.status, d.next_attempt_at, d.auto_attempts, d.attempts_count) == (
            "retrying",
            due,
            auto,
            2,
        )
        assert len(receiver.received()) == 1
        # The automatic retry still comes when it was due, and the series goes on from there.
        clock.tick(due - utcnow() + timedelta(seconds=1))
        work()
        assert len(receiver.received()) == 1
        db.session.refresh(d)
        assert (d.status, d.auto_attempts, d.attempts_count) == ("retrying", 2, 3)
        triggers = [
            a.trigger
            for a in db.session.scalars(
                select(Attempt).where(Attempt.delivery_id == d.id).order_by(Attempt.id)
            )
        ]
        assert triggers == ["auto", "manual", "auto"]


def test_chart_counts_attempts_per_hour_by_outcome(alice, endpoint):
    d = _delivery(endpoint)
    now = utcnow()
    db.session.execute(
        insert(Attempt),
        [
            _attempt(d, endpoint, now - timedelta(minutes=1), ok=True),
            _attempt(d, endpoint, now - timedelta(minutes=2), ok=True),
            _attempt(d, endpoint, now - timedelta(hours=2)),
            _attempt(d, endpoint, now - timedelta(hours=30)),  # outside the 24 h
        ],
    )
    db.session.commit()
    page = text(alice.get("/logs/chart", headers=HX))
    assert "<svg" in page and "2 succeeded" in page and "1 failed" in page
    assert len(re.findall(r'class="bar-ok"', page)) == 24


def test_chart_keeps_settled_hours_and_counts_the_rest(app, alice, endpoint):
    """Hours that can no longer change are counted once (kept in Redis); the last hour or so
    is counted on every view; without Redis everything is counted."""
    d = _delivery(endpoint)
    now = utcnow()
    db.session.execute(
        insert(Attempt),
        [
            _attempt(d, endpoint, now - timedelta(hours=2), ok=True),
            _attempt(d, endpoint, now - timedelta(seconds=30)),
        ],
    )
    db.session.commit()
    page = text(alice.get("/logs/chart", headers=HX))
    assert "1 succeeded" in page and "1 failed" in page
    # Rows that could not appear in a settled hour in real life show that it is not recounted.
    db.session.execute(
        insert(Attempt),
        [
            _attempt(d, endpoint, now - timedelta(hours=2), ok=True),
            _attempt(d, endpoint, now - timedelta(seconds=20)),
        ],
    )
    db.session.commit()
    page = text(alice.get("/logs/chart", headers=HX))
    assert "1 succeeded" in page and "2 failed" in page
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop("tnt_redis", None)
    page = text(alice.get("/logs/chart", headers=HX))
    assert "2 succeeded" in page and "2 failed" in page


# --- messages -------------------------------------------------------------------------------


def test_send_test_sms_hold_and_cancel(alice, people, endpoint, work):
    resp = alice.post(
        "/messages",
        data={
            "mobile": "0712 345 678",
            "sender_id": "TALKNTALK",
            "message": "Hello",
            "simulate": "hold",
        },
    )
    assert resp.status_code == 302
    msg = db.session.scalars(select(Message)).one()
    assert (msg.account_id, msg.mobile, msg.source, msg.simulate) == (
        people.a.id,
        "254712345678",
        "dashboard",
        "hold",
    )
    work()
    page = text(alice.get("/messages"))
    assert "badge-queued" in page and f"/messages/{msg.id}/cancel" in page
    resp = alice.post(f"/messages/{msg.id}/cancel", headers=HX)
    assert resp.status_code == 200 and "badge-cancelled" in text(resp)
    assert "sms.cancelled" in text(resp)
    resp = alice.post(f"/messages/{msg.id}/cancel", headers=HX)
    assert resp.status_code == 409 and "cannot become cancelled" in text(resp)


def test_sent_message_lists_the_events_it_fired(alice, endpoint, work):
    alice.post(
        "/messages",
        data={"mobile": "0712345678", "sender_id": "TNT", "message": "x", "simulate": "delivered"},
    )
    work()
    work()
    page = text(alice.get("/messages"))
    assert "badge-delivered" in page and ">sms.sent<" in page and ">sms.delivered<" in page


def test_invalid_sms_rerenders_with_errors_beside_the_fields(alice):
    resp = alice.post(
        "/messages",
        data={
            "mobile": "12",
            "sender_id": "far too long sender",
            "message": "",
            "simulate": "delivered",
        },
    )
    assert resp.status_code == 422
    page = text(resp)
    assert "Enter a Kenyan mobile number" in page and "Use 1 to 11 letters" in page
    assert "Enter the message text." in page
    assert db.session.scalar(select(Message)) is None


# --- support --------------------------------------------------------------------------------


def test_support_sees_every_account_and_filters_by_one(web, people, receiver):
    endpoints.create(people.a.id, receiver.url + "/a", ["sms.sent"])
    endpoints.create(people.b.id, receiver.url + "/b", ["sms.sent"])
    sign_in(web, people.sam.email)
    page = text(web.get("/endpoints"))
    assert receiver.url + "/a" in page and receiver.url + "/b" in page
    assert 'name="account"' in page and ">Beta<" in page
    page = text(web.get(f"/endpoints?account={people.b.id}"))
    assert receiver.url + "/a" not in page and receiver.url + "/b" in page
    assert web.get("/endpoints?account=999").status_code == 404


def test_support_sees_account_names_linked_to_their_filter(web, people, receiver):
    """Not the account's id: its name, linked to that account's Endpoints or Logs."""
    from tnt import apikeys

    e = endpoints.create(people.b.id, receiver.url, ["sms.sent"])
    _delivery(e, status="pending")
    db.session.execute(insert(Attempt), [_attempt(_delivery(e), e, utcnow())])
    db.session.commit()
    apikeys.create(people.b.id, "beta-key")
    sign_in(web, people.sam.email)
    b = people.b.id

    def cell(view):
        return f'<a class="clip" href="/{view}?account={b}" title="Beta">Beta</a>'

    assert f'<td data-label="Account">{cell("logs")}</td>' in text(web.get("/logs"))
    assert f'<td data-label="Account">{cell("logs")}</td>' in text(web.get("/logs?status=pending"))
    assert f"<td>{cell('endpoints')}</td>" in text(web.get("/api-keys"))
    assert cell("endpoints") in text(web.get(f"/endpoints/{e.id}"))
    assert f'<td data-label="Account">{cell("endpoints")}</td>' in text(web.get("/endpoints"))
    row = text(web.post(f"/endpoints/{e.id}/toggle", headers=HX))  # the row htmx swaps in
    assert f'<td data-label="Account">{cell("endpoints")}</td>' in row


def test_support_reaches_any_accounts_endpoint_page(web, people, receiver):
    e = endpoints.create(people.b.id, receiver.url, ["sms.sent"], secret="whsec_beta_secret")
    sign_in(web, people.sam.email)
    # From the list of every account, the link names the endpoint's account ...
    assert f'href="/endpoints/{e.id}?account={people.b.id}"' in text(web.get("/endpoints"))
    page = text(web.get(f"/endpoints/{e.id}?account={people.b.id}"))
    assert receiver.url in page and "whsec_beta_secret" not in page
    assert f"endpoint_id={e.id}&amp;account={people.b.id}" in page  # chart, Logs link
    # ... and the account bar, on a page about one endpoint, goes to the chosen account's list.
    assert '<form class="account-filter" method="get" action="/endpoints">' in page
    assert web.get(f"/endpoints/{e.id}").status_code == 200


def test_support_resend_records_who_did_it(web, people, receiver):
    e = endpoints.create(people.b.id, receiver.url, ["sms.sent"], secret="whsec_beta_secret")
    d = _delivery(e)
    sign_in(web, people.sam.email)
    resp = web.post(f"/logs/deliveries/{d.id}/resend", headers=HX)
    assert resp.status_code == 200 and "resend by sam@tnt.test" in text(resp)
    attempt = db.session.scalars(select(Attempt)).one()
    assert attempt.requested_by_id == people.sam.id and attempt.account_id == people.b.id
    # Support never sees a customer's signing secret.
    page = text(web.get(f"/endpoints/{e.id}/edit"))
    assert "whsec_beta_secret" not in page and "shown to the account" in page
    assert web.post(f"/endpoints/{e.id}/secret", headers=HX).status_code == 403


def test_support_must_choose_an_account_to_send_an_sms(web, people):
    sign_in(web, people.sam.email)
    resp = web.post(
        "/messages",
        data={"mobile": "0712345678", "sender_id": "T", "message": "x", "simulate": "hold"},
    )
    assert resp.status_code == 422 and "Choose the account" in text(resp)
    resp = web.post(
        f"/messages?account={people.b.id}",
        data={"mobile": "0712345678", "sender_id": "T", "message": "x", "simulate": "hold"},
    )
    assert resp.status_code == 302
    assert db.session.scalars(select(Message)).one().account_id == people.b.id


# --- odds and ends --------------------------------------------------------------------------


def test_partial_or_page_views_vary_on_hx_request(alice, endpoint):
    for path in ("/logs", "/logs/rows", "/endpoints", "/messages"):
        assert "HX-Request" in alice.get(path).headers.get("Vary", ""), path


def test_base_template_is_reusable_with_a_nav_slot(app):
    source = app.jinja_env.loader.get_source(app.jinja_env, "base.html")[0]
    assert "{% block nav_extra %}{% endblock %}" in source
    assert "<script>" not in source and " style=" not in source and "hx-on" not in source


def test_no_inline_script_style_or_hx_on_in_any_template(app):
    for name in app.jinja_env.list_templates():
        source = app.jinja_env.loader.get_source(app.jinja_env, name)[0]
        assert not re.search(r"<script(?![^>]*\bsrc=)", source), name
        assert " style=" not in source and "hx-on" not in source, name


def test_unknown_pages_are_404_pages(alice):
    resp = alice.get("/endpoints/999/edit")
    assert resp.status_code == 404 and "Not found" in text(resp)
    resp = alice.get("/logs/attempts/999", headers=HX)
    assert resp.status_code == 404 and resp.content_type.startswith("text/plain")


@pytest.mark.parametrize("hops", [0, 1])
def test_throttling_sees_the_client_behind_the_configured_number_of_proxies(app, people, hops):
    """Behind a PaaS router every request comes from the router. With TNT_PROXY_HOPS=1 the
    router's X-Forwarded-For names the client; with 0 the header is not trusted at all."""
    from tnt import create_app

    proxied = create_app(
        {
            key: app.config[key]
            for key in ("TESTING", "SQLALCHEMY_DATABASE_URI", "REDIS_URL", "SECRET_KEY")
        }
        | {"WTF_CSRF_ENABLED": False, "TNT_PROXY_HOPS": hops}
    )
    router = {"REMOTE_ADDR": "10.0.0.1"}

    def attempt(client_ip, password="nope-nope"):
        return proxied.test_client().post(
            "/login",
            data={"email": people.alice.email, "password": password},
            headers={"X-Forwarded-For": client_ip},
            environ_base=router,
        )

    for _ in range(4):
        attempt("203.0.113.7")  # a stranger fails alice's email until it is locked
    assert attempt("203.0.113.7").status_code == 429
    # Alice, from her own address, is locked out only if the app cannot tell her apart.
    assert attempt("198.51.100.20", PASSWORD).status_code == (429 if hops == 0 else 302)


def test_the_edit_form_keeps_a_secret_out_of_the_page_until_revealed(alice, people, receiver):
    e = endpoints.create(people.a.id, receiver.url, ["sms.sent"], secret="whsec_kept_secret")
    page = text(alice.get(f"/endpoints/{e.id}/edit"))
    assert "whsec_kept_secret" not in page and 'name="secret_kept"' in page
    # Saved with the field left empty: the secret stays.
    form = {"url": receiver.url, "events": ["sms.sent"], "description": "x", "secret": ""}
    assert (
        alice.post(f"/endpoints/{e.id}/edit", data={**form, "secret_kept": "1"}).status_code == 302
    )
    db.session.refresh(e)
    assert (e.description, e.secret) == ("x", "whsec_kept_secret")
    # Reveal is a POST that answers the field, filled in and shown.
    field = text(alice.post(f"/endpoints/{e.id}/secret", headers=HX))
    assert 'type="text" value="whsec_kept_secret"' in field and "secret_kept" not in field
    # A form error keeps the field's meaning: still empty, still "keep".
    resp = alice.post(f"/endpoints/{e.id}/edit", data={**form, "url": "nope", "secret_kept": "1"})
    assert resp.status_code == 422 and 'name="secret_kept"' in text(resp)
    # Without secret_kept (Clear removed it), empty means no secret.
    assert alice.post(f"/endpoints/{e.id}/edit", data=form).status_code == 302
    db.session.refresh(e)
    assert e.secret is None
