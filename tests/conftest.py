"""Fixtures: the app on SQLite (default) or TEST_DATABASE_URL, real Redis (TEST_REDIS_URL or the
bundled server), and a real HTTP receiver."""

import contextlib
import contextvars
import json
import os
import queue as queue_mod
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import freezegun
import pytest
from flask import has_app_context
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import text

from tnt import create_app
from tnt.extensions import db

# The app is production unless told otherwise; the tests (and the worker processes they start)
# are development. Tests of production set TNT_ENV themselves.
os.environ["TNT_ENV"] = "development"

# Deadlines inside the HTTP client run on the real clock even while a test freezes time.
freezegun.configure(extend_ignore_list=["tnt.transport", "urllib3", "http.client", "socket"])


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    return os.environ.get("TEST_DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    )


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    from tnt.devserver import start_embedded_redis

    directory = tmp_path_factory.mktemp("redis")
    proc = start_embedded_redis(directory)
    yield f"unix://{directory / 'redis.sock'}"
    proc.terminate()
    proc.wait()


@pytest.fixture(scope="session")
def _schema(database_url, redis_url):
    from tnt.config import database_url as normalise

    app = create_app({"SQLALCHEMY_DATABASE_URI": normalise(database_url), "REDIS_URL": redis_url})
    with app.app_context():
        db.drop_all()
        db.create_all()
        db.engine.dispose()
    return normalise(database_url)


class IsolatedClient(FlaskClient):
    """A test client whose every request runs outside the test's own app context, so Flask
    pushes a fresh one as a server does: nothing a request keeps in `g` (Flask-Login's user)
    or in its database session is seen by the test or by another client's request."""

    def open(self, *args, **kwargs):
        response = contextvars.Context().run(super().open, *args, **kwargs)
        if has_app_context():
            db.session.expire_all()  # the test's objects then show what the request wrote
        return response


@pytest.fixture
def app(_schema, redis_url):
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": _schema,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "test",
            "TNT_ALLOW_LOOPBACK": True,
            "TNT_HTTPS_ONLY": False,
            "TNT_DELIVERY_TIMEOUT": 2.0,
            "TNT_SIMULATED_DLR_DELAY": 0,
            "TNT_DRAIN_IDLE": 0.05,  # a burst worker's drain job ends soon after the work does
        }
    )
    app.test_client_class = IsolatedClient
    with app.app_context():
        _empty_tables()
        Redis.from_url(redis_url).flushdb()
        yield app
        db.session.remove()
        db.engine.dispose()


def _empty_tables():
    tables = list(reversed(db.metadata.sorted_tables))
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request.

    `respond` is a list of (status, body) answers used in order; the last one repeats.
    """

    def __init__(self):
        self.requests = queue_mod.Queue()
        self.respond = [(200, b"ok")]
        self._served = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.put({"path": self.path, "headers": dict(self.headers), "body": body})
                status, reply = outer.respond[min(outer._served, len(outer.respond) - 1)]
                outer._served += 1
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # many POSTs connect at once: none waits on a SYN retry

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self) -> list[dict]:
        out = []
        while not self.requests.empty():
            out.append(self.requests.get())
        return out

    def json(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.received()]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def account(app):
    from tnt import accounts

    return accounts.create_account("Acme")


@pytest.fixture
def work(app):
    """Run a real RQ worker (with the scheduler) on real Redis until the queue is empty."""
    from tnt import worker

    return lambda: worker.run(app, burst=True)


@pytest.fixture
def people(app):
    """Two customer accounts (Acme: alice, Beta: bob) and a support user (sam)."""
    from web_fixtures import make_people

    return make_people()


# The API: a key of `account`'s and a client that sends it. -------------------------------------


@pytest.fixture
def api_key(account):
    from tnt import apikeys

    _key, raw = apikeys.create(account.id, "tests")
    return raw


@pytest.fixture
def api(client, api_key):
    """The test client with this account's key on every request."""

    class Api:
        headers = {"Authorization": f"Bearer {api_key}"}  # noqa: RUF012

        def __getattr__(self, method):
            def call(path, **kw):
                kw["headers"] = self.headers | kw.get("headers", {})
                return getattr(client, method)(path, **kw)

            return call

    return Api()


