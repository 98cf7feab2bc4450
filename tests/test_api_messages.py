from api_helpers import assert_error

from tnt import messages
from tnt.extensions import db
from tnt.models import Message
from tnt.scope import Scope


def test_send_validates_like_the_form_and_stores_an_api_message(api, account):
    resp = api.post(
        "/api/v1/messages",
        json={"mobile": "0712 345 678", "message": "Hi", "sender_id": "ACME", "simulate": "hold"},
    )
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["mobile"] == "254712345678" and body["source"] == "api"
    assert body["status"] == "queued" and body["network"] == "safaricom"
    assert resp.headers["Location"].endswith(f"/api/v1/messages/{body['id']}")
    assert db.session.get(Message, body["id"]).account_id == account.id


def test_send_invalid_fields_are_422_and_store_nothing(api):
    err = assert_error(
        api.post(
            "/api/v1/messages",
            json={"mobile": "123", "message": "", "sender_id": "way too long id"},
        ),
        422,
        "invalid_input",
    )
    assert set(err["fields"]) == {"mobile", "message", "sender_id"}
    assert db.session.query(Message).count() == 0


def test_malformed_wrong_types_unknown_fields_and_huge_bodies(api):
    h = {"Content-Type": "application/json"}
    assert_error(api.post("/api/v1/messages", data=b"{nope", headers=h), 400, "malformed_json")
    assert_error(api.post("/api/v1/messages", data=b"[1, 2]", headers=h), 400)
    err = assert_error(
        api.post("/api/v1/messages", json={"mobile": 712345678, "message": ["x"]}), 422
    )
    assert set(err["fields"]) == {"mobile", "message"}
    err = assert_error(
        api.post("/api/v1/messages", json={"mobile": "0712345678", "message": "x", "admin": True}),
        422,
    )
    assert err["fields"] == {"admin": "Unknown field."}
    big = b'{"mobile": "0712345678", "message": "' + b"x" * (1024 * 1024) + b'"}'
    assert_error(api.post("/api/v1/messages", data=big, headers=h), 413, "body_too_large")
    assert db.session.query(Message).count() == 0


def test_list_filters_and_cursor_paging(api, account):
    ids = [
        messages.send_sms(account.id, "0712345678", "A", f"m{i}", simulate="hold").id
        for i in range(5)
    ]
    other_mobile = messages.send_sms(account.id, "0733123456", "A", "x", simulate="hold").id
    page1 = api.get("/api/v1/messages?limit=2&mobile=0712345678").get_json()
    assert [m["id"] for m in page1["data"]] == ids[::-1][:2]
    page2 = api.get(f"/api/v1/messages?limit=2&mobile=0712345678&cursor={page1['next_cursor']}")
    assert [m["id"] for m in page2.get_json()["data"]] == ids[::-1][2:4]
    last = api.get(f"/api/v1/messages?limit=2&mobile=0712345678&cursor={ids[1]}").get_json()
    assert [m["id"] for m in last["data"]] == [ids[0]] and last["next_cursor"] is None
    assert [
        m["id"] for m in api.get("/api/v1/messages?status=queued&limit=1").get_json()["data"]
    ] == [other_mobile]
    assert api.get("/api/v1/messages?status=sent").get_json()["data"] == []
    assert_error(api.get("/api/v1/messages?status=bogus"), 422)
    assert_error(api.get("/api/v1/messages?limit=0"), 422)
    assert_error(api.get("/api/v1/messages?since=yesterday"), 422)
    assert_error(api.get("/api/v1/messages?colour=red"), 422)


def test_get_and_cancel(api, account):
    msg = messages.send_sms(account.id, "0712345678", "A", "x", simulate="hold")
    assert api.get(f"/api/v1/messages/{msg.id}").get_json()["message"] == "x"
    resp = api.post(f"/api/v1/messages/{msg.id}/cancel")
    assert resp.status_code == 200 and resp.get_json()["status"] == "cancelled"
    assert_error(api.post(f"/api/v1/messages/{msg.id}/cancel"), 409, "conflict")
    assert_error(api.get("/api/v1/messages/999999"), 404, "not_found")


def test_auth_missing_invalid_and_revoked_keys_are_401(client, api, account):
    from tnt import apikeys

    assert_error(client.get("/api/v1/messages"), 401, "unauthorized")
    assert_error(client.get("/api/v1/messages", headers={"Authorization": "Bearer tnt_nope"}), 401)
    assert_error(client.get("/api/v1/messages", headers={"Authorization": "Basic eDp5"}), 401)
    key, raw = apikeys.create(account.id, "to revoke")
    ok = client.get("/api/v1/messages", headers={"Authorization": f"Bearer {raw}"})
    assert ok.status_code == 200
    assert db.session.get(type(key), key.id).last_used_at is not None
    apikeys.revoke(Scope.account(account.id), key.id)
    resp = client.get("/api/v1/messages", headers={"Authorization": f"Bearer {raw}"})
    assert_error(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_other_accounts_messages_are_404(api, other):
    mid = other["message"]
    assert_error(api.get(f"/api/v1/messages/{mid}"), 404)
    assert_error(api.post(f"/api/v1/messages/{mid}/cancel"), 404)
    assert db.session.get(Message, mid).status == "queued"
    assert api.get("/api/v1/messages").get_json()["data"] == []


def test_unknown_routes_and_methods_answer_json(api):
    assert_error(api.get("/api/v1/nothing-here"), 404)
    assert_error(api.delete("/api/v1/messages"), 405)
    assert_error(api.get("/api/v1/messages/99999999999999999999999"), 404)
