"""Tenancy on every route with an id: customer bob, with account A's real ids, gets a 404 and
changes nothing.

The routes come from `app.url_map`, so a route added tomorrow is checked tomorrow: dashboard
routes are called with bob's session (as a plain request and as htmx), /api/v1 routes with bob's
API key, once per method the rule allows. Requests carry no body the route could reject first:
a route must look its id up (scoped to the caller's account) before it reads the body, or it
answers a 4xx other than 404 here and this test says so.

Below the routes, the domain reads they call: every function in tnt that takes a `scope` takes a
tnt.scope.Scope and refuses a bare account id or None (once "None: every account"). They are
found by walking the package, so a new one is checked too.
"""

import importlib
import inspect
import pkgutil
import typing

import pytest
from sqlalchemy import insert, select
from web_fixtures import sign_in

import tnt
from tnt import apikeys, audit, deliveries, delivery, endpoints, hourly, inspectors, logs, messages
from tnt.audit import Action
from tnt.clock import utcnow
from tnt.extensions import db
from tnt.models import Attempt, AuditEntry, Delivery, Endpoint, Event
from tnt.scope import Scope
from tnt.web import queries

API_PREFIX = "/api/v1/"
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # answered by Flask from the GET view / the url_map

# Path arguments that are not another tenant's ids, each with the reason it needs no check.
# Anything else in a path must be in the `ids` fixture below, or the test fails.
NOT_TENANT_IDS = {
    ("static", "filename"): "public CSS/JS/images, the same for everyone",
    ("capture.capture", "token"): "an inspector's public capture URL: anyone with it may POST",
}

FORM = {
    "url": "http://127.0.0.1:1/bob",
    "events": ["sms.sent"],
    "description": "bob was here",
    "secret": "whsec_bob_was_here",
    "event": "sms.sent",
    "name": "bob",
}


@pytest.fixture
def ids(people, receiver):
    """One of each of account A's things, by the name of the path argument that carries it."""
    e = endpoints.create(people.a.id, receiver.url, ["sms.sent"], "Acme hook", "whsec_acme_123")
    event = Event(account_id=people.a.id, type="sms.sent", body=b"{}")
    d = Delivery(
        uid="acme-delivery", account_id=people.a.id, event=event, endpoint_id=e.id, status="failed"
    )
    db.session.add_all([event, d])
    db.session.commit()
    db.session.execute(
        insert(Attempt),
        [
            {
                "delivery_id": d.id,
                "account_id": people.a.id,
                "endpoint_id": e.id,
                "event_type": "sms.sent",
                "message_id": None,
                "mobile": "254711111111",
                "number": 1,
                "trigger": "auto",
                "started_at": utcnow(),
                "duration_ms": 3,
                "ok": False,
                "status_code": 500,
                "response_body": "acme body",
                "error": "HTTP 500",
            }
        ],
    )
    db.session.commit()
    msg = messages.send_sms(people.a.id, "0711111111", "ACME", "for alice", simulate="hold")
    key, _raw = apikeys.create(people.a.id, "acme-billing")
    attempt = db.session.scalars(select(Attempt)).one()
    inspector = inspectors.create(people.a.id, "acme inspector")
    inspectors.capture(inspector, "POST", "", [("X-Acme", "acme")], b'{"acme": 1}', "127.0.0.1")
    captured = inspectors.requests_of(inspector)[0]
    return {
        "inspector_id": inspector.id,
        "request_id": captured.id,
        "endpoint_id": e.id,
        "delivery_id": d.id,
        "attempt_id": attempt.id,
        "message_id": msg.id,
        "key_id": key.id,
    }


@pytest.fixture
def bob_key(people):
    return apikeys.create(people.b.id, "bob-key")[1]