@pytest.fixture
def other(app):
    """Another account with one of everything: a held message, an endpoint, a delivery."""
    from tnt import accounts, endpoints, events, messages

    acct = accounts.create_account("Other Co")
    msg = messages.send_sms(acct.id, "0712345678", "OTHER", "hi", simulate="hold")
    ep = endpoints.create(acct.id, "http://127.0.0.1:9/hooks", ["sms.delivered"])
    d = events.fire_test(ep, "sms.delivered")
    db.session.commit()
    return {"account": acct, "message": msg.id, "endpoint": ep.id, "delivery": d.id}


# The dashboard as a signed-in user, and a real SMTP server. ----------------------------------------


@pytest.fixture
def signed_in(app):
    """signed_in(user) -> a test client signed in as that user (CSRF checks off; the CSRF tests
    have their own clients)."""
    from web_fixtures import sign_in

    app.config["WTF_CSRF_ENABLED"] = False

    def sign(user, **environ):
        client = app.test_client()
        client.environ_base.update(environ)
        assert sign_in(client, user.email).status_code == 302
        return client

    return sign


class Mailbox:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts; with
    `login`, it offers AUTH (over plain SMTP: a test server) and takes only that user."""

    def __init__(self, login: tuple[str, str] | None = None):
        import email
        import email.policy
        import socket

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages = queue_mod.Queue()
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                outer.messages.put((envelope.rcpt_tos, message))
                return "250 OK"

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = (auth_data.login.decode(), auth_data.password.decode()) == login
            return AuthResult(success=ok)

        with socket.socket() as s:  # aiosmtpd's controller needs a port number up front
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        options = {"authenticator": authenticate, "auth_require_tls": False} if login else {}
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port, **options)
        self.controller.start()
        credentials = f"{login[0]}:{login[1]}@" if login else ""
        self.url = f"smtp://{credentials}127.0.0.1:{port}"

    def received(self) -> list:
        out = []
        while not self.messages.empty():
            out.append(self.messages.get())
        return out

    def stop(self):
        self.controller.stop()


@pytest.fixture
def mailbox(app, request):
    """A real SMTP server the app sends through (TNT_SMTP_URL). Parametrize it indirectly with
    (user, password) for one that wants a login."""
    box = Mailbox(login=getattr(request, "param", None))
    app.config["TNT_SMTP_URL"] = box.url
    yield box
    box.stop()


# Real worker processes and a receiver that counts what they send. -------------------------------


@pytest.fixture
def hooks():
    from workers import CountingReceiver

    r = CountingReceiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def spawn(_schema, redis_url, tmp_path):
    """Start real worker processes, each in its own process group (the worker and the RQ
    scheduler it forks die together, as on a host that goes away)."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    procs = []

    def start(name: str, **env) -> subprocess.Popen:
        log = tmp_path / f"{name}.log"
        env = (
            dict(
                os.environ,
                DATABASE_URL=_schema,
                REDIS_URL=redis_url,
                TNT_ALLOW_LOOPBACK="1",
                TNT_INSTANCE_PATH=str(tmp_path),
            )
            | env
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "tnt", "worker"],
            cwd=root,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log = log
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# The real browser: every test that drives one goes through `page`. -----------------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's package; .ci/run installs it


@pytest.fixture
def live_server(app):
    """The app served over real HTTP on 127.0.0.1 (threaded, like gunicorn's threads)."""
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


@pytest.fixture
def page(live_server):
    """A Chromium page at 1360x900 on the live server. Skipped, with the reason, on a machine
    without chromium. `page.problems` collects page errors and Content-Security-Policy
    violations; the test fails if any remain at the end."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            context = browser.new_context(
                base_url=live_server, viewport={"width": 1360, "height": 900}
            )
            context.set_default_timeout(8000)
            pg = context.new_page()
            pg.problems = []
            pg.on("pageerror", lambda exc: pg.problems.append(f"page error: {exc}"))
            pg.on(
                "console",
                lambda msg: (
                    pg.problems.append(f"{pg.url}: {msg.text}")
                    if "Content Security Policy" in msg.text
                    else None
                ),
            )
            yield pg
            assert pg.problems == [], pg.problems
        finally:
            browser.close()
