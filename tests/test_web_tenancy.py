"""Another account's endpoint, delivery, attempt or message id is a 404 on every route."""

import pytest
from sqlalchemy import insert, select
from web_fixtures import sign_in

from tnt import endpoints, messages
from tnt.clock import utcnow
from tnt.extensions import db
from tnt.models import Attempt, Delivery, Endpoint, Event, Message

HX = {"HX-Request": "true"}


@pytest.fixture
def beta(people, receiver):
    """Bob's endpoint, a failed delivery with one attempt, and a held message."""
    e = endpoints.create(people.b.id, receiver.url, ["sms.sent"], "Beta hook", "whsec_beta_123")
    event = Event(account_id=people.b.id, type="sms.sent", body=b"{}")
    d = Delivery(
        uid="beta-delivery", account_id=people.b.id, event=event, endpoint_id=e.id, status="failed"
    )
    db.session.add_all([event, d])
    db.session.commit()
    db.session.execute(
        insert(Attempt),
        [
            {
                "delivery_id": d.id,
                "account_id": people.b.id,
                "endpoint_id": e.id,
                "event_type": "sms.sent",
                "message_id": None,
                "mobile": "254799999999",
                "number": 1,
                "trigger": "auto",
                "started_at": utcnow(),
                "duration_ms": 3,
                "ok": False,
                "status_code": 500,
                "response_body": "beta secret body",
                "error": "HTTP 500",
            }
        ],
    )
    db.session.commit()
    msg = messages.send_sms(people.b.id, "0799999999", "BETA", "for bob", simulate="hold")
    attempt = db.session.scalars(select(Attempt)).one()
    return {"endpoint": e.id, "delivery": d.id, "attempt": attempt.id, "message": msg.id}


@pytest.fixture
def alice(app, people):
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    assert sign_in(client, people.alice.email).status_code == 302
    return client


def routes(ids):
    e, d, a, m = ids["endpoint"], ids["delivery"], ids["attempt"], ids["message"]
    return [
        ("GET", f"/endpoints/{e}"),
        ("GET", f"/endpoints/{e}/edit"),
        ("POST", f"/endpoints/{e}/edit"),
        ("POST", f"/endpoints/{e}/toggle"),
        ("POST", f"/endpoints/{e}/delete"),
        ("POST", f"/endpoints/{e}/test"),
        ("GET", f"/logs/attempts/{a}"),
        ("POST", f"/logs/deliveries/{d}/resend"),
        ("POST", f"/logs/deliveries/{d}/resend?attempt={a}"),
        ("POST", f"/messages/{m}/cancel"),
    ]


@pytest.mark.parametrize("htmx", [False, True])
def test_another_accounts_ids_are_404_on_every_route(alice, beta, receiver, htmx):
    for method, path in routes(beta):
        resp = alice.open(
            path,
            method=method,
            headers=HX if htmx else {},
            data={"url": "http://127.0.0.1:1/x", "events": ["sms.sent"]},
        )
        assert resp.status_code == 404, (method, path, resp.status_code)
        assert b"beta" not in resp.data.lower(), path
    # Nothing changed, nothing was sent.
    db.session.expire_all()
    e = db.session.get(Endpoint, beta["endpoint"])
    assert e.enabled and e.deleted_at is None and e.url.startswith("http://127.0.0.1")
    assert db.session.get(Message, beta["message"]).status == "queued"
    assert db.session.scalar(select(db.func.count()).select_from(Attempt)) == 1
    assert receiver.received() == []


def test_lists_show_only_the_customers_own_rows(alice, beta):
    for path in ("/endpoints", "/logs", "/messages", "/logs/rows", "/logs/chart"):
        resp = alice.get(path)
        assert resp.status_code == 200
        page = resp.get_data(as_text=True)
        assert "Beta hook" not in page and "254799999999" not in page, path
        assert "for bob" not in page and f'id="attempt-{beta["attempt"]}"' not in page, path
    # A customer cannot pick another account with ?account=.
    page = alice.get("/logs?account=2").get_data(as_text=True)
    assert f'id="attempt-{beta["attempt"]}"' not in page
    page = alice.get(f"/logs?endpoint_id={beta['endpoint']}").get_data(as_text=True)
    assert f'id="attempt-{beta["attempt"]}"' not in page


def test_queued_rows_keep_to_the_scope(app, alice, people, beta):
    """Pending (queued) rows: a customer sees their own; support sees every account's, or one."""

    def queued_delivery(account_id, endpoint_id, uid):
        event = Event(account_id=account_id, type="sms.sent", body=b"{}")
        d = Delivery(
            uid=uid,
            account_id=account_id,
            event=event,
            endpoint_id=endpoint_id,
            status="pending",
            next_attempt_at=utcnow(),
        )
        db.session.add_all([event, d])
        db.session.commit()
        return f'id="delivery-{d.id}"'

    mine = queued_delivery(
        people.a.id,
        endpoints.create(people.a.id, "http://127.0.0.1:9/a", ["sms.sent"]).id,
        "acme-queued",
    )
    bobs = queued_delivery(people.b.id, beta["endpoint"], "beta-queued")
    for path in (
        "/logs?status=pending",
        f"/logs?status=pending&account={people.b.id}",
        f"/logs/rows?status=pending&endpoint_id={beta['endpoint']}",
    ):
        page = alice.get(path).get_data(as_text=True)
        assert bobs not in page and "Beta hook" not in page, path
    assert mine in alice.get("/logs?status=pending").get_data(as_text=True)
    support = app.test_client()
    sign_in(support, people.sam.email)
    page = support.get("/logs?status=pending").get_data(as_text=True)
    assert mine in page and bobs in page and ">Beta<" in page
    page = support.get(f"/logs?status=pending&account={people.b.id}").get_data(as_text=True)
    assert mine not in page and bobs in page


def test_support_reaches_the_same_ids(app, people, beta):
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    sign_in(client, people.sam.email)
    assert client.get(f"/endpoints/{beta['endpoint']}").status_code == 200
    assert client.get(f"/endpoints/{beta['endpoint']}/edit").status_code == 200
    assert client.get(f"/logs/attempts/{beta['attempt']}", headers=HX).status_code == 200
    assert client.post(f"/messages/{beta['message']}/cancel", headers=HX).status_code == 200


def test_ids_too_big_for_the_database_match_nothing(app, alice, people):
    """Not a database error (a 500 on PostgreSQL, whose ids are 32-bit)."""
    from tnt import apikeys

    _key, raw = apikeys.create(people.a.id, "tests")
    headers = {"Authorization": f"Bearer {raw}"}
    huge = "99999999999"
    for path in (
        f"/logs?endpoint_id={huge}",
        f"/logs?status=failed&endpoint_id={huge}",
        f"/logs?status=pending&endpoint_id={huge}",
        f"/logs/chart?endpoint_id={huge}",
        f"/logs/rows?before=2026-01-01T00:00:00_{huge}",
    ):
        assert alice.get(path).status_code == 200, path
    for query in (f"endpoint_id={huge}", f"message_id={huge}", f"cursor={huge}"):
        resp = app.test_client().get(f"/api/v1/deliveries?{query}", headers=headers)
        assert resp.status_code == 200 and resp.get_json()["data"] == [], query