def snapshot() -> dict:
    """Every row of every table (bob's own key's last-use time and the audit entries of
    sign-ins, bob's own, aside)."""
    db.session.expire_all()
    out = {}
    for table in db.metadata.sorted_tables:
        cols = [c for c in table.c if (table.name, c.name) != ("api_key", "last_used_at")]
        query = select(*cols).order_by(*table.primary_key.columns)
        if table.name == AuditEntry.__tablename__:
            query = query.where(table.c.action != Action.SIGN_IN)
        out[table.name] = db.session.execute(query).all()
    db.session.rollback()
    return out


def id_rules(app):
    """Every rule with a path argument, from the url_map."""
    return sorted((r for r in app.url_map.iter_rules() if r.arguments), key=lambda r: r.rule)


def tenancy_problems(app, people, ids, bob_key) -> tuple[list[str], int]:
    """Call every id route as bob with A's ids; return what was not a clean 404, and how many
    requests were made."""
    app.config["WTF_CSRF_ENABLED"] = False
    web, api = app.test_client(), app.test_client()
    assert sign_in(web, people.bob.email).status_code == 302
    bearer = {"Authorization": f"Bearer {bob_key}"}
    adapter = app.url_map.bind("localhost")
    problems, calls = [], 0
    for rule in id_rules(app):
        args = [a for a in sorted(rule.arguments) if (rule.endpoint, a) not in NOT_TENANT_IDS]
        if not args:
            continue
        missing = [a for a in args if a not in ids]
        if missing:
            problems.append(
                f"{rule.rule}: no id of account A for {missing}; add one to the "
                "`ids` fixture (or, if it is no tenant's id, to NOT_TENANT_IDS)"
            )
            continue
        for method in sorted(rule.methods - IGNORED_METHODS):
            path = adapter.build(rule.endpoint, {a: ids[a] for a in rule.arguments}, method=method)
            if rule.rule.startswith(API_PREFIX):
                tries = [
                    (
                        "API key",
                        lambda path=path, method=method: api.open(
                            path, method=method, headers=bearer
                        ),
                    )
                ]
            else:
                tries = [
                    (
                        kind,
                        lambda h=h, path=path, method=method: web.open(
                            path, method=method, headers=h, data=FORM
                        ),
                    )
                    for kind, h in (("page", {}), ("htmx", {"HX-Request": "true"}))
                ]
            for kind, call in tries:
                calls += 1
                resp = call()
                body = resp.get_data(as_text=True).lower()
                if resp.status_code != 404:
                    problems.append(f"{method} {rule.rule} ({kind}): {resp.status_code}, not 404")
                elif "acme" in body or "whsec_acme" in body:
                    problems.append(f"{method} {rule.rule} ({kind}): 404 shows account A's data")
    return problems, calls


def test_every_id_route_is_404_for_another_account(app, people, ids, bob_key, receiver):
    before = snapshot()
    problems, calls = tenancy_problems(app, people, ids, bob_key)
    assert problems == []
    # Every id route was reached: dashboard ones twice (page, htmx), API ones once per method.
    assert calls >= 2 * 16 + 20, calls
    assert snapshot() == before  # nothing of A's (or anyone's) changed
    assert receiver.received() == []  # and nothing was sent to A's endpoint


def test_the_check_catches_a_route_without_tenancy(app, people, ids, bob_key):
    """The test above fails for a new id route that forgets the account, or a new kind of id."""

    def leaky_endpoint_url(endpoint_id):
        return db.session.get(Endpoint, endpoint_id).url  # no account check

    def unknown_kind_of_id(invoice_id):
        return "", 404

    app.add_url_rule(
        "/endpoints/<int:endpoint_id>/leak", "leak", leaky_endpoint_url, methods=["GET", "POST"]
    )
    app.add_url_rule("/api/v1/invoices/<int:invoice_id>", "invoice", unknown_kind_of_id)
    problems, _calls = tenancy_problems(app, people, ids, bob_key)
    assert "GET /endpoints/<int:endpoint_id>/leak (page): 200, not 404" in problems
    assert "POST /endpoints/<int:endpoint_id>/leak (htmx): 200, not 404" in problems
    assert any(
        p.startswith("/api/v1/invoices/<int:invoice_id>: no id of account A for ['invoice_id']")
        for p in problems
    )
    assert len(problems) == 5, problems  # the leak route's 4 calls and the unknown id: no others


