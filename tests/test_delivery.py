"""The delivery engine against a real receiver, a real RQ worker and real Redis."""

import json
from datetime import datetime, timedelta

import pytest
from freezegun import freeze_time
from payloads import assert_webhook
from sqlalchemy import select

from tnt import delivery, endpoints, messages, queue
from tnt.clock import utcnow
from tnt.delivery import claiming, recording
from tnt.delivery.recording import Answer
from tnt.errors import Conflict
from tnt.extensions import db
from tnt.models import Attempt, Delivery, Event
from tnt.scope import Scope
from tnt.states import EventType
from tnt.transport import Response

SECRET = "whsec_test_secret_123"


@pytest.fixture
def endpoint(account, receiver):
    return endpoints.create(account.id, receiver.url, list(endpoints.EVENTS), "test", SECRET)


def attempts(delivery_id=None):
    query = select(Attempt).order_by(Attempt.id)
    if delivery_id:
        query = query.where(Attempt.delivery_id == delivery_id)
    return list(db.session.scalars(query))


def only_delivery() -> Delivery:
    db.session.expire_all()
    return db.session.scalars(select(Delivery)).one()


def claim(limit: int) -> list:
    """Claim as a worker would, and commit (the tests then play that worker's fate)."""
    items = claiming.claim(db.session.connection(), delivery.settings(), limit)
    db.session.commit()
    return items


def fire_one(account, event="sms.sent"):
    """Send an SMS held in the queue and cancel it: exactly one event (sms.cancelled)."""
    msg = messages.send_sms(account.id, "0712345678", "TALKNTALK", "Hi", simulate="hold")
    messages.cancel_message(Scope.account(account.id), msg.id)
    return msg


def test_sent_and_delivered_reach_the_receiver_signed_byte_for_byte(
    app, account, endpoint, receiver, work
):
    msg = messages.send_sms(
        account.id,
        "+254 712 345 678",
        "TALKNTALK",
        "Your OTP is 847291.",
        source="api",
        simulate="delivered",
    )
    work()  # submits: sms.sent, and its delivery
    work()  # the carrier's report: sms.delivered
    got = receiver.received()
    assert [json.loads(r["body"])["event"] for r in got] == ["sms.sent", "sms.delivered"]
    bodies = {e.type: e.body for e in db.session.scalars(select(Event))}
    for request in got:
        payload = assert_webhook(request, SECRET)
        assert request["body"] == bodies[payload["event"]]
        data = payload["data"]
        assert data["id"] == msg.id and data["mobile"] == "254712345678"
        assert data["network"] == "safaricom" and data["source"] == "api"
    assert [json.loads(r["body"])["data"]["status"] for r in got] == ["sent", "delivered"]
    assert all(a.ok and a.status_code == 200 and a.response_body == "ok" for a in attempts())


def test_no_signature_header_without_a_secret(app, account, receiver, work):
    endpoints.create(account.id, receiver.url, ["sms.cancelled"])
    fire_one(account)
    work()
    (request,) = receiver.received()
    assert "X-TalkNTalk-Signature" not in request["headers"]


def test_only_subscribed_enabled_endpoints_get_deliveries(app, account, receiver, work):
    endpoints.create(account.id, receiver.url, ["sms.delivered"])
    off = endpoints.create(account.id, receiver.url, ["sms.cancelled"])
    endpoints.set_enabled(off, False)
    fire_one(account)
    assert db.session.scalars(select(Delivery)).all() == []
    work()
    assert receiver.received() == []


