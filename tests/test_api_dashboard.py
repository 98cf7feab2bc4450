"""The dashboard's API pages: API keys (shown once, revoke) and the API reference."""

import re

import pytest
from flask_login import FlaskLoginClient

from tnt import accounts, apikeys
from tnt.extensions import db
from tnt.models import ApiKey


@pytest.fixture
def as_user(app):
    app.test_client_class = FlaskLoginClient

    def client_for(user):
        return app.test_client(user=user)

    return client_for


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_create_key_shows_it_once_and_revoke(as_user, account):
    user = accounts.create_user("a@acme.test", "password123", account_id=account.id)
    c = as_user(user)
    page = c.get("/api-keys")
    assert page.status_code == 200 and "No API keys yet" in page.get_data(as_text=True)
    resp = c.post("/api-keys", data={"name": "billing", "csrf_token": _csrf(page.get_data(True))})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 201
    raw = re.search(r'id="new-key-value">(tnt_[^<]+)<', html).group(1)
    key = apikeys.authenticate(raw)
    assert key.account_id == account.id and key.created_by_id == user.id
    again = c.get("/api-keys").get_data(as_text=True)
    assert raw not in again and "billing" in again and key.prefix in again
    resp = c.post(f"/api-keys/{key.id}/revoke", data={"csrf_token": _csrf(again)})
    assert resp.status_code == 302
    assert apikeys.authenticate(raw) is None
    bad = c.post("/api-keys", data={"name": "", "csrf_token": _csrf(again)})
    assert bad.status_code == 422 and "Enter a name" in bad.get_data(as_text=True)


def test_pages_need_sign_in(app):
    anon = app.test_client()
    assert anon.get("/api-keys").status_code == 302
    assert anon.get("/api-docs").status_code == 302
    assert anon.post("/api-keys", data={"name": "x"}).status_code in (302, 400)
    assert db.session.query(ApiKey).count() == 0


def test_keys_page_is_scoped_to_the_account(as_user, account):
    other = accounts.create_account("Other")
    theirs, _ = apikeys.create(other.id, "theirs")
    user = accounts.create_user("b@acme.test", "password123", account_id=account.id)
    c = as_user(user)
    page = c.get("/api-keys").get_data(as_text=True)
    assert "theirs" not in page
    assert (
        c.post(f"/api-keys/{theirs.id}/revoke", data={"csrf_token": _csrf(page)}).status_code == 404
    )
    assert db.session.get(ApiKey, theirs.id).revoked_at is None


def test_api_page_shows_the_document_with_curl_examples(as_user, account):
    from tnt.api.openapi import document, operations

    user = accounts.create_user("c@acme.test", "password123", account_id=account.id)
    html = as_user(user).get("/api-docs").get_data(as_text=True)
    assert "/api/v1/openapi.json" in html and "&#34;openapi&#34;: &#34;3.1.0&#34;" in html
    n_ops = len(list(operations(document())))
    assert html.count("curl -X ") == n_ops
    assert "curl -X POST &#39;http://localhost/api/v1/messages&#39;" in html
    assert "Authorization: Bearer $TNT_API_KEY" in html
