"""/api/v1/endpoints: CRUD, enable/disable, the signing secret, test events (tnt.endpoints)."""
from flask import url_for

from .. import deliveries, endpoints
from .core import account_id, bp, iso, json_body
from .deliveries import delivery_json

FIELDS = {"url": str, "events": "list[str]", "description": str, "secret": "str?",
          "enabled": bool}


def endpoint_json(e) -> dict:
    return {
        "id": e.id,
        "url": e.url,
        "description": e.description,
        "events": e.event_list,
        "enabled": e.enabled,
        "has_secret": bool(e.secret),
        "secret": e.secret,  # API keys belong to the endpoint's owner, who may see it
        "created_at": iso(e.created_at),
    }


def _endpoint(endpoint_id):
    return endpoints.get(account_id(), endpoint_id)


@bp.get("/endpoints")
def list_endpoints():
    return {"data": [endpoint_json(e) for e in endpoints.list_for(account_id())]}


@bp.post("/endpoints")
def create_endpoint():
    body = json_body(FIELDS, required=("url",), check=lambda b: endpoints.validate(
        b.get("url", ""), b.get("events"), b.get("description", ""), b.get("secret")))
    e = endpoints.create(account_id(), body["url"], body.get("events"),
                         body.get("description", ""), body.get("secret"),
                         enabled=body.get("enabled", True))
    return endpoint_json(e), 201, {"Location": url_for("api.get_endpoint", endpoint_id=e.id)}


@bp.get("/endpoints/<int:endpoint_id>")
def get_endpoint(endpoint_id):
    return endpoint_json(_endpoint(endpoint_id))


@bp.patch("/endpoints/<int:endpoint_id>")
def update_endpoint(endpoint_id):
    e = _endpoint(endpoint_id)
    body = json_body(FIELDS, allow_empty=True, check=lambda b: endpoints.validate(
        b.get("url", e.url), b.get("events", e.event_list), b.get("description", e.description),
        b.get("secret")))
    # Validate everything before changing anything: update() checks url/events/description/secret.
    endpoints.validate(body.get("url", e.url), body.get("events", e.event_list),
                       body.get("description", e.description), body.get("secret"))
    if {"url", "events", "description", "secret"} & body.keys():
        endpoints.update(e, body.get("url", e.url), body.get("events", e.event_list),
                         body.get("description", e.description),
                         # null clears the secret; absent leaves it as it is
                         ("" if body["secret"] is None else body["secret"])
                         if "secret" in body else None)
    if "enabled" in body and body["enabled"] != e.enabled:
        endpoints.set_enabled(e, body["enabled"])
    return endpoint_json(e)


@bp.delete("/endpoints/<int:endpoint_id>")
def delete_endpoint(endpoint_id):
    endpoints.delete(_endpoint(endpoint_id))
    return "", 204


@bp.post("/endpoints/<int:endpoint_id>/enable")
def enable_endpoint(endpoint_id):
    return endpoint_json(endpoints.set_enabled(_endpoint(endpoint_id), True))


@bp.post("/endpoints/<int:endpoint_id>/disable")
def disable_endpoint(endpoint_id):
    return endpoint_json(endpoints.set_enabled(_endpoint(endpoint_id), False))


@bp.put("/endpoints/<int:endpoint_id>/secret")
def set_endpoint_secret(endpoint_id):
    e = _endpoint(endpoint_id)
    body = json_body({"secret": str}, required=("secret",))
    if not body["secret"].strip():
        from ..errors import InvalidInput

        raise InvalidInput({"secret": "Enter a secret, or DELETE it to stop signing."})
    return endpoint_json(endpoints.update(e, e.url, e.event_list, e.description, body["secret"]))


@bp.post("/endpoints/<int:endpoint_id>/secret/rotate")
def rotate_endpoint_secret(endpoint_id):
    e = _endpoint(endpoint_id)
    return endpoint_json(endpoints.set_secret(e, endpoints.generate_secret()))


@bp.delete("/endpoints/<int:endpoint_id>/secret")
def clear_endpoint_secret(endpoint_id):
    return endpoint_json(endpoints.set_secret(_endpoint(endpoint_id), None))


@bp.post("/endpoints/<int:endpoint_id>/test")
def test_endpoint(endpoint_id):
    e = _endpoint(endpoint_id)
    body = json_body({"event": str}, allow_empty=True)
    d = endpoints.send_test(e, body.get("event", "sms.delivered"), source="api")
    return delivery_json(d, d.event, deliveries.mobile_of(d)), 202
