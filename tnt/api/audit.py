"""/api/v1/audit: the key's account's audit trail, newest first (tnt.audit)."""

from .. import audit
from . import schemas
from .core import before_id, bp, page, scope


@bp.get("/audit", tags=["audit"])
@bp.arguments(schemas.AuditQuery, location="query")
@bp.response(200, schemas.AuditPage)
def list_audit_entries(args):
    """List audit entries

    Who changed what in this account (endpoints, their secrets, API keys, resends, sign-ins),
    when and from which address.
    """
    cursor, limit = args.pop("cursor", None), args.pop("limit", 50)
    rows = audit.entries(scope(), before_id=before_id(cursor), limit=limit)
    return page(rows, limit)