def test_retries_after_1_5_30_minutes_then_failed(app, account, endpoint, receiver, work):
    receiver.respond = [(500, b"boom")]
    start = datetime(2026, 5, 20, 8, 30)
    with freeze_time(start) as clock:
        fire_one(account)
        work()
        d = only_delivery()
        assert (d.status, d.auto_attempts, d.next_attempt_at) == (
            "retrying",
            1,
            start + timedelta(minutes=1),
        )
        for wait, number in ((60, 2), (300, 3), (1800, 4)):
            clock.tick(wait - 1)
            work()
            assert len(attempts()) == number - 1, "a retry ran early"
            clock.tick(1)
            work()
            assert len(attempts()) == number
        d = only_delivery()
        assert (d.status, d.next_attempt_at) == ("failed", None)
        clock.tick(3600)
        work()
    got = receiver.received()
    assert len(got) == 4
    assert len({r["body"] for r in got}) == 1
    assert len({r["headers"]["X-TalkNTalk-Signature"] for r in got}) == 1
    assert len({r["headers"]["X-TalkNTalk-Delivery"] for r in got}) == 1
    assert [a.number for a in attempts()] == [1, 2, 3, 4]
    assert all(
        a.error == "HTTP 500: not a 2xx response" and a.response_body == "boom" for a in attempts()
    )


def test_a_retry_that_succeeds_marks_the_delivery_delivered(app, account, endpoint, receiver, work):
    receiver.respond = [(503, b"busy"), (204, b"")]
    with freeze_time("2026-05-20 08:30") as clock:
        fire_one(account)
        work()
        clock.tick(60)
        work()
    d = only_delivery()
    assert (d.status, d.attempts_count, d.next_attempt_at) == ("delivered", 2, None)
    assert [a.ok for a in attempts()] == [False, True]


def test_redirects_are_failures_and_not_followed(app, account, endpoint, receiver, work):
    receiver.respond = [(302, b"")]
    fire_one(account)
    work()
    (a,) = attempts()
    assert not a.ok and a.status_code == 302
    assert "redirects are not followed" in a.error
    assert len(receiver.received()) == 1


def test_at_most_64_kib_of_the_response_is_kept(app, account, endpoint, receiver, work):
    receiver.respond = [(200, b"x" * 200_000)]
    fire_one(account)
    work()
    (a,) = attempts()
    assert a.ok and len(a.response_body) == 65536


def test_event_fired_while_redis_is_down_is_delivered_once_redis_is_back(
    app, account, endpoint, receiver, work, redis_url
):
    with freeze_time("2026-05-20 08:30") as clock:
        app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
        app.extensions.pop("tnt_redis", None)
        fire_one(account)  # committed; the enqueue fails and is logged
        assert only_delivery().status == "pending"
        app.config["REDIS_URL"] = redis_url
        app.extensions.pop("tnt_redis", None)
        work()
        assert receiver.received() == []  # nothing was enqueued
        clock.tick(delivery.settings().sweep_grace)
        assert delivery.sweep() == 1
        work()
    assert len(receiver.received()) == 1
    assert only_delivery().status == "delivered"


def test_disabling_an_endpoint_ends_its_pending_retries(app, account, endpoint, receiver, work):
    receiver.respond = [(500, b"")]
    with freeze_time("2026-05-20 08:30") as clock:
        fire_one(account)
        work()
        endpoints.set_enabled(endpoint, False)
        clock.tick(60)
        work()
    d = only_delivery()
    assert d.status == "failed" and "disabled" in d.last_error
    assert len(attempts()) == 1


def test_an_endpoint_disabled_after_the_event_gets_no_attempt(
    app, account, endpoint, receiver, work
):
    fire_one(account)
    endpoint.enabled = False  # behind the service's back: the worker must still check
    db.session.commit()
    work()
    assert receiver.received() == []
    d = only_delivery()
    assert d.status == "failed" and "disabled or deleted" in d.last_error


def test_manual_resend_is_one_attempt_logged_with_who_asked(app, account, endpoint, receiver, work):
    from tnt import accounts

    staff = accounts.create_user("help@example.com", "password123", role="support")
    receiver.respond = [(500, b"")]
    with freeze_time("2026-05-20 08:30") as clock:
        fire_one(account)
        for wait in (0, 60, 300, 1800):
            clock.tick(wait)
            work()
    assert only_delivery().status == "failed"
    receiver.respond = [(200, b"thanks")]
    attempt = delivery.resend(only_delivery().id, scope=Scope.all_accounts(), requested_by=staff.id)
    assert (attempt.number, attempt.trigger, attempt.ok) == (5, "manual", True)
    assert attempt.requested_by.email == "help@example.com"
    assert only_delivery().status == "delivered"