# --- the domain reads: a Scope, never an account id or None ----------------------------------

# Parameters `account_id: int | None` that are not a read's scope, each with the reason.
NOT_SCOPES = {
    "tnt.accounts.create_user": "the new user's account: support users belong to none",
    "tnt.audit.record": "the account an entry belongs to (None: no account's)",
}

# How to call each scoped read on account A's rows (`ids`), with `s` as its scope.
SCOPED_READS = {
    "tnt.apikeys.get": lambda s, ids: apikeys.get(s, ids["key_id"]),
    "tnt.apikeys.list_for": lambda s, ids: apikeys.list_for(s),
    "tnt.apikeys.revoke": lambda s, ids: apikeys.revoke(s, ids["key_id"]),
    "tnt.audit.entries": lambda s, ids: audit.entries(s),
    "tnt.deliveries.get": lambda s, ids: deliveries.get(s, ids["delivery_id"]),
    "tnt.delivery.resend": lambda s, ids: delivery.resend(
        ids["delivery_id"], scope=s, requested_by=None
    ),
    "tnt.endpoints.get": lambda s, ids: endpoints.get(s, ids["endpoint_id"]),
    "tnt.endpoints.list_for": lambda s, ids: endpoints.list_for(s),
    "tnt.hourly.hourly_outcomes": lambda s, ids: hourly.hourly_outcomes(s),
    "tnt.inspectors.get": lambda s, ids: inspectors.get(s, ids["inspector_id"]),
    "tnt.inspectors.get_request": lambda s, ids: inspectors.get_request(s, ids["request_id"]),
    "tnt.inspectors.list_for": lambda s, ids: inspectors.list_for(s),
    "tnt.logs.attempt_row": lambda s, ids: logs.attempt_row(ids["attempt_id"], s),
    "tnt.logs.queued_count": lambda s, ids: logs.queued_count(s),
    "tnt.messages.cancel_message": lambda s, ids: messages.cancel_message(s, ids["message_id"]),
    "tnt.messages.get": lambda s, ids: messages.get(s, ids["message_id"]),
    "tnt.web.queries.endpoints_for_filter": lambda s, ids: queries.endpoints_for_filter(s),
    "tnt.web.queries.messages_for": lambda s, ids: queries.messages_for(s),
}


def tnt_functions():
    """(qualified name, function) of every module-level function in the tnt package."""
    for info in pkgutil.walk_packages(tnt.__path__, "tnt."):
        module = importlib.import_module(info.name)
        for name, fn in vars(module).items():
            if inspect.isfunction(fn) and fn.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", fn


def test_every_read_takes_a_scope_not_an_optional_account_id(app):
    scoped, optional_ids = set(), set()
    for name, fn in tnt_functions():
        hints = typing.get_type_hints(fn)
        if "scope" in inspect.signature(fn).parameters:
            assert hints.get("scope") is Scope, f"{name}: `scope` is not annotated Scope"
            scoped.add(name)
        if hints.get("account_id") == int | None:
            optional_ids.add(name)
    assert optional_ids == set(NOT_SCOPES), "an `account_id: int | None` that may mean 'all'?"
    assert scoped == set(SCOPED_READS), "add the new scoped read to SCOPED_READS"


@pytest.mark.parametrize("name", sorted(SCOPED_READS))
def test_a_scoped_read_refuses_an_account_id_or_none(app, people, ids, name):
    """On rows that exist (so no "not found" answers first), a read given a bare id or None
    raises instead of reading: it is never taken as "every account"."""
    for not_a_scope in (people.a.id, None):
        with pytest.raises((AttributeError, TypeError, ValueError)):
            SCOPED_READS[name](not_a_scope, ids)
        db.session.rollback()
    SCOPED_READS[name](Scope.account(people.a.id), ids)  # the call itself is right
