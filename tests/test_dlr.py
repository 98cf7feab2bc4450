"""POST /provider/dlr: the carrier's delivery reports, and the simulated carrier's path."""

import pytest
from api_helpers import assert_error

from tnt import endpoints, messages
from tnt.extensions import db
from tnt.models import Message

SECRET = "dlr-shared-secret-for-tests"


@pytest.fixture
def dlr(app, client):
    app.config["TNT_DLR_SECRET"] = SECRET

    def post(body, secret=SECRET, **kw):
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        if isinstance(body, (dict, list)):
            return client.post("/provider/dlr", json=body, headers=headers, **kw)
        return client.post(
            "/provider/dlr", data=body, headers=headers | {"Content-Type": "application/json"}, **kw
        )

    return post


def _sent(account):
    msg = messages.send_sms(account.id, "0712345678", "ACME", "Your OTP is 1.", simulate="hold")
    messages.transition(msg, "sent")
    db.session.commit()
    return msg.id


def test_delivered_report_fires_sms_delivered_to_a_real_receiver(dlr, account, receiver, work):
    endpoints.create(account.id, receiver.url, ["sms.delivered"])
    mid = _sent(account)
    resp = dlr({"message_id": mid, "status": "delivered"})
    assert resp.status_code == 200 and resp.get_json() == {"message_id": mid, "status": "delivered"}
    work()
    [payload] = receiver.json()
    assert payload["event"] == "sms.delivered"
    assert payload["data"]["id"] == mid and payload["data"]["status"] == "delivered"
    assert_error(dlr({"message_id": mid, "status": "undelivered"}), 409, "conflict")


def test_undelivered_report(dlr, account):
    mid = _sent(account)
    assert dlr({"message_id": mid, "status": "undelivered"}).status_code == 200
    assert db.session.get(Message, mid).status == "undelivered"


def test_wrong_missing_or_unset_secret_is_401_and_changes_nothing(app, dlr, account):
    mid = _sent(account)
    body = {"message_id": mid, "status": "delivered"}
    assert_error(dlr(body, secret="wrong"), 401, "unauthorized")
    assert_error(dlr(body, secret=None), 401)
    app.config["TNT_DLR_SECRET"] = None  # not configured: every report is refused
    assert_error(dlr(body, secret=""), 401)
    assert_error(dlr(body, secret="None"), 401)
    assert db.session.get(Message, mid).status == "sent"


def test_bad_reports(dlr, account):
    mid = _sent(account)
    assert_error(dlr(b"{not json"), 400, "malformed_json")
    assert_error(dlr({"message_id": mid, "status": "read"}), 422)
    assert_error(dlr({"message_id": str(mid), "status": "delivered"}), 422)
    assert_error(dlr({"message_id": mid, "status": "delivered", "x": 1}), 422)
    assert_error(dlr({"message_id": 987654, "status": "delivered"}), 404, "not_found")
    assert_error(dlr({"message_id": 2**70, "status": "delivered"}), 422)
    assert_error(dlr(b'{"message_id": 1, "status": "' + b"x" * 100_000 + b'"}'), 413)
    assert db.session.get(Message, mid).status == "sent"


def test_the_simulated_carrier_reports_through_the_same_function(
    app, account, receiver, work, monkeypatch, tmp_path
):
    # The carrier's callback and the simulated carrier's job both call this one function.
    log = tmp_path / "reports"
    real = messages.record_delivery_report

    def spy(mid, status):
        with log.open("a") as f:
            f.write(f"{mid} {status}\n")
        return real(mid, status)

    monkeypatch.setattr(messages, "record_delivery_report", spy)
    endpoints.create(account.id, receiver.url, ["sms.sent", "sms.delivered"])
    msg = messages.send_sms(account.id, "0712345678", "ACME", "hi", simulate="delivered")
    work()  # submit: sms.sent, and the simulated report (no delay in tests): sms.delivered
    work()
    assert log.read_text() == f"{msg.id} delivered\n"
    assert [p["event"] for p in receiver.json()] == ["sms.sent", "sms.delivered"]
    db.session.expire_all()
    assert db.session.get(Message, msg.id).status == "delivered"