def test_resend_respects_tenancy_and_disabled_endpoints(app, account, endpoint, receiver, work):
    from tnt import accounts
    from tnt.errors import NotFound

    other = accounts.create_account("Other")
    fire_one(account)
    work()
    d = only_delivery()
    with pytest.raises(NotFound):
        delivery.resend(d.id, scope=Scope.account(other.id), requested_by=None)
    endpoints.set_enabled(endpoint, False)
    with pytest.raises(Conflict, match="disabled"):
        delivery.resend(d.id, scope=Scope.account(account.id), requested_by=None)


def test_two_claims_never_share_a_delivery(app, account, receiver):
    endpoints.create(account.id, receiver.url, ["sms.cancelled"])
    for _ in range(5):
        fire_one(account)
    first = [o.delivery_id for o in claim(3)]
    second = [o.delivery_id for o in claim(10)]
    assert len(first) == 3 and len(second) == 2 and not set(first) & set(second)
    assert claim(10) == []


def test_a_dead_workers_claim_expires(app, account, endpoint, receiver, work):
    with freeze_time("2026-05-20 08:30") as clock:
        fire_one(account)
        claim(10)  # claimed, then the worker is killed
        work()
        assert receiver.received() == []
        clock.tick(delivery.settings().lease + 1)
        delivery.sweep()
        work()
    assert len(receiver.received()) == 1


def test_many_events_are_batched_into_few_jobs(app, account, endpoint, receiver, work):
    for _ in range(30):
        fire_one(account)
    assert queue.queue().count <= 31  # 30 submit jobs at most (holds) and one coalesced kick
    work()
    assert len(receiver.received()) == 30
    assert {d.status for d in db.session.scalars(select(Delivery))} == {"delivered"}


def test_send_test_event_is_marked_as_a_test(app, account, endpoint, receiver, work):
    endpoints.send_test(endpoint)
    work()
    (request,) = receiver.received()
    assert json.loads(request["body"])["event"] == "sms.delivered"
    assert db.session.scalars(select(Event)).one().is_test
    assert messages.search(account.id) == []  # its message stays out of the Messages lists


def test_test_events_have_the_shape_of_real_ones_for_every_event(
    app, account, endpoint, receiver, work
):
    """Every event type, real and test, meets the same rules; each carries its own status,
    and no two share `data.id` + event, so a receiver that dedupes as advised keeps them all."""
    for outcome in ("delivered", "undelivered", "failed"):
        messages.send_sms(account.id, "0712345678", "TALKNTALK", "Hi", simulate=outcome)
    fire_one(account)  # sms.cancelled
    work()
    work()
    real = [assert_webhook(r, SECRET) for r in receiver.received()]
    assert sorted(p["event"] for p in real) == sorted(
        ["sms.sent"] * 2 + ["sms.delivered", "sms.undelivered", "sms.failed", "sms.cancelled"]
    )
    for event in EventType:
        endpoints.send_test(endpoint, event)
        endpoints.send_test(endpoint, event)
    work()
    tests = [assert_webhook(r, SECRET) for r in receiver.received()]
    assert sorted(p["event"] for p in tests) == sorted(list(EventType) * 2)
    assert all(p["data"]["source"] == "dashboard" for p in tests)
    seen = [(p["data"]["id"], p["event"]) for p in real + tests]
    assert len(set(seen)) == len(seen)


@pytest.fixture
def black_hole():
    """The URL of a server that accepts connections and never answers."""
    import socket

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    yield f"http://127.0.0.1:{hole.getsockname()[1]}/"
    hole.close()


