"""/api/v1/inspectors: the request inspector (tnt.inspectors): create one (and its endpoint), set
its answer, read what it captured, and make a curl command that replays a request."""

import base64

from flask import Response, url_for

from .. import inspectors
from ..errors import NotFound
from . import schemas
from .core import account_id, bp, scope
from .openapi import error


def inspector_json(i) -> dict:
    return {
        "id": i.id,
        "name": i.name,
        "url": inspectors.capture_url(i),
        "endpoint_id": i.endpoint_id,
        "status_code": i.status_code,
        "body": i.body,
        "delay_ms": i.delay_ms,
        "fail_first": i.fail_first,
        "failed": i.failed,
        "created_at": i.created_at,
        "expires_at": i.expires_at,
    }


def captured_json(r) -> dict:
    return {
        "id": r.id,
        "inspector_id": r.inspector_id,
        "method": r.method,
        "query": r.query,
        "headers": [{"name": k, "value": v} for k, v in inspectors.headers_of(r)],
        "body": inspectors.body_text(r),
        "body_base64": base64.b64encode(r.body).decode(),
        "size": len(r.body),
        "remote_addr": r.remote_addr,
        "received_at": r.received_at,
        "signature": r.signature,
        "event_key": r.event_key,
        "repeat": r.repeat,
        "answered_status": r.answered_status,
    }


def _inspector(inspector_id):
    return inspectors.get(scope(), inspector_id)


def _request(inspector_id, request_id):
    inspector = _inspector(inspector_id)
    row = inspectors.get_request(scope(), request_id)
    if row.inspector_id != inspector.id:
        raise NotFound("No such request.")
    return row


@bp.get("/inspectors", tags=["inspectors"])
@bp.response(200, schemas.InspectorList)
def list_inspectors():
    """List inspectors"""
    return {"data": [inspector_json(i) for i in inspectors.list_for(scope())]}


@bp.post("/inspectors", tags=["inspectors"])
@bp.arguments(schemas.InspectorInput, required=False)
@bp.response(201, schemas.Inspector)
@bp.alt_response(409, **error(409))
def create_inspector(body):
    """Create inspector"""
    i = inspectors.create(account_id(), body.get("name", ""), body.get("add_endpoint", False))
    return inspector_json(i), {"Location": url_for("api.get_inspector", inspector_id=i.id)}


@bp.get("/inspectors/<int:inspector_id>", tags=["inspectors"])
@bp.response(200, schemas.Inspector)
def get_inspector(inspector_id):
    """Get inspector"""
    return inspector_json(_inspector(inspector_id))


@bp.patch("/inspectors/<int:inspector_id>", tags=["inspectors"])
@bp.arguments(schemas.MockInput, required=False)
@bp.response(200, schemas.Inspector)
def update_inspector(body, inspector_id):
    """Set inspector answer"""
    i = _inspector(inspector_id)
    if body:
        inspectors.set_mock(i, **body)
    return inspector_json(i)


@bp.delete("/inspectors/<int:inspector_id>", tags=["inspectors"])
@bp.response(204)
def delete_inspector(inspector_id):
    """Delete inspector"""
    inspectors.delete_inspector(_inspector(inspector_id))
    return Response(status=204)


@bp.post("/inspectors/<int:inspector_id>/endpoint", tags=["inspectors"])
@bp.response(201, schemas.Inspector)
@bp.alt_response(409, **error(409))
def add_inspector_endpoint(inspector_id):
    """Add inspector as endpoint"""
    i = _inspector(inspector_id)
    inspectors.add_as_endpoint(i)
    return inspector_json(i)


@bp.get("/inspectors/<int:inspector_id>/requests", tags=["inspectors"])
@bp.arguments(schemas.CapturedQuery, location="query")
@bp.response(200, schemas.CapturedRequestList)
def list_inspector_requests(query, inspector_id):
    """List captured requests"""
    i = _inspector(inspector_id)
    rows = inspectors.requests_of(i, after=query.get("after"))
    return {"data": [captured_json(r) for r in rows]}


@bp.get("/inspectors/<int:inspector_id>/requests/<int:request_id>", tags=["inspectors"])
@bp.response(200, schemas.CapturedRequest)
def get_inspector_request(inspector_id, request_id):
    """Get captured request"""
    return captured_json(_request(inspector_id, request_id))


@bp.get("/inspectors/<int:inspector_id>/requests/<int:request_id>/curl", tags=["inspectors"])
@bp.arguments(schemas.ReplayQuery, location="query")
@bp.response(200, schemas.CurlCommand)
def replay_inspector_request(query, inspector_id, request_id):
    """Replay captured request as curl"""
    return {"command": inspectors.curl_command(_request(inspector_id, request_id), query["url"])}
