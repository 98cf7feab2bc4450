from datetime import timedelta

from api_helpers import assert_error
from freezegun import freeze_time
from sqlalchemy import select, update

from tnt import endpoints, messages
from tnt.extensions import db
from tnt.models import Attempt, Delivery, Event
from tnt.scope import Scope


def _cancelled(account, mobile="0712345678"):
    """A cancelled message: its sms.cancelled event makes a delivery per subscribed endpoint."""
    msg = messages.send_sms(account.id, mobile, "A", "x", simulate="hold")
    messages.cancel_message(Scope.account(account.id), msg.id)
    return msg


def _deliveries_of(msg_id):
    return list(db.session.scalars(select(Delivery).join(Event).where(Event.message_id == msg_id)))


def _fail(delivery_ids):
    """As if all four automatic attempts had failed."""
    db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids))
        .values(
            status="failed",
            auto_attempts=4,
            attempts_count=4,
            next_attempt_at=None,
            last_error="HTTP 500: not a 2xx response",
        )
    )
    db.session.commit()


def test_list_filters_get_with_attempts(api, account, receiver, work):
    ep = endpoints.create(account.id, receiver.url, ["sms.cancelled", "sms.delivered"])
    m1, m2 = _cancelled(account), _cancelled(account, "0733123456")
    work()
    (d1,) = _deliveries_of(m1.id)
    (d2,) = _deliveries_of(m2.id)
    _fail([d2.id])
    rows = api.get("/api/v1/deliveries").get_json()
    assert [d["id"] for d in rows["data"]] == [d2.id, d1.id]
    assert rows["data"][1]["mobile"] == "254712345678"
    assert rows["data"][1]["message_id"] == m1.id and rows["data"][1]["event"] == "sms.cancelled"

    def ids(query):
        resp = api.get("/api/v1/deliveries?" + query)
        assert resp.status_code == 200, resp.get_json()
        return [d["id"] for d in resp.get_json()["data"]]

    assert ids("status=failed") == [d2.id]
    assert ids("status=delivered") == [d1.id]
    assert ids(f"endpoint_id={ep.id}") == [d2.id, d1.id]
    assert ids(f"endpoint_id={ep.id + 1000}") == []
    assert ids("event=sms.cancelled") == [d2.id, d1.id]
    assert ids("event=sms.delivered") == []
    assert ids(f"message_id={m1.id}") == [d1.id]
    assert ids("mobile=0733 123 456") == [d2.id]
    assert ids("since=2000-01-01&until=2999-01-01T00:00:00Z") == [d2.id, d1.id]
    assert ids("until=2000-01-01") == []
    assert ids("limit=1") == [d2.id]
    assert ids(f"limit=1&cursor={d2.id}") == [d1.id]
    assert_error(api.get("/api/v1/deliveries?event=sms.other"), 422)
    assert_error(api.get("/api/v1/deliveries?endpoint_id=abc"), 422)

    detail = api.get(f"/api/v1/deliveries/{d1.id}").get_json()
    assert detail["status"] == "delivered" and detail["payload"]["event"] == "sms.cancelled"
    [attempt] = detail["attempts"]
    assert attempt["ok"] and attempt["status_code"] == 200 and attempt["trigger"] == "auto"
    assert attempt["response_body"] == "ok"
    assert_error(api.get("/api/v1/deliveries/424242"), 404)


def test_resend_one_is_a_manual_attempt(api, account, receiver, work):
    endpoints.create(account.id, receiver.url, ["sms.cancelled"])
    msg = _cancelled(account)
    receiver.respond = [(500, b"nope")]
    work()
    (d,) = _deliveries_of(msg.id)
    receiver.received()
    receiver.respond = [(200, b"thanks")]
    resp = api.post(f"/api/v1/deliveries/{d.id}/resend")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "delivered"
    assert [(a["trigger"], a["ok"]) for a in body["attempts"]] == [
        ("auto", False),
        ("manual", True),
    ]
    assert len(receiver.received()) == 1


def test_resend_to_a_disabled_endpoint_is_409(api, account, receiver, work):
    ep = endpoints.create(account.id, receiver.url, ["sms.cancelled"])
    msg = _cancelled(account)
    work()
    (d,) = _deliveries_of(msg.id)
    endpoints.set_enabled(ep, False)
    assert_error(api.post(f"/api/v1/deliveries/{d.id}/resend"), 409, "conflict")


