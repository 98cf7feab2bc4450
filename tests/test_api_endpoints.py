from api_helpers import assert_error
from payloads import assert_webhook
from sqlalchemy import select

from tnt.extensions import db
from tnt.models import EVENTS, AuditEntry, Delivery, Endpoint


def _create(api, url, **extra):
    resp = api.post("/api/v1/endpoints", json={"url": url, "events": ["sms.delivered"]} | extra)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_create_list_get_update_delete(api, receiver, account):
    ep = _create(api, receiver.url, description="main")
    assert ep["events"] == ["sms.delivered"] and ep["enabled"] and not ep["has_secret"]
    assert [e["id"] for e in api.get("/api/v1/endpoints").get_json()["data"]] == [ep["id"]]
    assert api.get(f"/api/v1/endpoints/{ep['id']}").get_json()["description"] == "main"
    resp = api.patch(
        f"/api/v1/endpoints/{ep['id']}",
        json={"events": ["sms.sent", "sms.delivered"], "description": "renamed"},
    )
    body = resp.get_json()
    assert resp.status_code == 200 and body["events"] == ["sms.sent", "sms.delivered"]
    assert body["description"] == "renamed" and body["url"] == receiver.url
    assert (
        api.patch(f"/api/v1/endpoints/{ep['id']}", json={"enabled": False}).get_json()["enabled"]
        is False
    )
    assert api.delete(f"/api/v1/endpoints/{ep['id']}").status_code == 204
    assert_error(api.get(f"/api/v1/endpoints/{ep['id']}"), 404)
    assert api.get("/api/v1/endpoints").get_json()["data"] == []


def test_invalid_endpoint_fields_are_422_and_change_nothing(api, receiver):
    err = assert_error(
        api.post("/api/v1/endpoints", json={"url": "ftp://x", "events": ["sms.x"]}), 422
    )
    assert set(err["fields"]) == {"url", "events"}
    assert_error(
        api.post("/api/v1/endpoints", json={"url": receiver.url, "events": "sms.sent"}), 422
    )
    assert_error(api.post("/api/v1/endpoints", json={"events": ["sms.sent"]}), 422)
    ep = _create(api, receiver.url)
    assert_error(
        api.patch(f"/api/v1/endpoints/{ep['id']}", json={"description": "new", "events": []}), 422
    )
    assert_error(api.patch(f"/api/v1/endpoints/{ep['id']}", json={"enabled": "no"}), 422)
    assert db.session.get(Endpoint, ep["id"]).description == ""


def test_events_default_to_all_of_them_as_the_document_and_the_cli_say(
    app, api, receiver, account, runner
):
    resp = api.post("/api/v1/endpoints", json={"url": receiver.url})
    assert resp.status_code == 201
    assert resp.get_json()["events"] == list(EVENTS)
    schema = api.get("/api/v1/openapi.json").get_json()["components"]["schemas"]["EndpointInput"]
    assert schema["required"] == ["url"]
    out = runner.invoke(
        args=["tnt", "create-endpoint", "--account", account.name, "--url", receiver.url]
    )
    assert out.exit_code == 0, out.output
    assert db.session.scalars(
        select(Endpoint).order_by(Endpoint.id.desc())
    ).first().event_list == list(EVENTS)


def test_a_422_names_every_bad_field_at_once(api, receiver):
    bad = {
        "url": 5,
        "events": ["sms.x"],
        "description": "x" * 300,
        "secret": "short",
        "colour": "red",
    }
    err = assert_error(api.post("/api/v1/endpoints", json=bad), 422)
    assert set(err["fields"]) == {"url", "events", "description", "secret", "colour"}
    assert err["fields"]["url"] == "Must be a string."
    err = assert_error(api.post("/api/v1/endpoints", json={"url": "ftp://x", "events": "all"}), 422)
    assert set(err["fields"]) == {"url", "events"}
    ep = _create(api, receiver.url)
    err = assert_error(
        api.patch(
            f"/api/v1/endpoints/{ep['id']}", json={"url": "http://10.0.0.1/", "enabled": "no"}
        ),
        422,
    )
    assert set(err["fields"]) == {"url", "enabled"}
    err = assert_error(
        api.post(
            "/api/v1/messages", json={"mobile": 712, "message": " ", "sender_id": "far too long id"}
        ),
        422,
    )
    assert set(err["fields"]) == {"mobile", "message", "sender_id"}


