"""App-wide behaviour: configuration from the environment and input the database cannot hold."""

import pytest
from web_fixtures import PASSWORD, sign_in

from tnt import accounts, config


@pytest.mark.parametrize(
    "given, expected",
    [
        (None, f"sqlite:///{config.INSTANCE / 'tnt.db'}"),
        ("postgres://u:p@db:5432/tnt", "postgresql+psycopg://u:p@db:5432/tnt"),
        ("postgresql://u@db/tnt", "postgresql+psycopg://u@db/tnt"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_url_accepts_the_paas_forms(given, expected):
    assert config.database_url(given) == expected


@pytest.mark.parametrize(
    "env",
    [{}, {"TNT_ENV": ""}, {"TNT_ENV": "production"}],
    ids=["TNT_ENV unset", "TNT_ENV empty", "TNT_ENV=production"],
)
def test_production_is_the_default_and_needs_a_secret_key_and_refuses_loopback(env):
    with pytest.raises(RuntimeError, match="SECRET_KEY must be set"):
        config.from_env(env)
    prod = config.from_env(env | {"SECRET_KEY": "k", "TNT_ALLOW_LOOPBACK": "1"})
    assert prod["TNT_ENV"] == "production"
    assert prod["TNT_ALLOW_LOOPBACK"] is False and prod["TNT_HTTPS_ONLY"] is True
    assert prod["SESSION_COOKIE_SECURE"] is True


def test_development_only_when_asked_for_by_name():
    dev = config.from_env({"TNT_ENV": "development"})
    assert dev["TNT_ENV"] == "development" and dev["SECRET_KEY"]  # generated under instance/
    assert dev["TNT_ALLOW_LOOPBACK"] is True and dev["TNT_HTTPS_ONLY"] is False
    assert dev["SESSION_COOKIE_SECURE"] is False
    with pytest.raises(RuntimeError, match="TNT_ENV must be production or development"):
        config.from_env({"TNT_ENV": "dev", "SECRET_KEY": "k"})


def test_the_app_without_tnt_env_refuses_to_start_without_its_keys(app, monkeypatch):
    """A deploy that forgets TNT_ENV gets production: no generated keys."""
    from cryptography.fernet import Fernet

    from tnt import create_app
    from tnt.crypto import SecretsKeyError

    monkeypatch.delenv("TNT_ENV")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("TNT_SECRETS_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY must be set"):
        create_app()
    monkeypatch.setenv("SECRET_KEY", "a-real-key")
    with pytest.raises(SecretsKeyError, match="TNT_SECRETS_KEY must be set"):
        create_app()
    monkeypatch.setenv("TNT_SECRETS_KEY", Fernet.generate_key().decode())
    prod = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})
    assert prod.config["TNT_ENV"] == "production" and prod.config["TNT_HTTPS_ONLY"]


def test_the_development_server_refuses_to_run_in_production(capsys):
    from tnt import devserver

    assert devserver.run({"TNT_ENV": "production"}, 5000) == 2
    assert "TNT_ENV=development" in capsys.readouterr().err


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
    starters = [
        p.name
        for p in Path(__file__).parent.glob("*.py")
        if p.name != "conftest.py" and launch in p.read_text()
    ]
    assert starters == []