def test_bulk_resend_queues_matching_failures_for_the_engine(api, account, receiver, work):
    ep = endpoints.create(account.id, receiver.url, ["sms.cancelled"])
    endpoints.create(account.id, receiver.url + "/two", ["sms.cancelled"])
    m1, m2, m3 = _cancelled(account), _cancelled(account), _cancelled(account, "0733123456")
    work()
    receiver.received()
    by_msg = {m: {d.endpoint_id: d.id for d in _deliveries_of(m)} for m in (m1.id, m2.id, m3.id)}
    all_ids = [i for per in by_msg.values() for i in per.values()]
    _fail(all_ids)
    delivered_one = by_msg[m2.id][ep.id]
    db.session.execute(
        update(Delivery).where(Delivery.id == delivered_one).values(status="delivered")
    )
    db.session.commit()

    # Nothing matches: nothing changes.
    resp = api.post("/api/v1/deliveries/resend", json={"event": "sms.sent"})
    assert resp.status_code == 202 and resp.get_json() == {"queued": 0}

    # Failed deliveries to ep for 0712345678: m1 only (m2's is delivered, m3 another mobile).
    resp = api.post(
        "/api/v1/deliveries/resend", json={"endpoint_id": ep.id, "mobile": "0712345678"}
    )
    assert resp.get_json() == {"queued": 1}
    receiver.respond = [(500, b"still down")]
    work()
    d = db.session.get(Delivery, by_msg[m1.id][ep.id])
    db.session.refresh(d)
    assert d.status == "failed" and d.next_attempt_at is None  # one attempt, no new retry series
    assert len(receiver.received()) == 1
    last = db.session.scalar(
        select(Attempt).where(Attempt.delivery_id == d.id).order_by(Attempt.id.desc()).limit(1)
    )
    assert last.trigger == "manual" and not last.ok  # a resend someone asked for, not a retry
    assert not d.resend_pending

    # Every failure, all endpoints: m1/ep again, m1/ep2, m2/ep2, m3/ep, m3/ep2.
    receiver.respond = [(200, b"ok")]
    resp = api.post("/api/v1/deliveries/resend", json={})
    assert resp.get_json() == {"queued": 5}
    assert api.post("/api/v1/deliveries/resend").get_json() == {"queued": 0}  # already queued
    work()
    assert len(receiver.received()) == 5
    statuses = {db.session.get(Delivery, i).status for i in all_ids}
    assert statuses == {"delivered"}
    assert db.session.scalar(
        select(Attempt).where(Attempt.delivery_id == d.id).order_by(Attempt.id.desc()).limit(1)
    ).ok

    assert_error(api.post("/api/v1/deliveries/resend", json={"status": "delivered"}), 422)
    assert_error(api.post("/api/v1/deliveries/resend", json={"endpoint_id": "1"}), 422)


def test_bulk_resend_skips_disabled_endpoints_and_other_accounts(api, account, other, receiver):
    from tnt.models import Endpoint

    ep = endpoints.create(account.id, receiver.url, ["sms.cancelled"])
    msg = _cancelled(account)
    (mine,) = _deliveries_of(msg.id)
    _fail([mine.id, other["delivery"]])
    endpoints.set_enabled(ep, False)
    assert api.post("/api/v1/deliveries/resend", json={}).get_json() == {"queued": 0}
    assert db.session.get(Delivery, other["delivery"]).status == "failed"
    assert db.session.get(Endpoint, other["endpoint"]).enabled


def test_retries_then_failed_then_bulk_resend_end_to_end(api, account, receiver, work):
    """The real path to failed: four automatic failures, then a bulk resend delivers it."""
    endpoints.create(account.id, receiver.url, ["sms.cancelled"])
    receiver.respond = [(500, b"down")]
    with freeze_time("2026-05-20 08:30") as clock:
        msg = _cancelled(account)
        work()
        for minutes in (1, 5, 30):
            clock.tick(timedelta(minutes=minutes, seconds=1))
            work()
        (d,) = _deliveries_of(msg.id)
        db.session.refresh(d)
        assert d.status == "failed" and d.attempts_count == 4
        receiver.respond = [(200, b"ok")]
        assert api.post("/api/v1/deliveries/resend", json={}).get_json() == {"queued": 1}
        work()
        db.session.refresh(d)
        assert d.status == "delivered" and d.attempts_count == 5
        assert d.auto_attempts == 4 and not d.resend_pending  # the resend was not a retry
        triggers = [
            a.trigger
            for a in db.session.scalars(
                select(Attempt).where(Attempt.delivery_id == d.id).order_by(Attempt.id)
            )
        ]
        assert triggers == ["auto"] * 4 + ["manual"]


def test_other_accounts_delivery_is_404_on_every_route(api, other):
    did = other["delivery"]
    assert_error(api.get(f"/api/v1/deliveries/{did}"), 404)
    assert_error(api.post(f"/api/v1/deliveries/{did}/resend"), 404)
    assert api.get("/api/v1/deliveries").get_json()["data"] == []
    assert api.get(f"/api/v1/deliveries?endpoint_id={other['endpoint']}").get_json()["data"] == []
    assert db.session.scalar(select(Attempt).where(Attempt.delivery_id == did)) is None
