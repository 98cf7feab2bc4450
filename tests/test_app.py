"""App-wide behaviour: configuration from the environment and input the database cannot hold."""
import pytest
from web_fixtures import PASSWORD, sign_in

from tnt import accounts, config


@pytest.mark.parametrize("given, expected", [
    (None, f"sqlite:///{config.INSTANCE / 'tnt.db'}"),
    ("postgres://u:p@db:5432/tnt", "postgresql+psycopg://u:p@db:5432/tnt"),
    ("postgresql://u@db/tnt", "postgresql+psycopg://u@db/tnt"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_database_url_accepts_the_paas_forms(given, expected):
    assert config.database_url(given) == expected


def test_production_needs_a_secret_key_and_refuses_loopback():
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        config.from_env({"TNT_ENV": "production"})
    prod = config.from_env({"TNT_ENV": "production", "SECRET_KEY": "k", "TNT_ALLOW_LOOPBACK": "1"})
    assert prod["TNT_ALLOW_LOOPBACK"] is False and prod["TNT_HTTPS_ONLY"] is True
    assert prod["SESSION_COOKIE_SECURE"] is True


def test_an_id_too_big_for_the_database_is_a_404(app, client, account):
    app.config["WTF_CSRF_ENABLED"] = False
    accounts.create_user("c@acme.test", PASSWORD, account_id=account.id)
    sign_in(client, "c@acme.test")
    assert client.get(f"/endpoints/{2**40}/edit").status_code == 404
    assert client.get(f"/logs/attempts/{2**63}").status_code == 404


def test_nul_characters_are_refused_not_a_server_error(app, client, account):
    app.config["WTF_CSRF_ENABLED"] = False
    accounts.create_user("c@acme.test", PASSWORD, account_id=account.id)
    sign_in(client, "c@acme.test")
    response = client.get("/logs?q=07%0012")
    assert response.status_code == 400
    assert b"NUL" in response.data


def test_only_the_page_fixture_starts_a_browser():
    """`make test` must pass on a machine without chromium: every browser test goes through
    conftest's `page` fixture, which skips with the reason there."""
    from pathlib import Path

    launch = "sync_" + "playwright"  # spelled apart so this file doesn't match itself
    starters = [p.name for p in Path(__file__).parent.glob("*.py")
                if p.name != "conftest.py" and launch in p.read_text()]
    assert starters == []