def test_a_black_holed_endpoint_does_not_hold_up_the_others(
    app, account, receiver, work, black_hole
):
    import time

    slow = endpoints.create(account.id, black_hole, ["sms.cancelled"])
    endpoints.create(account.id, receiver.url, ["sms.cancelled"])
    fire_one(account)
    started = time.monotonic()
    work()
    healthy_done = time.monotonic() - started
    assert len(receiver.received()) == 1
    assert healthy_done < app.config["TNT_DELIVERY_TIMEOUT"]  # recorded before the timeout
    deadline = time.monotonic() + app.config["TNT_DELIVERY_TIMEOUT"] + 3
    while time.monotonic() < deadline:  # the slow one records itself when it times out
        db.session.expire_all()
        late = db.session.scalars(select(Attempt).where(Attempt.endpoint_id == slow.id)).all()
        if late:
            break
        time.sleep(0.1)
    assert len(late) == 1 and late[0].error.startswith("Timed out")
    d = db.session.get(Delivery, late[0].delivery_id)
    assert d.status == "retrying" and d.lease_token is None


def test_a_lane_starts_no_post_its_lease_could_not_cover(app, account, black_hole):
    """One lane, three deliveries, a black hole: the first POST times out after 1 s of a 2 s
    lease, leaving too little for another whole POST (1 s + margin). The two waiting are given
    back at once (not left to expire) for a later claim to send."""
    app.config.update(TNT_PER_ENDPOINT=1, TNT_LEASE_SECONDS=2.0, TNT_DELIVERY_TIMEOUT=1.0)
    endpoints.create(account.id, black_hole, ["sms.cancelled"])
    for _ in range(3):
        fire_one(account)
    engine = delivery._engine()
    items, expired = claiming.ready(claim(10), engine.settings)
    assert len(items) == 3 and expired == []
    engine.lanes.submit(items)
    assert engine.lanes.settle(3)
    db.session.expire_all()
    assert len(attempts()) == 1 and attempts()[0].error.startswith("Timed out")
    waiting = db.session.scalars(select(Delivery).where(Delivery.attempts_count == 0)).all()
    assert len(waiting) == 2
    assert all(d.lease_token is None and d.status == "pending" for d in waiting)  # given back


def test_a_slow_endpoints_backlog_is_put_off_not_hoarded(app, account, receiver, black_hole):
    """A black-holed endpoint keeps its lanes busy; the worker holds only HOLD_PER_ENDPOINT of
    its deliveries, gives the rest back, and once the endpoint is silent for SLOW_AFTER puts its
    backlog off for a deadline, so claims stop scanning past it. Healthy endpoints go on."""
    app.config.update(
        TNT_PER_ENDPOINT=1,
        TNT_HOLD_PER_ENDPOINT=2,
        TNT_SLOW_AFTER=0.1,
        TNT_DRAIN_IDLE=0.5,  # the drain job stays long enough to see it go quiet
        TNT_DELIVERY_TIMEOUT=5.0,
    )  # and its POST outlasts the drain job
    slow = endpoints.create(account.id, black_hole, ["sms.cancelled"])
    endpoints.create(account.id, receiver.url, ["sms.cancelled"])
    for _ in range(5):
        fire_one(account)
    fired_at = utcnow()
    delivery.deliver_due()
    assert len(receiver.received()) == 5  # the healthy endpoint got all of its five
    db.session.expire_all()
    backlog = db.session.scalars(select(Delivery).where(Delivery.endpoint_id == slow.id)).all()
    held = [d for d in backlog if d.lease_token]
    put_off = [d for d in backlog if not d.lease_token]
    assert len(held) == 2  # one under way, one waiting in its lane
    assert len(put_off) == 3 and all(
        d.status == "pending" and d.next_attempt_at > fired_at + timedelta(seconds=1)
        for d in put_off
    )


def test_a_worker_that_lost_its_claim_records_nothing(app, account, endpoint):
    """Its lease expired and another worker claimed the delivery: the late answer is that
    worker's to record, not a second attempt row beside it."""
    from sqlalchemy import update

    fire_one(account)
    (late,) = claim(1)
    db.session.execute(update(Delivery).values(lease_token="another-workers-claim"))
    db.session.commit()
    recording.record(db.session.connection(), [Answer(late, utcnow(), Response(status=200))])
    db.session.commit()
    assert attempts() == []
    d = only_delivery()
    assert d.status == "pending" and d.lease_token == "another-workers-claim"
