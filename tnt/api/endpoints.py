"""/api/v1/endpoints: CRUD, enable/disable, the signing secret, test events (tnt.endpoints)."""

from flask import Response, url_for

from .. import deliveries, endpoints
from . import schemas
from .core import account_id, bp, scope
from .deliveries import delivery_json


def _endpoint(endpoint_id):
    return endpoints.get(scope(), endpoint_id)


@bp.get("/endpoints", tags=["endpoints"])
@bp.response(200, schemas.EndpointList)
def list_endpoints():
    """List endpoints"""
    return {"data": endpoints.list_for(scope())}


@bp.post("/endpoints", tags=["endpoints"])
@bp.arguments(schemas.EndpointInput)
@bp.response(201, schemas.Endpoint)
def create_endpoint(body):
    """Create endpoint"""
    e = endpoints.create(
        account_id(),
        body["url"],
        body.get("events"),
        body.get("description", ""),
        body.get("secret"),
        enabled=body.get("enabled", True),
    )
    return e, {"Location": url_for("api.get_endpoint", endpoint_id=e.id)}


@bp.get("/endpoints/<int:endpoint_id>", tags=["endpoints"])
@bp.response(200, schemas.Endpoint)
def get_endpoint(endpoint_id):
    """Get endpoint"""
    return _endpoint(endpoint_id)


@bp.patch("/endpoints/<int:endpoint_id>", tags=["endpoints"])
@bp.arguments(schemas.EndpointUpdate, required=False)
@bp.response(200, schemas.Endpoint)
def update_endpoint(body, endpoint_id):
    """Update endpoint"""
    e = _endpoint(endpoint_id)
    # Validate everything before changing anything: update() checks url/events/description/secret.
    endpoints.validate(
        body.get("url", e.url),
        body.get("events", e.event_list),
        body.get("description", e.description),
        body.get("secret"),
    )
    if {"url", "events", "description", "secret"} & body.keys():
        endpoints.update(
            e,
            body.get("url", e.url),
            body.get("events", e.event_list),
            body.get("description", e.description),
            # null clears the secret; absent leaves it as it is
            ("" if body["secret"] is None else body["secret"]) if "secret" in body else None,
        )
    if "enabled" in body and body["enabled"] != e.enabled:
        endpoints.set_enabled(e, body["enabled"])
    return e


@bp.delete("/endpoints/<int:endpoint_id>", tags=["endpoints"])
@bp.response(204)
def delete_endpoint(endpoint_id):
    """Delete endpoint"""
    endpoints.delete(_endpoint(endpoint_id))
    return Response(status=204)


@bp.post("/endpoints/<int:endpoint_id>/enable", tags=["endpoints"])
@bp.response(200, schemas.Endpoint)
def enable_endpoint(endpoint_id):
    """Enable endpoint"""
    return endpoints.set_enabled(_endpoint(endpoint_id), True)


@bp.post("/endpoints/<int:endpoint_id>/disable", tags=["endpoints"])
@bp.response(200, schemas.Endpoint)
def disable_endpoint(endpoint_id):
    """Disable endpoint"""
    return endpoints.set_enabled(_endpoint(endpoint_id), False)


@bp.post("/endpoints/<int:endpoint_id>/secret/reveal", tags=["endpoints"])
@bp.response(200, schemas.EndpointSecret)
def reveal_endpoint_secret(endpoint_id):
    """Reveal endpoint secret

    Endpoints are answered without their secret; this reads it, and the audit trail records
    that it was read (never its value). A POST, as the dashboard's Reveal is: it is an action
    that leaves a trace, not a plain read."""
    e = _endpoint(endpoint_id)
    endpoints.secret_shown(e, via="api")
    return {"secret": e.secret}


@bp.put("/endpoints/<int:endpoint_id>/secret", tags=["endpoints"])
@bp.arguments(schemas.SecretInput)
@bp.response(200, schemas.EndpointWithSecret)
def set_endpoint_secret(body, endpoint_id):
    """Set endpoint secret"""
    e = _endpoint(endpoint_id)
    return endpoints.update(e, e.url, e.event_list, e.description, body["secret"])


@bp.post("/endpoints/<int:endpoint_id>/secret/rotate", tags=["endpoints"])
@bp.response(200, schemas.EndpointWithSecret)
def rotate_endpoint_secret(endpoint_id):
    """Rotate endpoint secret"""
    return endpoints.rotate_secret(_endpoint(endpoint_id))


@bp.delete("/endpoints/<int:endpoint_id>/secret", tags=["endpoints"])
@bp.response(200, schemas.Endpoint)
def clear_endpoint_secret(endpoint_id):
    """Clear endpoint secret"""
    return endpoints.clear_secret(_endpoint(endpoint_id))


@bp.post("/endpoints/<int:endpoint_id>/test", tags=["endpoints"])
@bp.arguments(schemas.TestInput, required=False)
@bp.response(202, schemas.Delivery)
def test_endpoint(body, endpoint_id):
    """Send test event"""
    d = endpoints.send_test(
        _endpoint(endpoint_id), body.get("event", "sms.delivered"), source="api"
    )
    return delivery_json(d, d.event, deliveries.mobile_of(d))
