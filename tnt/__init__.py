"""TalkNTalk Webhooks: signed webhook delivery for an SMS platform."""

import logging
from itertools import chain

from flask import Flask, abort, request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.routing import IntegerConverter

__version__ = "0.1.0"
MAX_ID = 2**31 - 1  # INTEGER primary keys on PostgreSQL


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: environment config, then `test_config` overrides."""
    from . import config, security
    from .extensions import csrf, db, login_manager, migrate

    app = Flask(
        __name__,
        instance_path=str(config.INSTANCE),
        template_folder="../templates",
        static_folder="../static",
    )
    app.url_map.converters["int"] = IdConverter
    app.config.from_mapping(config.from_env())
    if test_config:
        app.config.from_mapping(test_config)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        config.INSTANCE.mkdir(parents=True, exist_ok=True)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        # A database that vanishes without a reset (a partition) fails fast instead of hanging
        # a worker until the kernel gives up on the connection.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            **app.config["SQLALCHEMY_ENGINE_OPTIONS"],
            "connect_args": {
                "connect_timeout": 5,
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            },
        }

    if app.config["TNT_PROXY_HOPS"] > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TNT_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(config.ROOT / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    security.init_app(app)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from . import api, web
    from .cli import tnt_cli

    web.register(app)
    api.register(app)
    app.cli.add_command(tnt_cli)

    @app.before_request
    def refuse_nul():
        """PostgreSQL text cannot hold NUL: refuse it at the door (400), not deep inside (500)."""
        if request.blueprint == "capture":
            return  # an inspector stores bodies as bytes, as sent; reading the form would eat them
        values = chain(*request.args.listvalues())
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            # Only forms: touching request.form would fix the stream before the API sets its
            # own body size limit.
            values = chain(values, *request.form.listvalues())
        if any("\x00" in v for v in values):
            abort(400, "Request parameters must not contain NUL characters.")

    @app.get("/healthz")
    def healthz():
        return {"ok": True, "version": __version__}

    return app


class IdConverter(IntegerConverter):
    """`<int:id>`: an id too big for the database becomes 0, which no row has, so the view
    answers its usual 404 instead of the database raising (a 500). Refusing to match the rule
    would turn into a 405 whenever the same path has other methods."""

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        return number if number <= MAX_ID else 0


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
