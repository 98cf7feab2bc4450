"""TalkNTalk Webhooks: signed webhook delivery for an SMS platform."""
import logging

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

__version__ = "0.1.0"


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: environment config, then `test_config` overrides."""
    from . import config
    from .extensions import csrf, db, login_manager, migrate

    app = Flask(__name__, instance_path=str(config.INSTANCE),
                template_folder="../templates", static_folder="../static")
    app.config.from_mapping(config.from_env())
    if test_config:
        app.config.from_mapping(test_config)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        config.INSTANCE.mkdir(parents=True, exist_ok=True)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(config.ROOT / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from . import api, web
    from .cli import tnt_cli

    web.register(app)
    api.register(app)
    app.cli.add_command(tnt_cli)

    @app.get("/healthz")
    def healthz():
        return {"ok": True, "version": __version__}

    return app


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record):
    """WAL lets the web and worker processes read while one writes; wait, don't fail, on locks."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()
