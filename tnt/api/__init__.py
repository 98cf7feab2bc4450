"""The REST API under /api/v1 and the carrier's delivery-report callback."""


def limiter_storage_uri(redis_url: str) -> str:
    """`limits` spells a Redis unix socket `redis+unix://`."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://") :]
    return redis_url


def register(app) -> None:
    """Attach the API blueprints, their document, CSRF exemption and the per-key rate limit."""
    from flask_limiter import Limiter

    from ..extensions import csrf
    from . import (  # noqa: F401
        audit,
        core,
        dashboard,
        deliveries,
        dlr,
        endpoints,
        event_types,
        inspectors,
        messages,
        openapi,
    )

    csrf.exempt(core.bp)  # bearer keys, not cookies
    csrf.exempt(dlr.bp)

    limiter = Limiter(
        core.rate_key,
        storage_uri=limiter_storage_uri(app.config["REDIS_URL"]),
        storage_options={"socket_connect_timeout": 2, "socket_timeout": 2},
        swallow_errors=True,  # Redis down: serve without limits rather than fail
        headers_enabled=True,
        key_prefix="tnt:ratelimit",
    )
    limiter.limit(core.rate_limit, key_func=core.rate_key)(core.bp)
    # The inspectors' public capture route: per inspector (tnt/web/capture.py).
    from ..web import capture

    limiter.limit(capture.rate_limit, key_func=capture.rate_key)(capture.bp)
    limiter.init_app(app)
    app.extensions["tnt_limiter"] = limiter

    app.before_request(core.routing_error_for_api)
    openapi.init_app(app, [core.bp, dlr.bp])
    app.register_blueprint(dashboard.bp)
