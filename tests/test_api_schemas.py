"""Requests are checked by the schemas the document is generated from: what the document calls
invalid is refused with a 422 naming each field, and what it calls valid is taken."""

import pytest
from api_helpers import assert_error

from tnt import messages
from tnt.extensions import db
from tnt.models import Message


@pytest.mark.parametrize("query", ["status=", "limit=", "source=", "since="])
def test_an_empty_query_parameter_is_refused_not_ignored(api, query):
    err = assert_error(api.get("/api/v1/messages?" + query), 422)
    assert list(err["fields"]) == [query.rstrip("=")]


def test_ids_to_filter_by_start_at_1_and_one_too_big_matches_nothing(api, account, receiver):
    for query in ("endpoint_id=0", "message_id=0"):
        assert list(assert_error(api.get("/api/v1/deliveries?" + query), 422)["fields"]) == [
            query.split("=")[0]
        ]
    assert_error(api.post("/api/v1/deliveries/resend", json={"endpoint_id": 0}), 422)
    resp = api.post("/api/v1/deliveries/resend", json={"endpoint_id": 2**40, "message_id": 2**70})
    assert resp.status_code == 202 and resp.get_json() == {"queued": 0}


@pytest.mark.parametrize(
    "value,ok",
    [
        ("2026-05-20", True),
        ("2026-05-20T10:00:00", True),
        ("2026-05-20T10:00:00.5+03:00", True),
        ("2026-05-20t07:00:00z", True),
        ("0001-01-01", True),
        ("9999-12-31T23:59:59-12:00", True),
        ("20260520", False),
        ("2026-W21-3", False),
        ("2026-05-20T10:00", False),
        ("2026-05-20T10:00:00+0300", False),
        ("2026-02-30", False),
    ],
)
def test_times_are_rfc_3339_date_times_or_dates(api, value, ok):
    resp = api.get("/api/v1/deliveries", query_string={"since": value})
    if ok:
        assert resp.status_code == 200, resp.get_json()
    else:
        assert assert_error(resp, 422)["fields"] == {
            "since": "Must be an ISO 8601 date or date-time."
        }


def test_a_cursor_past_every_id_pages_from_the_newest(api, account):
    """Not a database error (a 500 on PostgreSQL, whose ids are 32-bit)."""
    msg = messages.send_sms(account.id, "0712345678", "A", "x", simulate="hold")
    resp = api.get("/api/v1/messages?cursor=254712345678")
    assert resp.status_code == 200, resp.get_json()
    assert [m["id"] for m in resp.get_json()["data"]] == [msg.id]
    assert api.get("/api/v1/deliveries?cursor=254712345678").status_code == 200


def test_a_mobile_number_has_ascii_digits_and_separators_anywhere(api):
    resp = api.post("/api/v1/messages", json={"mobile": "(+254) 712-345 678", "message": "x"})
    assert resp.status_code == 201 and resp.get_json()["mobile"] == "254712345678"
    arabic = "07\u0661\u0662345678"  # digits the domain's \d would take
    assert list(
        assert_error(api.post("/api/v1/messages", json={"mobile": arabic, "message": "x"}), 422)[
            "fields"
        ]
    ) == ["mobile"]
    assert db.session.query(Message).count() == 1


def test_a_description_is_at_most_255_characters_as_sent(api, receiver):
    err = assert_error(
        api.post("/api/v1/endpoints", json={"url": receiver.url, "description": "x" * 255 + "  "}),
        422,
    )
    assert err["fields"] == {"description": "At most 255 characters."}


def test_the_carrier_reports_on_ids_from_1(client, app):
    app.config["TNT_DLR_SECRET"] = "s3cret"
    resp = client.post(
        "/provider/dlr",
        json={"message_id": 0, "status": "delivered"},
        headers={"Authorization": "Bearer s3cret"},
    )
    assert list(assert_error(resp, 422)["fields"]) == ["message_id"]
    resp = client.post("/provider/dlr", json={"message_id": 0, "status": "delivered"})
    assert_error(resp, 401)  # the secret before the body


def test_another_accounts_id_is_404_whatever_the_body(api, other):
    assert_error(api.post(f"/api/v1/messages/{other['message']}/cancel", json={"x": 1}), 404)
    assert_error(api.post(f"/api/v1/deliveries/{other['delivery']}/resend", json={"x": 1}), 404)
    assert_error(api.put(f"/api/v1/endpoints/{other['endpoint']}/secret"), 404)


def test_the_dashboards_errors_stay_html(client):
    resp = client.get("/no-such-page")
    assert resp.status_code == 404 and resp.mimetype == "text/html"


def test_the_generated_document_says_what_the_server_does(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    schemas, paths = doc["components"]["schemas"], doc["paths"]
    assert "required" not in schemas["EndpointUpdate"]  # PATCH: only what is sent changes
    patch = paths["/api/v1/endpoints/{endpoint_id}"]["patch"]
    assert (
        patch["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/EndpointUpdate"
        )
        and not patch["requestBody"]["required"]
    )
    assert set(paths["/provider/dlr"]["post"]["responses"]) == {
        "200",
        "400",
        "401",
        "404",
        "409",
        "413",
        "422",
    }
    assert set(paths["/api/v1/event-types"]["get"]["responses"]) == {"200", "401", "429"}
    created = paths["/api/v1/endpoints"]["post"]["responses"]["201"]["links"]
    assert created["get_endpoint"] == {
        "operationId": "get_endpoint",
        "parameters": {"endpoint_id": "$response.body#/id"},
    }
    assert set(created) >= {"update_endpoint", "delete_endpoint", "send_test_event"}
