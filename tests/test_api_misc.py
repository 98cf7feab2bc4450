"""Rate limit, event types, the OpenAPI document against the routes, the CLI and dashboard."""

import re

from api_helpers import assert_error

from tnt import apikeys, create_app
from tnt.api.openapi import operations
from tnt.extensions import db
from tnt.models import EVENTS, ApiKey


def test_rate_limit_per_key_answers_429_with_retry_after(app, client, api, account):
    app.config["TNT_API_RATE_LIMIT"] = "3/minute"
    for _ in range(3):
        assert api.get("/api/v1/event-types").status_code == 200
    resp = api.get("/api/v1/event-types")
    assert_error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) > 0
    # Another key of the same account has its own budget.
    _key, raw = apikeys.create(account.id, "second")
    assert (
        client.get("/api/v1/event-types", headers={"Authorization": f"Bearer {raw}"}).status_code
        == 200
    )


def test_the_api_still_answers_when_redis_is_down(app, api_key, account):
    down = create_app(
        app.config | {"REDIS_URL": "redis://127.0.0.1:9/0", "TNT_API_RATE_LIMIT": "1/minute"}
    )
    with down.app_context():
        c = down.test_client()
        for _ in range(3):
            resp = c.get("/api/v1/endpoints", headers={"Authorization": f"Bearer {api_key}"})
            assert resp.status_code == 200


def test_event_types_have_descriptions_and_rendered_examples(api):
    data = api.get("/api/v1/event-types").get_json()["data"]
    assert [e["type"] for e in data] == list(EVENTS)
    for e in data:
        assert e["description"] == EVENTS[e["type"]]
        assert list(e["example"]) == ["event", "timestamp", "data"]
        assert e["example"]["event"] == e["type"]
        assert e["example"]["data"]["status"] == e["type"].split(".")[1]
        assert e["example"]["timestamp"].endswith("+03:00")


def test_openapi_document_matches_the_routes(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()  # public: no key needed
    assert doc["openapi"] == "3.1.0"
    documented = {(path, method.upper()) for path, method, _op in operations(doc)}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") or rule.rule.startswith("/provider/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented
    for ref in re.findall(r"#/components/schemas/(\w+)", str(doc)):
        assert ref in doc["components"]["schemas"]


def test_cli_api_keys(runner, account):
    out = runner.invoke(args=["tnt", "api-key", "create", "--account", "Acme", "--name", "ci"])
    assert out.exit_code == 0, out.output
    raw = re.search(r"(tnt_\S+)", out.output).group(1)
    key = apikeys.authenticate(raw)
    assert key is not None and key.name == "ci" and key.account_id == account.id
    listed = runner.invoke(args=["tnt", "api-key", "list", "--account", "Acme"])
    assert f"{key.id}" in listed.output and "ci" in listed.output and raw not in listed.output
    revoked = runner.invoke(args=["tnt", "api-key", "revoke", str(key.id)])
    assert revoked.exit_code == 0, revoked.output
    assert apikeys.authenticate(raw) is None
    assert runner.invoke(args=["tnt", "api-key", "revoke", "999"]).exit_code != 0


def test_keys_are_stored_hashed(account):
    key, raw = apikeys.create(account.id, "x")
    row = db.session.get(ApiKey, key.id)
    assert raw not in (row.key_hash, row.prefix) and row.key_hash == apikeys.hash_key(raw)