def test_enable_disable_and_secret(api, receiver):
    ep = _create(api, receiver.url)
    assert api.post(f"/api/v1/endpoints/{ep['id']}/disable").get_json()["enabled"] is False
    assert api.post(f"/api/v1/endpoints/{ep['id']}/enable").get_json()["enabled"] is True
    resp = api.put(f"/api/v1/endpoints/{ep['id']}/secret", json={"secret": "s3cret-value"})
    assert resp.get_json()["secret"] == "s3cret-value"
    assert_error(api.put(f"/api/v1/endpoints/{ep['id']}/secret", json={"secret": "short"}), 422)
    assert_error(api.put(f"/api/v1/endpoints/{ep['id']}/secret", json={}), 422)
    rotated = api.post(f"/api/v1/endpoints/{ep['id']}/secret/rotate").get_json()
    assert rotated["secret"].startswith("whsec_") and rotated["has_secret"]
    # Endpoints are answered without their secret; reading it is a call of its own, audited.
    assert "secret" not in api.get(f"/api/v1/endpoints/{ep['id']}").get_json()
    assert "secret" not in api.get("/api/v1/endpoints").get_json()["data"][0]
    revealed = api.post(f"/api/v1/endpoints/{ep['id']}/secret/reveal").get_json()
    assert revealed == {"secret": rotated["secret"]}
    assert (
        db.session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == ep["id"])).all()[
            -1
        ]
        == "endpoint.secret_reveal"
    )
    cleared = api.delete(f"/api/v1/endpoints/{ep['id']}/secret").get_json()
    assert "secret" not in cleared and not cleared["has_secret"]
    assert api.post(f"/api/v1/endpoints/{ep['id']}/secret/reveal").get_json() == {"secret": None}
    patched = api.patch(f"/api/v1/endpoints/{ep['id']}", json={"secret": "another-one"})
    assert patched.get_json()["has_secret"]
    assert (
        api.post(f"/api/v1/endpoints/{ep['id']}/secret/reveal").get_json()["secret"]
        == "another-one"
    )
    patched = api.patch(f"/api/v1/endpoints/{ep['id']}", json={"secret": None})
    assert not patched.get_json()["has_secret"]


def test_send_test_event_reaches_the_receiver_signed(api, receiver, work):
    ep = _create(api, receiver.url, secret="test-secret-1")
    resp = api.post(f"/api/v1/endpoints/{ep['id']}/test", json={"event": "sms.undelivered"})
    assert resp.status_code == 202
    d = resp.get_json()
    assert d["is_test"] and d["event"] == "sms.undelivered" and d["endpoint_id"] == ep["id"]
    work()
    [req] = receiver.received()
    payload = assert_webhook(req, "test-secret-1")
    assert payload["event"] == "sms.undelivered" and payload["data"]["status"] == "undelivered"
    assert payload["data"]["source"] == "api" and payload["data"]["id"] == d["message_id"]
    assert db.session.get(Delivery, d["id"]).status == "delivered"
    assert_error(api.post(f"/api/v1/endpoints/{ep['id']}/test", json={"event": "sms.nope"}), 422)


def test_other_accounts_endpoint_is_404_on_every_route(api, other):
    eid = other["endpoint"]
    base = f"/api/v1/endpoints/{eid}"
    for resp in (
        api.get(base),
        api.patch(base, json={"description": "mine now"}),
        api.delete(base),
        api.post(base + "/enable"),
        api.post(base + "/disable"),
        api.put(base + "/secret", json={"secret": "stolen-secret"}),
        api.post(base + "/secret/rotate"),
        api.delete(base + "/secret"),
        api.post(base + "/test", json={}),
    ):
        assert_error(resp, 404)
    ep = db.session.get(Endpoint, eid)
    assert ep.enabled and ep.deleted_at is None and ep.secret is None and ep.description == ""
    assert api.get("/api/v1/endpoints").get_json()["data"] == []
