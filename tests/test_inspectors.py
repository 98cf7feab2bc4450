"""The request inspector (tnt.inspectors): capture, the mock answer, signatures and repeats,
curl replays run with the real curl, expiry, limits, the dashboard, the API, and netguard's
explicit rule for the service's own capture URL in production."""

import datetime as dt
import json
import shutil
import subprocess
import threading
from datetime import timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select
from tls import PKI
from web_fixtures import sign_in

from tnt import endpoints, inspectors, netguard
from tnt.extensions import db
from tnt.models import Attempt, CapturedRequest, Delivery, Endpoint, Inspector
from tnt.scope import Scope
from tnt.signing import signature


@pytest.fixture
def public(app, live_server):
    """The app's public address is the live server, so the worker's POSTs reach its inspectors."""
    app.config["TNT_PUBLIC_URL"] = live_server
    return live_server


def captured(inspector) -> list[CapturedRequest]:
    db.session.expire_all()
    return list(reversed(inspectors.requests_of(inspector)))  # oldest first


def post(client, inspector, body=b"{}", **headers):
    return client.post(f"/in/{inspector.token}", data=body, headers=headers)


# Capturing -------------------------------------------------------------------------------------


def test_a_capture_keeps_the_exact_bytes_headers_and_address(app, client, account):
    i = inspectors.create(account.id, "raw")
    body = b'{"a": 1}\r\n\x00\xff'
    resp = client.post(
        f"/in/{i.token}?x=1",
        data=body,
        headers={"Content-Type": "application/octet-stream", "X-Custom": "v 1"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert resp.status_code == 200
    [row] = captured(i)
    assert (row.method, row.query, row.body, row.remote_addr) == (
        "POST",
        "x=1",
        body,
        "203.0.113.9",
    )
    assert ("X-Custom", "v 1") in inspectors.headers_of(row)
    assert (row.signature, row.event_key, row.repeat, row.answered_status) == (
        None,
        None,
        None,
        200,
    )


def test_a_form_body_is_captured_as_bytes_not_parsed(app, client, account):
    """The app refuses NUL in form fields before any view; not here: a capture keeps its bytes."""
    i = inspectors.create(account.id)
    body = b"a=1&b=%00&c"
    resp = post(client, i, body, **{"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 200
    assert captured(i)[0].body == body


def test_only_the_last_100_requests_are_kept(app, client, account):
    i = inspectors.create(account.id)
    for n in range(inspectors.KEEP + 5):
        assert post(client, i, str(n).encode()).status_code == 200
    rows = captured(i)
    assert len(rows) == inspectors.KEEP
    assert [r.body for r in rows[:2]] == [b"5", b"6"]
    assert rows[-1].body == b"104"


def test_a_body_over_256_kib_is_refused_with_413_and_not_stored(app, client, account):
    i = inspectors.create(account.id)
    assert post(client, i, b"x" * inspectors.MAX_BODY).status_code == 200
    resp = post(client, i, b"x" * (inspectors.MAX_BODY + 1))
    assert resp.status_code == 413
    assert "256 KiB" in resp.get_data(as_text=True)
    # Without a Content-Length (chunked), the limit holds while reading.
    resp = client.post(
        f"/in/{i.token}",
        input_stream=__import__("io").BytesIO(b"y" * (inspectors.MAX_BODY + 10)),
        headers={"Transfer-Encoding": "chunked"},
        environ_base={"wsgi.input_terminated": True},  # as gunicorn says of a chunked body
    )
    assert resp.status_code == 413
    assert [len(r.body) for r in captured(i)] == [inspectors.MAX_BODY]


def test_unknown_and_expired_inspectors(app, client, account):
    assert client.post("/in/" + "x" * 32, data=b"{}").status_code == 404
    with freeze_time("2026-05-20 08:00") as clock:
        i = inspectors.create(account.id, add_endpoint=True)
        made, kept = i.endpoint, inspectors.create(account.id, add_endpoint=True).endpoint
        endpoints.update(kept, "http://127.0.0.1:9/mine", kept.event_list)  # now the customer's
        clock.tick(timedelta(days=7) - timedelta(seconds=1))
        assert post(client, i).status_code == 200
        clock.tick(1)
        resp = post(client, i)
        assert resp.status_code == 410
        assert "expired" in resp.get_data(as_text=True)
        with pytest.raises(inspectors.NotFound):
            inspectors.get(Scope.account(account.id), i.id)
        assert inspectors.list_for(Scope.account(account.id)) == []
        assert inspectors.purge_expired() == 2  # what the worker's sweeper runs
        # The endpoint that still pointed at it is gone too; the one changed since stays.
        assert (made.deleted_at is not None, kept.deleted_at is None) == (True, True)
    assert db.session.scalar(select(func.count()).select_from(Inspector)) == 0
    assert db.session.scalar(select(func.count()).select_from(CapturedRequest)) == 0
    assert client.post(f"/in/{i.token}", data=b"{}").status_code == 404


def test_the_capture_route_is_rate_limited_per_inspector(app, client, account):
    app.config["TNT_INSPECTOR_RATE_LIMIT"] = "3/minute"
    one, two = inspectors.create(account.id), inspectors.create(account.id)
    assert [post(client, one).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert post(client, two).status_code == 200  # another inspector has its own allowance
    assert len(captured(one)) == 3


# The mock answer -------------------------------------------------------------------------------


def test_the_mock_answer_is_served_as_text_never_html(app, client, account):
    i = inspectors.create(account.id)
    inspectors.set_mock(i, status_code=418, body="<script>alert(1)</script>")
    resp = post(client, i)
    assert resp.status_code == 418
    assert resp.get_data() == b"<script>alert(1)</script>"
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    inspectors.set_mock(i, body='{"ok": true}', status_code=201)
    resp = post(client, i)
    assert (resp.status_code, resp.headers["Content-Type"]) == (201, "application/json")


def test_the_mock_answer_is_validated_naming_each_field(app, account):
    i = inspectors.create(account.id)
    with pytest.raises(inspectors.InvalidInput) as exc:
        inspectors.set_mock(i, status_code=99, delay_ms=15001, fail_first=-1, body="x" * 20000)
    assert set(exc.value.fields) == {"status_code", "delay_ms", "fail_first", "body"}


def test_a_delay_holds_the_answer(app, client, account):
    i = inspectors.create(account.id)
    inspectors.set_mock(i, delay_ms=300)
    started = __import__("time").monotonic()
    assert post(client, i).status_code == 200
    assert __import__("time").monotonic() - started >= 0.3


def test_fail_first_n_is_exact_under_concurrent_requests(app, account, live_server):
    """Several web threads (as gunicorn's processes) race: exactly N answers are 500."""
    import urllib.request

    i = inspectors.create(account.id)
    inspectors.set_mock(i, fail_first=5)
    url = f"{live_server}/in/{i.token}"
    statuses, lock = [], threading.Lock()

    def send():
        request = urllib.request.Request(url, data=b"{}", method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
                code = resp.status
        except urllib.error.HTTPError as exc:
            code = exc.code
        with lock:
            statuses.append(code)

    threads = [threading.Thread(target=send) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 11 + [500] * 5
    db.session.expire_all()
    assert db.session.get(Inspector, i.id).failed == 5
    assert sorted(r.answered_status for r in captured(i)) == [200] * 11 + [500] * 5


# Signatures and repeats ------------------------------------------------------------------------


def test_signature_verified_mismatch_and_missing_with_the_endpoints_secret(app, client, account):
    i = inspectors.create(account.id, add_endpoint=True)
    secret = i.endpoint.secret
    assert secret.startswith("whsec_")
    assert i.endpoint.event_list == list(inspectors.endpoints.EVENTS)
    body = b'{"event": "sms.sent", "data": {"id": 7}}'
    post(client, i, body, **{"X-TalkNTalk-Signature": signature(body, secret)})
    post(client, i, body, **{"X-TalkNTalk-Signature": signature(body, "another-secret")})
    post(client, i, body)
    post(client, i, body, **{"X-TalkNTalk-Signature": "sha256=é"})
    assert [r.signature for r in captured(i)] == ["verified", "mismatch", "missing", "mismatch"]
    plain = inspectors.create(account.id)  # no endpoint: nothing to check against
    post(client, plain, body, **{"X-TalkNTalk-Signature": signature(body, secret)})
    assert captured(plain)[0].signature is None


def test_a_repeat_of_event_and_data_id_is_flagged(app, client, account):
    i = inspectors.create(account.id)
    sent = b'{"event": "sms.sent", "data": {"id": 7}}'
    delivered = b'{"event": "sms.delivered", "data": {"id": 7}}'
    post(client, i, sent, **{"X-TalkNTalk-Delivery": "d1"})
    post(client, i, delivered, **{"X-TalkNTalk-Delivery": "d2"})
    post(client, i, sent, **{"X-TalkNTalk-Delivery": "d1"})  # a retry of d1
    post(client, i, sent, **{"X-TalkNTalk-Delivery": "d3"})  # the same event, another delivery
    post(client, i, b"not json")
    rows = captured(i)
    assert [r.event_key for r in rows] == ["sms.sent 7", "sms.delivered 7"] + ["sms.sent 7"] * 2 + [
        None
    ]
    assert [r.repeat for r in rows] == [None, None, "retry", "duplicate", None]


# Real deliveries: add as endpoint, a verified signature, fail first 1 and the retry --------------


def test_deliveries_reach_the_inspector_verified_and_a_retry_lands_a_minute_later(
    app, account, public, work
):
    start = dt.datetime(2026, 5, 20, 8, 30)
    with freeze_time(start) as clock:
        i = inspectors.create(account.id, "journey", add_endpoint=True)
        assert i.endpoint.url == f"{public}/in/{i.token}"
        inspectors.set_mock(i, fail_first=1)
        d = endpoints.send_test(i.endpoint, "sms.sent")
        work()
        [first] = captured(i)
        assert (first.answered_status, first.signature, first.repeat) == (500, "verified", None)
        db.session.expire_all()
        d = db.session.get(Delivery, d.id)
        assert (d.status, d.next_attempt_at) == ("retrying", start + timedelta(minutes=1))
        clock.tick(59)
        work()
        assert len(captured(i)) == 1, "the retry ran early"
        clock.tick(1)
        work()
        first, retry = captured(i)
        assert (retry.answered_status, retry.signature, retry.repeat) == (200, "verified", "retry")
        assert retry.received_at - first.received_at == timedelta(minutes=1)
        assert retry.body == first.body
        db.session.expire_all()
        assert db.session.get(Delivery, d.id).status == "delivered"
        assert [a.status_code for a in db.session.scalars(select(Attempt))] == [500, 200]


# Replay as curl: the real curl against a real receiver --------------------------------------------


@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("bash") is None,
    reason="the replay is run with the real curl under bash (apt-get install curl; .ci/run does)",
)
@pytest.mark.parametrize(
    "body",
    [
        b'{"event": "sms.sent", "data": {"id": 1, "message": "It\'s \\"quoted\\" \xe2\x82\xac $HOME `id`"}}',
        b"binary \x00\x01\xff\xfe and a trailing newline\n",
        b"line one\r\nline two\ttab\x1b[31m",
        b"",
    ],
    ids=["json", "binary", "control-characters", "empty"],
)
def test_the_curl_replay_resends_exactly_the_bytes_and_headers(
    app, client, account, receiver, body
):
    i = inspectors.create(account.id)
    sent_headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-TalkNTalk-Signature": "sha256=abc'def",
        "X-Quote": "a 'b' \"c\" $(id) \\ `x`",
        "User-Agent": "TalkNTalk-Webhooks/0.1.0",
    }
    assert post(client, i, body, **sent_headers).status_code == 200
    [row] = captured(i)
    command = inspectors.curl_command(row, receiver.url)
    subprocess.run(["bash", "-c", command], check=True, timeout=10, capture_output=True)
    [got] = receiver.received()
    assert got["body"] == body
    theirs = {k.lower(): v for k, v in got["headers"].items()}
    ours = {k.lower(): v for k, v in inspectors.headers_of(row)}
    assert {k: theirs.get(k) for k in ours if k != "host"} == {
        k: v for k, v in ours.items() if k != "host"
    }
    # And nothing curl would add on its own: the same header names, Host and framing aside.
    framing = {"host", "content-length"}
    assert set(theirs) - framing == set(ours) - framing
    assert theirs["content-length"] == str(len(body))


def test_a_curl_replay_needs_a_url(app, account):
    i = inspectors.create(account.id)
    inspectors.capture(i, "POST", "", [], b"{}", "127.0.0.1")
    [row] = captured(i)
    for bad in ("", "ftp://x", "http://a b", "javascript:alert(1)"):
        with pytest.raises(inspectors.InvalidInput) as exc:
            inspectors.curl_command(row, bad)
        assert "url" in exc.value.fields


# netguard's explicit rule -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "own"),
    [
        ("https://hooks.example.com/in/" + "a" * 32, True),
        ("https://HOOKS.example.com:443/in/" + "a" * 32, True),
        ("http://hooks.example.com/in/" + "a" * 32, False),  # another scheme
        ("https://hooks.example.com:8443/in/" + "a" * 32, False),  # another port
        ("https://evil.example/in/" + "a" * 32, False),
        ("https://hooks.example.com.evil.example/in/" + "a" * 32, False),
        ("https://user@hooks.example.com/in/" + "a" * 32, False),
        ("https://hooks.example.com/in/" + "a" * 32 + "/../../api", False),
        ("https://hooks.example.com/in/%2e%2e/api/v1/endpoints", False),
        ("https://hooks.example.com/in/" + "a" * 32 + "?x=1", False),
        ("https://hooks.example.com/in/" + "a" * 32 + "#x", False),
        ("https://hooks.example.com/api/v1/endpoints", False),
        ("https://hooks.example.com/in/", False),
    ],
)
def test_is_own_capture_url(url, own):
    assert netguard.is_own_capture_url(url, "https://hooks.example.com") is own
    assert netguard.is_own_capture_url(url, None) is False


def test_the_own_capture_rule_never_opens_metadata_or_link_local(app):
    for text, kind in (("169.254.169.254", "cloud metadata"), ("169.254.1.1", "link-local")):
        refusal = netguard.connect_refusal(text, allow_loopback=False, own_capture=True)
        assert refusal is not None and refusal.kind == kind
    assert netguard.connect_refusal("127.0.0.1", allow_loopback=False, own_capture=True) is None
    assert netguard.connect_refusal("10.1.2.3", allow_loopback=False, own_capture=True) is None
    refused = netguard.connect_refusal("127.0.0.1", allow_loopback=False, own_capture=False)
    assert refused is not None and refused.kind == "loopback"


def test_production_delivers_to_its_own_capture_url_and_still_refuses_other_loopback(
    app, monkeypatch, tmp_path, people
):
    """TNT_ENV=production (loopback not allowed, https only), the app served over TLS on
    127.0.0.1 as https://localhost:<port>: "add as endpoint" saves its capture URL, the engine's
    own transport delivers to it, and another loopback URL on the same server is refused at
    save and at connect."""
    import ssl

    from cryptography.fernet import Fernet
    from werkzeug.serving import make_server

    from tnt import create_app, worker

    pki = PKI(tmp_path)
    cert, key = pki.good  # for localhost, signed by pki.ca
    monkeypatch.setenv("TNT_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "production-test-key")
    monkeypatch.setenv("TNT_SECRETS_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("SSL_CERT_FILE", pki.ca)  # the transport trusts the system bundle: ours
    prod = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": app.config["REDIS_URL"],
        }
    )
    assert prod.config["TNT_HTTPS_ONLY"] and not prod.config["TNT_ALLOW_LOOPBACK"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = make_server("127.0.0.1", 0, prod, threaded=True, ssl_context=context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    prod.config["TNT_PUBLIC_URL"] = f"https://localhost:{server.server_port}"
    try:
        with prod.app_context():
            i = inspectors.create(people.a.id, add_endpoint=True)
            url = inspectors.capture_url(i)
            assert i.endpoint.url == url == f"https://localhost:{server.server_port}/in/{i.token}"
            other_url = f"https://localhost:{server.server_port}/hooks"
            with pytest.raises(inspectors.InvalidInput) as exc:
                endpoints.create(people.a.id, other_url, ["sms.sent"])
            assert "Loopback addresses are not allowed" in exc.value.fields["url"]
            # Saved before the rule existed, or by hand: refused when sent.
            other = Endpoint(account_id=people.a.id, url=other_url, events="sms.sent")
            db.session.add(other)
            db.session.commit()
            to_inspector = endpoints.send_test(i.endpoint, "sms.sent").id
            to_other = endpoints.send_test(other, "sms.sent").id
            worker.run(prod, burst=True)
            attempts = {a.delivery_id: a for a in db.session.scalars(select(Attempt)).all()}
            assert attempts[to_inspector].ok, attempts[to_inspector].error
            assert attempts[to_inspector].status_code == 200
            assert attempts[to_other].error.startswith("Refused: ")
            assert "loopback address" in attempts[to_other].error
            [row] = captured(i)
            assert row.signature == "verified"
            db.session.remove()
            db.engine.dispose()
    finally:
        server.shutdown()


def test_production_without_a_public_url_says_which_setting_to_set(app, monkeypatch, people):
    from cryptography.fernet import Fernet

    from tnt import create_app

    monkeypatch.setenv("TNT_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "production-test-key")
    monkeypatch.setenv("TNT_SECRETS_KEY", Fernet.generate_key().decode())
    monkeypatch.delenv("TNT_PUBLIC_URL", raising=False)
    prod = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": app.config["REDIS_URL"],
            "WTF_CSRF_ENABLED": False,
            "SESSION_COOKIE_SECURE": False,
        }
    )
    prod.test_client_class = app.test_client_class
    with prod.app_context():
        from tnt import apikeys

        _key, raw = apikeys.create(people.a.id, "k")
        resp = prod.test_client().post(
            "/api/v1/inspectors", json={}, headers={"Authorization": f"Bearer {raw}"}
        )
        assert resp.status_code == 409
        assert "TNT_PUBLIC_URL" in resp.get_json()["error"]["message"]
        web = prod.test_client()
        sign_in(web, people.alice.email)
        resp = web.post("/inspectors", data={"name": "x", "add_endpoint": "1"})
        assert resp.status_code == 409
        assert "TNT_PUBLIC_URL" in resp.get_data(as_text=True)
        assert db.session.scalar(select(func.count()).select_from(Inspector)) == 0
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize(
    "value", ["hooks.example.com", "https://hooks.example.com/path", "ftp://x", "https://u@h"]
)
def test_a_public_url_that_is_no_address_stops_the_start(value):
    from tnt.config import public_url_from

    with pytest.raises(RuntimeError, match="TNT_PUBLIC_URL"):
        public_url_from(value, production=False)
    with pytest.raises(RuntimeError, match="https"):
        public_url_from("http://hooks.example.com", production=True)
    assert public_url_from("https://hooks.example.com/", production=True) == (
        "https://hooks.example.com"
    )


# The dashboard -------------------------------------------------------------------------------------


def test_dashboard_create_add_endpoint_mock_poll_and_replay(app, client, people):
    app.config["WTF_CSRF_ENABLED"] = False
    sign_in(client, people.alice.email)
    resp = client.post("/inspectors", data={"name": "n" * 81})
    assert resp.status_code == 422
    assert "At most 80 characters" in resp.get_data(as_text=True)
    resp = client.post("/inspectors", data={"name": "mine", "add_endpoint": "0"})
    assert resp.status_code == 302
    i = db.session.scalars(select(Inspector)).one()
    page = client.get(resp.location).get_data(as_text=True)
    assert f"http://localhost/in/{i.token}" in page  # development: the request's own address
    assert "Add as endpoint" in page
    assert client.post(f"/inspectors/{i.id}/endpoint").status_code == 302
    db.session.expire_all()
    assert db.session.get(Inspector, i.id).endpoint.url == f"http://localhost/in/{i.token}"
    assert client.post(f"/inspectors/{i.id}/endpoint").status_code == 409  # once only

    resp = client.post(
        f"/inspectors/{i.id}/mock",
        data={"status_code": "abc", "delay": "16", "fail_first": "1", "body": ""},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 422
    text = resp.get_data(as_text=True)
    assert "Enter a whole number." in text and "15 s" in text
    resp = client.post(
        f"/inspectors/{i.id}/mock",
        data={"status_code": "503", "delay": "0.5", "fail_first": "2", "body": "down"},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 200 and "Saved" in resp.get_data(as_text=True)
    db.session.expire_all()
    i = db.session.get(Inspector, i.id)
    assert (i.status_code, i.delay_ms, i.fail_first, i.body) == (503, 500, 2, "down")

    # The live view's poll: only rows newer than the last one shown, escaped.
    inspectors.capture(i, "POST", "", [("X-A", "<b>hdr</b>")], b"<script>x()</script>", "1.2.3.4")
    first = captured(i)[-1].id
    poll = client.get(f"/inspectors/{i.id}/requests?after=0").get_data(as_text=True)
    assert f'id="request-{first}"' in poll
    assert "&lt;script&gt;x()&lt;/script&gt;" in poll and "<script>x()" not in poll
    assert "&lt;b&gt;hdr&lt;/b&gt;" in poll
    assert f"after={first}" in poll  # the next poll asks from the newest
    poll = client.get(f"/inspectors/{i.id}/requests?after={first}").get_data(as_text=True)
    assert "request-" not in poll and f"after={first}" in poll

    resp = client.get(f"/inspectors/{i.id}/requests/{first}/curl?url=http://localhost:3000/x")
    assert resp.status_code == 200 and "--data-binary @-" in resp.get_data(as_text=True)
    resp = client.get(f"/inspectors/{i.id}/requests/{first}/curl?url=nope")
    assert resp.status_code == 422 and "http://" in resp.get_data(as_text=True)

    inspector_id = i.id
    assert client.post(f"/inspectors/{inspector_id}/delete").status_code == 302
    assert client.get(f"/inspectors/{inspector_id}").status_code == 404


def test_support_sees_any_accounts_inspector_and_must_choose_an_account_to_create(
    app, client, people
):
    app.config["WTF_CSRF_ENABLED"] = False
    i = inspectors.create(people.a.id, "acme's")
    sign_in(client, people.sam.email)
    assert client.get(f"/inspectors/{i.id}").status_code == 200
    resp = client.post("/inspectors", data={"name": "x"})
    assert resp.status_code == 422
    assert "Choose the account" in resp.get_data(as_text=True)
    assert client.post(f"/inspectors?account={people.b.id}", data={}).status_code == 302


def test_the_endpoint_and_messages_pages_lead_to_the_inspector(app, client, people):
    app.config["WTF_CSRF_ENABLED"] = False
    sign_in(client, people.alice.email)
    i = inspectors.create(people.a.id, add_endpoint=True)
    page = client.get(f"/endpoints/{i.endpoint_id}").get_data(as_text=True)
    assert f"/inspectors/{i.id}" in page
    assert "Create a request inspector" in client.get("/messages").get_data(as_text=True)
    assert "/inspectors" in client.get("/endpoints").get_data(as_text=True)  # the nav


# The API -----------------------------------------------------------------------------------------


def test_api_create_set_answer_read_requests_and_replay(app, api, account):
    resp = api.post("/api/v1/inspectors", json={"name": "ci", "add_endpoint": True})
    assert resp.status_code == 201
    made = resp.get_json()
    assert made["url"].startswith("http://localhost/in/") and made["endpoint_id"]
    assert resp.headers["Location"].endswith(f"/api/v1/inspectors/{made['id']}")
    assert api.post(f"/api/v1/inspectors/{made['id']}/endpoint").status_code == 409

    resp = api.patch(f"/api/v1/inspectors/{made['id']}", json={"delay_ms": 20000, "x": 1})
    assert resp.status_code == 422
    assert set(resp.get_json()["error"]["fields"]) == {"delay_ms", "x"}
    resp = api.patch(f"/api/v1/inspectors/{made['id']}", json={"status_code": 500, "fail_first": 1})
    assert resp.status_code == 200
    assert (resp.get_json()["status_code"], resp.get_json()["fail_first"]) == (500, 1)

    i = db.session.get(Inspector, made["id"])
    inspectors.capture(i, "POST", "", [("Content-Type", "application/json")], b"\xff{}", "::1")
    listed = api.get(f"/api/v1/inspectors/{i.id}/requests").get_json()["data"]
    assert len(listed) == 1 and listed[0]["body_base64"] == "/3t9" and listed[0]["size"] == 3
    rid = listed[0]["id"]
    assert api.get(f"/api/v1/inspectors/{i.id}/requests?after={rid}").get_json()["data"] == []
    assert api.get(f"/api/v1/inspectors/{i.id}/requests/{rid}").get_json()["remote_addr"] == "::1"
    resp = api.get(f"/api/v1/inspectors/{i.id}/requests/{rid}/curl?url=http://127.0.0.1:3000/h")
    assert "base64 -d" in resp.get_json()["command"]
    resp = api.get(f"/api/v1/inspectors/{i.id}/requests/{rid}/curl?url=nope")
    assert resp.status_code == 422 and "url" in resp.get_json()["error"]["fields"]
    assert [x["id"] for x in api.get("/api/v1/inspectors").get_json()["data"]] == [i.id]
    assert api.delete(f"/api/v1/inspectors/{made['id']}").status_code == 204
    assert api.get(f"/api/v1/inspectors/{made['id']}").status_code == 404


def test_api_a_request_of_another_inspector_is_not_found(app, api, account):
    one, two = inspectors.create(account.id), inspectors.create(account.id)
    inspectors.capture(one, "POST", "", [], b"{}", "127.0.0.1")
    rid = captured(one)[0].id
    assert api.get(f"/api/v1/inspectors/{two.id}/requests/{rid}").status_code == 404
    assert json.loads(api.get(f"/api/v1/inspectors/{one.id}/requests/{rid}").data)["id"] == rid


def test_an_account_has_at_most_ten_inspectors_at_once(app, account):
    made = [inspectors.create(account.id, f"n{i}") for i in range(inspectors.MAX_PER_ACCOUNT)]
    with pytest.raises(inspectors.Conflict, match="at most 10 inspectors"):
        inspectors.create(account.id, "one too many")
    inspectors.delete_inspector(made[0])
    assert inspectors.create(account.id, "room again").id
    with freeze_time(dt.datetime.now(dt.UTC) + timedelta(days=8)):
        assert inspectors.create(account.id, "the old ones expired").id


def test_the_dashboard_says_when_the_account_has_ten_inspectors(app, client, people):
    app.config["WTF_CSRF_ENABLED"] = False
    sign_in(client, people.alice.email)
    for i in range(inspectors.MAX_PER_ACCOUNT):
        inspectors.create(people.a.id, f"n{i}")
    resp = client.post("/inspectors", data={"name": "eleven"})
    assert resp.status_code == 409
    assert "at most 10 inspectors at once" in resp.get_data(as_text=True)
    assert len(inspectors.list_for(Scope.account(people.a.id))) == 10
