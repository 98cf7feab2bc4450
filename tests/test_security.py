"""Web security: headers (and the dashboard working under its CSP in a real browser), cookie
flags, CSRF, signing secrets encrypted at rest and the rotation of their key, and no secret in any
log line of a realistic flow."""

import logging
import re
import secrets
from contextlib import contextmanager

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text
from web_fixtures import PASSWORD, sign_in

from tnt import accounts, apikeys, create_app, crypto, endpoints
from tnt.extensions import db
from tnt.models import EVENTS, Delivery, Endpoint
from tnt.security import HEADERS
from tnt.signing import signature


def another_app(app, **config):
    """A second app on the same database and Redis, built from the environment like the real
    one (its network policy included), with `config` on top."""
    return create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": app.config["REDIS_URL"],
            **config,
        }
    )


@contextmanager
def inside(app_):
    with app_.app_context():
        try:
            yield app_
        finally:
            db.session.remove()
            db.engine.dispose()  # no connection left open to block the next test's TRUNCATE


@pytest.fixture
def production(app, monkeypatch):
    monkeypatch.setenv("TNT_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "production-test-key")
    monkeypatch.setenv("TNT_SECRETS_KEY", Fernet.generate_key().decode())
    prod = another_app(app)
    assert prod.config["TNT_ENV"] == "production"
    assert prod.config["TNT_HTTPS_ONLY"] and not prod.config["TNT_ALLOW_LOOPBACK"]
    prod.test_client_class = app.test_client_class
    with inside(prod):
        yield prod


def raw_secret(endpoint_id: int) -> str | None:
    return db.session.execute(
        text("SELECT secret FROM endpoint WHERE id = :id"), {"id": endpoint_id}
    ).scalar()


# Headers ---------------------------------------------------------------------------------------


def assert_security_headers(resp, where):
    for name, value in HEADERS.items():
        assert resp.headers.get(name) == value, (where, name, resp.headers.get(name))
    csp = resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_security_headers_on_pages_api_and_errors(app, people):
    app.config["WTF_CSRF_ENABLED"] = False
    web, api = app.test_client(), app.test_client()
    _key, raw = apikeys.create(people.a.id, "headers")
    bearer = {"Authorization": f"Bearer {raw}"}
    responses = {
        "login page": web.get("/login"),
        "static file": web.get("/static/app.js"),
        "health": web.get("/healthz"),
        "dashboard 404": web.get("/no-such-page"),
        "API 401": api.get("/api/v1/endpoints"),
        "API 200": api.get("/api/v1/endpoints", headers=bearer),
        "API 404": api.get("/api/v1/endpoints/999", headers=bearer),
        "API docs": api.get("/api/v1/openapi.json"),
    }
    sign_in(web, people.alice.email)
    responses["signed-in page"] = web.get("/endpoints")
    responses["htmx partial"] = web.get(
        "/endpoints/generate-secret", headers={"HX-Request": "true"}
    )
    assert (
        responses["API 200"].status_code == 200 and responses["signed-in page"].status_code == 200
    )
    for where, resp in responses.items():
        assert_security_headers(resp, where)
        # HSTS only in production: over plain HTTP in development it would lock a browser out.
        assert "Strict-Transport-Security" not in resp.headers, where


def test_production_sends_hsts_and_a_secure_session_cookie(production, people):
    client = production.test_client()
    login = client.get("/login")
    assert_security_headers(login, "production login")
    assert login.headers["Strict-Transport-Security"] == "max-age=31536000"
    resp = client.post(
        "/login",
        data={"email": people.alice.email, "password": PASSWORD, "csrf_token": csrf_token(login)},
    )
    assert resp.status_code == 302
    cookie = session_cookie(resp)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/api/v1/openapi.json").headers["Strict-Transport-Security"]


def csrf_token(page) -> str:
    return re.search(r'"X-CSRFToken": "([^"]+)"', page.get_data(as_text=True)).group(1)


def session_cookie(resp) -> str:
    cookies = [c for c in resp.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert len(cookies) == 1, resp.headers.getlist("Set-Cookie")
    return cookies[0]


def test_session_cookie_in_development_is_httponly_and_samesite(app, people):
    app.config["WTF_CSRF_ENABLED"] = False
    resp = sign_in(app.test_client(), people.alice.email)
    assert resp.status_code == 302
    cookie = session_cookie(resp)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # development runs on plain http://localhost


def test_forms_and_htmx_posts_without_the_csrf_token_are_refused(app, people, receiver):
    e = endpoints.create(people.a.id, receiver.url, ["sms.sent"])
    client = app.test_client()
    assert sign_in(client, people.alice.email).status_code == 400  # no token: refused
    token = csrf_token(client.get("/login"))
    assert (
        client.post(
            "/login", data={"email": people.alice.email, "password": PASSWORD, "csrf_token": token}
        ).status_code
        == 302
    )
    assert (
        client.post(f"/endpoints/{e.id}/toggle", headers={"HX-Request": "true"}).status_code == 400
    )
    assert (
        client.post(
            f"/endpoints/{e.id}/toggle", headers={"HX-Request": "true", "X-CSRFToken": "forged"}
        ).status_code
        == 400
    )
    db.session.expire_all()
    assert db.session.get(Endpoint, e.id).enabled
    ok = client.post(
        f"/endpoints/{e.id}/toggle", headers={"HX-Request": "true", "X-CSRFToken": token}
    )
    assert ok.status_code == 200
    db.session.expire_all()
    assert not db.session.get(Endpoint, e.id).enabled


# Production's network policy, for real ------------------------------------------------------


def test_production_refuses_http_and_loopback_endpoints_at_save(production, people):
    _key, raw = apikeys.create(people.a.id, "production")
    api = production.test_client()
    for url, message in [
        ("http://93.184.216.34/hook", "Use an https:// URL: http is not allowed in production."),
        ("https://127.0.0.1:8443/hook", "Loopback addresses are not allowed."),
        (
            "https://localhost:8443/hook",
            "Loopback addresses are not allowed (localhost resolves to one).",
        ),
    ]:
        resp = api.post(
            "/api/v1/endpoints",
            headers={"Authorization": f"Bearer {raw}"},
            json={"url": url, "events": ["sms.sent"]},
        )
        assert resp.status_code == 422, url
        assert resp.get_json()["error"]["fields"]["url"] == message
    assert db.session.scalars(select(Endpoint)).all() == []


def test_production_refuses_http_and_loopback_at_delivery(production, people, receiver):
    """Endpoints that never passed production's save check (saved before, or written by hand)
    are refused when sent, by the engine's own transport built from production's config."""
    from tnt import worker
    from tnt.models import Attempt

    urls = {
        "http": receiver.url,
        "loopback": f"https://127.0.0.1:{receiver.server.server_port}/hooks",
    }
    deliveries = {}
    for name, url in urls.items():
        endpoint = Endpoint(account_id=people.a.id, url=url, events="sms.delivered")
        db.session.add(endpoint)
        db.session.commit()
        deliveries[name] = endpoints.send_test(endpoint).id
    worker.run(production, burst=True)
    errors = {
        name: db.session.scalars(
            select(Attempt.error).where(Attempt.delivery_id == delivery_id)
        ).one()
        for name, delivery_id in deliveries.items()
    }
    assert errors == {
        "http": "Refused: http is not allowed, use an https:// URL",
        "loopback": "Refused: 127.0.0.1 is a loopback address",
    }
    assert receiver.received() == []


# Secrets at rest -------------------------------------------------------------------------------


def test_production_refuses_to_start_without_the_secrets_key(app, monkeypatch):
    monkeypatch.setenv("TNT_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "production-test-key")
    monkeypatch.delenv("TNT_SECRETS_KEY", raising=False)
    with pytest.raises(crypto.SecretsKeyError, match="TNT_SECRETS_KEY must be set"):
        another_app(app)
    # A malformed key is refused too, and the message does not repeat it.
    good = Fernet.generate_key().decode()
    monkeypatch.setenv("TNT_SECRETS_KEY", f"{good},not-a-key-but-maybe-a-typo")
    with pytest.raises(crypto.SecretsKeyError, match="key 2 of 2 is not a Fernet key") as info:
        another_app(app)
    assert "not-a-key" not in str(info.value) and good not in str(info.value)
    monkeypatch.setenv("TNT_SECRETS_KEY", good)
    assert another_app(app).config["TNT_ENV"] == "production"


def test_secrets_are_stored_encrypted_and_read_back_by_orm_and_core(app, account, receiver, work):
    secret = "whsec_" + secrets.token_urlsafe(24)
    e = endpoints.create(account.id, receiver.url, ["sms.delivered"], "", secret)
    plain = endpoints.create(account.id, receiver.url, ["sms.delivered"], "", None)

    stored = raw_secret(e.id)
    assert secret not in stored and stored.startswith("gAAAAA")
    assert app.extensions[crypto.EXTENSION].decrypt(stored.encode()).decode() == secret
    assert raw_secret(plain.id) is None
    # The same secret twice gives two different tokens (random IV): equal secrets don't show.
    twin = endpoints.create(account.id, receiver.url, ["sms.delivered"], "", secret)
    assert raw_secret(twin.id) != stored

    db.session.expire_all()
    assert db.session.get(Endpoint, e.id).secret == secret
    assert (
        db.session.execute(
            select(Endpoint.__table__.c.secret).where(Endpoint.__table__.c.id == e.id)
        ).scalar()
        == secret
    )
    assert repr(db.session.get(Endpoint, e.id).secret) == "Secret('***')"
    # The worker reads secrets with Core: the webhook is signed with the real secret.
    endpoints.send_test(db.session.get(Endpoint, e.id))
    work()
    [req] = receiver.received()
    assert req["headers"]["X-TalkNTalk-Signature"] == signature(req["body"], secret)

    # A token altered in the database fails loudly instead of signing with garbage.
    db.session.execute(
        text("UPDATE endpoint SET secret = :s WHERE id = :id"),
        {"s": stored[:-6] + ("AAAAAA" if not stored.endswith("AAAAAA") else "BBBBBB"), "id": e.id},
    )
    db.session.commit()
    db.session.expire_all()
    with pytest.raises(crypto.SecretsKeyError, match="cannot be decrypted"):
        _ = db.session.get(Endpoint, e.id).secret
    db.session.rollback()


def test_rotating_the_secrets_key(app, account):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with inside(another_app(app, TNT_SECRETS_KEY=old)):
        ids = [
            endpoints.create(account.id, "http://127.0.0.1:9/x", ["sms.sent"], "", s).id
            for s in ("whsec_first_secret", "whsec_second_secret")
        ]
        empty = endpoints.create(account.id, "http://127.0.0.1:9/x", ["sms.sent"]).id
    # A secret saved before encryption existed (plaintext in the column).
    legacy = endpoints.create(account.id, "http://127.0.0.1:9/x", ["sms.sent"]).id
    db.session.execute(
        text("UPDATE endpoint SET secret = 'whsec_legacy_plain' WHERE id = :id"), {"id": legacy}
    )
    db.session.commit()
    expected = {
        ids[0]: "whsec_first_secret",
        ids[1]: "whsec_second_secret",
        legacy: "whsec_legacy_plain",
        empty: None,
    }

    def secrets_as_read():
        db.session.expire_all()
        return {i: db.session.get(Endpoint, i).secret for i in expected}

    # Step 1: the new key first, the old one after it. Old tokens still decrypt.
    both = another_app(app, TNT_SECRETS_KEY=f"{new},{old}")
    with inside(both):
        assert secrets_as_read() == expected
        before = {i: raw_secret(i) for i in expected}
        # Step 2: re-encrypt everything with the new key.
        result = both.test_cli_runner().invoke(args=["tnt", "rotate-secrets-key"])
        assert result.exit_code == 0, result.output
        assert "re-encrypted 3 signing secret(s)" in result.output
        after = {i: raw_secret(i) for i in expected}
    assert after[empty] is None
    for i in (ids[0], ids[1], legacy):
        assert after[i] != before[i] and after[i].startswith("gAAAAA")
        assert Fernet(new).decrypt(after[i].encode()).decode() == expected[i]
    # Step 3: drop the old key; everything still reads.
    with inside(another_app(app, TNT_SECRETS_KEY=new)):
        assert secrets_as_read() == expected
    # The old key alone no longer reads them.
    with inside(another_app(app, TNT_SECRETS_KEY=old)):
        db.session.expire_all()
        with pytest.raises(crypto.SecretsKeyError):
            _ = db.session.get(Endpoint, ids[0]).secret
        db.session.rollback()
        # Rotating with a key list that misses a token's key changes nothing and says why.
        result = app_cli(old, app)
        assert result.exit_code != 0 and "cannot be decrypted" in result.output
    with inside(another_app(app, TNT_SECRETS_KEY=new)):
        assert {i: raw_secret(i) for i in expected} == after


def app_cli(keys, app):
    other = another_app(app, TNT_SECRETS_KEY=keys)
    try:
        return other.test_cli_runner().invoke(args=["tnt", "rotate-secrets-key"])
    finally:
        with other.app_context():
            db.engine.dispose()


# No secret in any log line -------------------------------------------------------------------


def test_no_secret_in_any_log_line(app, people, receiver, work, caplog):
    # Every logger at DEBUG: SQLAlchemy keeps its own at WARNING unless asked (and Alembic's
    # logging config, loaded by the migration tests, pins sqlalchemy.engine there).
    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level not in (
            logging.NOTSET,
            logging.DEBUG,
        ):
            caplog.set_level(logging.DEBUG, logger=name)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    app.config["WTF_CSRF_ENABLED"] = False
    web, api = app.test_client(), app.test_client()
    wrong_password = "wrong-" + PASSWORD
    sign_in(web, people.alice.email, wrong_password)
    assert sign_in(web, people.alice.email).status_code == 302

    # An endpoint with a secret from the dashboard, an API key, and another endpoint by API.
    dash_secret = "whsec_dash_" + secrets.token_urlsafe(16)
    assert (
        web.post(
            "/endpoints/new",
            data={
                "url": receiver.url,
                "events": list(EVENTS),
                "description": "dash",
                "secret": dash_secret,
            },
        ).status_code
        == 302
    )
    page = web.post("/api-keys", data={"name": "billing"}).get_data(as_text=True)
    raw_key = re.search(r'id="new-key-value">([^<]+)<', page).group(1)
    bearer = {"Authorization": f"Bearer {raw_key}"}
    api_secret = "whsec_api_" + secrets.token_urlsafe(16)
    created = api.post(
        "/api/v1/endpoints",
        headers=bearer,
        json={"url": receiver.url, "events": ["sms.sent", "sms.delivered"], "secret": api_secret},
    )
    assert created.status_code == 201
    api_endpoint = created.get_json()["id"]
    assert (
        api.get("/api/v1/endpoints", headers={"Authorization": "Bearer tnt_wrong"}).status_code
        == 401
    )

    # An SMS: its events are signed and delivered by the worker; the very first POST fails.
    receiver.respond = [(500, b"down"), (200, b"ok")]
    assert (
        api.post(
            "/api/v1/messages",
            headers=bearer,
            json={"mobile": "0712345678", "message": "hello", "simulate": "delivered"},
        ).status_code
        == 201
    )
    work()
    work()
    retrying = db.session.scalar(select(Delivery.id).where(Delivery.status == "retrying"))
    assert retrying is not None
    # Resend from the dashboard and from the API; rotate the API endpoint's secret and test it.
    assert web.post(f"/logs/deliveries/{retrying}/resend").status_code == 302
    assert api.post(f"/api/v1/deliveries/{retrying}/resend", headers=bearer).status_code == 200
    rotated = api.post(f"/api/v1/endpoints/{api_endpoint}/secret/rotate", headers=bearer)
    rotated_secret = rotated.get_json()["secret"]
    assert api.post(f"/api/v1/endpoints/{api_endpoint}/test", headers=bearer).status_code == 202
    work()

    sent = receiver.received()
    signatures = [r["headers"]["X-TalkNTalk-Signature"] for r in sent]
    assert len(signatures) >= 7  # 2 events x 2 endpoints, 2 resends, 1 test
    for sig, r in zip(signatures, sent, strict=False):
        assert sig in {signature(r["body"], s) for s in (dash_secret, api_secret, rotated_secret)}

    forbidden = {
        "dashboard secret": dash_secret,
        "API secret": api_secret,
        "rotated secret": rotated_secret,
        "password": PASSWORD,
        "wrong password": wrong_password,
        "API key": raw_key,
    }
    forbidden.update(
        {f"signature {i}": s.removeprefix("sha256=") for i, s in enumerate(signatures)}
    )
    records = caplog.records
    # The capture saw the interesting places: SQL with its parameters and rows, and the worker.
    loggers = {r.name for r in records}
    assert "sqlalchemy.engine.Engine" in loggers, loggers
    assert any(r.name.startswith("rq.") for r in records), loggers
    assert any("INSERT INTO endpoint" in r.getMessage() for r in records)
    assert any(r.getMessage().startswith("Row ") for r in records)
    leaks = [
        (what, r.name, r.getMessage()[:200])
        for r in records
        for what, value in forbidden.items()
        if value in r.getMessage() or value in (r.exc_text or "")
    ]
    assert leaks == []
    assert not [what for what, value in forbidden.items() if value in caplog.text]


# The dashboard under its CSP in a real browser -------------------------------------------------


def test_the_dashboard_works_under_its_content_security_policy(page, people, receiver):
    from playwright.sync_api import expect

    failed = []
    page.on(
        "response",
        lambda resp: (
            failed.append(f"{resp.status} {resp.url}")
            if resp.status >= 400 and not resp.url.endswith("/favicon.ico")
            else None
        ),
    )
    login = page.goto("/login")
    assert login.headers["content-security-policy"] == HEADERS["Content-Security-Policy"]
    page.fill("#email", people.alice.email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/endpoints")

    # htmx partials (generate secret), app.js behaviour (reveal), a form post.
    page.click("text=Add endpoint")
    page.click("button:has-text('Generate')")
    expect(page.locator("#secret")).to_have_attribute("type", "text")
    page.click("[data-secret=reveal]")
    expect(page.locator("#secret")).to_have_attribute("type", "password")
    page.fill("#url", receiver.url)
    page.click("button:has-text('Create endpoint')")
    page.wait_for_url("**/endpoints")
    # An htmx POST carrying the CSRF header from <body hx-headers>.
    page.locator("button.switch").first.click()
    expect(page.locator("button.switch").first).to_have_attribute("aria-checked", "false")

    page.click("nav >> text=Logs")
    expect(page.locator("svg.chart")).to_be_visible()  # loaded by hx-trigger="load"
    page.click("nav >> text=Messages")
    expect(page.locator("#sms-form")).to_be_visible()

    # API keys: create one, then revoke it through the confirm dialog (no inline onsubmit).
    page.goto("/api-keys")
    page.fill("#key-name", "browser")
    page.click("button:has-text('Create key')")
    expect(page.locator("#new-key-value")).to_contain_text("tnt_")
    dialogs = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.click("button:has-text('Revoke')")
    expect(page.locator("#api-keys")).to_contain_text("revoked")
    assert dialogs and "Revoke this key" in dialogs[0]
    page.goto("/api-docs")
    expect(page.locator("h1")).to_be_visible()

    assert failed == []


def test_an_undecryptable_secret_fails_its_own_deliveries_only(app, account, receiver, work):
    """A key removed too early: that endpoint's deliveries fail with the reason (never sent
    unsigned), and every other endpoint's deliveries in the same claim go out."""
    from tnt.models import Attempt, Delivery

    broken = endpoints.create(
        account.id,
        receiver.url + "/broken",
        ["sms.delivered"],
        "",
        "whsec_written_under_a_lost_key",
    )
    fine = endpoints.create(account.id, receiver.url + "/fine", ["sms.delivered"], "", "whsec_fine")
    endpoints.send_test(broken)
    endpoints.send_test(fine)
    broken_id = broken.id
    lost_key_token = Fernet(Fernet.generate_key()).encrypt(b"whsec_lost").decode()
    db.session.execute(
        text("UPDATE endpoint SET secret = :s WHERE id = :id"),
        {"s": lost_key_token, "id": broken_id},
    )
    db.session.commit()
    db.session.expire_all()
    work()
    assert [r["path"] for r in receiver.received()] == ["/hooks/fine"]
    db.session.expire_all()
    failed = db.session.scalars(select(Delivery).where(Delivery.endpoint_id == broken_id)).one()
    attempt = db.session.scalars(select(Attempt).where(Attempt.delivery_id == failed.id)).one()
    assert failed.status == "retrying" and not attempt.ok
    assert "signing secret cannot be decrypted" in attempt.error


def test_the_demo_refuses_production_before_creating_anyone(production):
    from tnt import demo

    result = production.test_cli_runner().invoke(args=["tnt", "demo"])
    assert result.exit_code == 1 and "development only" in result.output
    assert accounts.find_user(demo.CUSTOMER[0]) is None
    assert accounts.find_user(demo.SUPPORT[0]) is None
