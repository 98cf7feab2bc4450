"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from tnt import create_app
from tnt.config import database_url
from tnt.extensions import db


@pytest.fixture
def empty_database_url(tmp_path):
    url = database_url(os.environ.get("TEST_DATABASE_URL"))
    if not url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    base, name = url.rsplit("/", 1)
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}_migrations"'))
        conn.execute(text(f'CREATE DATABASE "{name}_migrations"'))
    yield f"{base}/{name}_migrations"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}_migrations" WITH (FORCE)'))
    admin.dispose()


def test_migrations_match_the_models(empty_database_url, redis_url):
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "REDIS_URL": redis_url})
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        db.engine.dispose()
    assert diff == []
