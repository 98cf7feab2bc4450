"""Fixtures shared by the API tests (imported by name from the test_api_* modules)."""
import pytest

from tnt import accounts, apikeys, endpoints, events, messages
from tnt.extensions import db


@pytest.fixture
def api_key(account):
    _key, raw = apikeys.create(account.id, "tests")
    return raw


@pytest.fixture
def api(client, api_key):
    """The test client with this account's key on every request."""

    class Api:
        headers = {"Authorization": f"Bearer {api_key}"}

        def __getattr__(self, method):
            def call(path, **kw):
                kw["headers"] = self.headers | kw.get("headers", {})
                return getattr(client, method)(path, **kw)

            return call

    return Api()


@pytest.fixture
def other(app):
    """Another account with one of everything: a held message, an endpoint, a delivery."""
    acct = accounts.create_account("Other Co")
    msg = messages.send_sms(acct.id, "0712345678", "OTHER", "hi", simulate="hold")
    ep = endpoints.create(acct.id, "http://127.0.0.1:9/hooks", ["sms.delivered"])
    d = events.fire_test(ep, "sms.delivered")
    db.session.commit()
    return {"account": acct, "message": msg.id, "endpoint": ep.id, "delivery": d.id}


def assert_error(resp, status: int, code: str | None = None):
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    if code:
        assert body["error"]["code"] == code
    return body["error"]
