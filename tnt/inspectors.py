"""The request inspector: a capture URL on this service that records what is POSTed to it and
answers as the customer tells it to, so an integration can be tried before any server exists.

- An inspector belongs to one account, lives 7 days (TTL) and keeps its last 100 requests.
- Its capture URL is `<TNT_PUBLIC_URL>/in/<token>` (tnt/web/capture.py serves it). Deliveries
  to it pass the SSRF guard by netguard's explicit rule (`netguard.is_own_capture_url`).
- "Add as endpoint" makes an endpoint of it with a generated secret and every event; captured
  requests are then checked against that secret, exactly as the spec's receiver does.
- The mock answer: a status, a body, a delay of up to 15 s, and "fail the first N" (answered
  500, counted by one conditional UPDATE so several web processes never fail more than N).
- Expired inspectors answer 410 until the sweep deletes them (`purge_expired`: the worker's
  sweeper, and every create).
"""

import json
import re
import secrets
import shlex
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, has_request_context, request
from sqlalchemy import delete, func, select, update

from . import audit, endpoints, netguard
from .audit import Action
from .clock import utcnow
from .errors import Conflict, InvalidInput, NotFound
from .extensions import db
from .models import CapturedRequest, Endpoint, Inspector
from .scope import Scope
from .signing import verify_signature

TTL = timedelta(days=7)
KEEP = 100  # requests kept per inspector; older ones are deleted as new ones arrive
MAX_BODY = 256 * 1024  # bytes stored per request; more is refused with 413
MAX_DELAY_MS = 15_000  # past the 10 s delivery deadline, to show a timeout
MAX_FAIL_FIRST = 100
MAX_MOCK_BODY = 16 * 1024
MAX_NAME = 80
# Live inspectors per account: each may hold KEEP requests of MAX_BODY bytes (25 MiB).
MAX_PER_ACCOUNT = 10
CAPTURE_PREFIX = "/in/"
DEV_PUBLIC_URL = "http://127.0.0.1:5000"  # what `make run` serves
FAIL_STATUS = 500
# A curl replay leaves these out: they describe the connection the request came on, not it.
HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "expect"}
# Headers curl would add on its own; when the request had none, the replay removes them.
CURL_ADDS = ("Accept", "User-Agent", "Content-Type")
REPLAY_URL = re.compile(r"https?://[!-~]+")


@dataclass(frozen=True)
class Answer:
    """What the capture route answers: the status and body, after `delay` seconds."""

    status: int
    body: str
    delay: float = 0.0


# --- the public address ---------------------------------------------------------------------


def public_url() -> str:
    """TNT_PUBLIC_URL; in development without it, the address this request came to (or what
    `make run` serves). Production without it: Conflict naming the setting."""
    configured = current_app.config.get("TNT_PUBLIC_URL")
    if configured:
        return configured
    if current_app.config.get("TNT_ENV") == "production":
        raise Conflict(
            "Inspectors need this service's public address: set TNT_PUBLIC_URL "
            "(for example https://hooks.example.com) and restart."
        )
    if has_request_context():
        return request.host_url.rstrip("/")
    return DEV_PUBLIC_URL


def capture_url(inspector: Inspector) -> str:
    return public_url() + CAPTURE_PREFIX + inspector.token


# --- inspectors -----------------------------------------------------------------------------


def create(account_id: int, name: str = "", add_endpoint: bool = False) -> Inspector:
    """A new inspector (and, with add_endpoint, its endpoint)."""
    public_url()  # production without TNT_PUBLIC_URL: say so before anything is written
    name = _clean_name(name)
    purge_expired()
    live = db.session.scalar(
        select(func.count()).select_from(Inspector).where(Inspector.account_id == account_id)
    )
    if live >= MAX_PER_ACCOUNT:
        raise Conflict(
            f"An account has at most {MAX_PER_ACCOUNT} inspectors at once: delete one first "
            "(each also expires 7 days after it was made)."
        )
    inspector = Inspector(
        account_id=account_id,
        token=secrets.token_urlsafe(24),
        name=name,
        expires_at=utcnow() + TTL,
    )
    db.session.add(inspector)
    db.session.flush()
    _record(Action.INSPECTOR_CREATE, inspector, name=name)
    db.session.commit()
    if add_endpoint:
        add_as_endpoint(inspector)
    return inspector


def _clean_name(name: str | None) -> str:
    name = (name or "").strip()
    if len(name) > MAX_NAME:
        raise InvalidInput({"name": f"At most {MAX_NAME} characters."})
    if "\x00" in name:
        raise InvalidInput({"name": "Must not contain NUL characters."})
    return name


def get(scope: Scope, inspector_id: int) -> Inspector:
    """The inspector if the scope sees it and it has not expired."""
    inspector = db.session.get(Inspector, inspector_id)
    if (
        inspector is None
        or not (scope.everyone or inspector.account_id == scope.account_id)
        or inspector.expires_at <= utcnow()
    ):
        raise NotFound("No such inspector (it may have expired).")
    return inspector


def list_for(scope: Scope) -> list[Inspector]:
    query = select(Inspector).where(Inspector.expires_at > utcnow()).order_by(Inspector.id.desc())
    if not scope.everyone:
        query = query.where(Inspector.account_id == scope.account_id)
    return list(db.session.scalars(query))


def of_endpoint(endpoint: Endpoint) -> Inspector | None:
    """The live inspector this endpoint was made for, if any."""
    return db.session.scalar(
        select(Inspector).where(
            Inspector.endpoint_id == endpoint.id, Inspector.expires_at > utcnow()
        )
    )


def add_as_endpoint(inspector: Inspector) -> Endpoint:
    """An endpoint for this inspector's URL: every event, a generated signing secret."""
    if inspector.endpoint is not None and inspector.endpoint.deleted_at is None:
        raise Conflict("This inspector is an endpoint already.")
    endpoint = endpoints.create(
        inspector.account_id,
        capture_url(inspector),
        None,  # every event
        f"Inspector {inspector.name}".strip() if inspector.name else "Request inspector",
        endpoints.generate_secret(),
    )
    inspector.endpoint_id = endpoint.id
    db.session.commit()
    return endpoint


def validate_mock(status_code, body, delay_ms, fail_first) -> dict:
    """The mock answer's fields, checked; InvalidInput names each bad one."""
    errors, clean = {}, {}
    for name, value, low, high, message in (
        ("status_code", status_code, 200, 599, "A status code from 200 to 599."),
        ("delay_ms", delay_ms, 0, MAX_DELAY_MS, f"From 0 to {MAX_DELAY_MS} ms (15 s)."),
        ("fail_first", fail_first, 0, MAX_FAIL_FIRST, f"From 0 to {MAX_FAIL_FIRST}."),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[name] = message
        else:
            clean[name] = value
    body = body or ""
    if not isinstance(body, str):
        errors["body"] = "Must be text."
    elif len(body.encode()) > MAX_MOCK_BODY:
        errors["body"] = f"At most {MAX_MOCK_BODY // 1024} KiB."
    elif "\x00" in body:
        errors["body"] = "Must not contain NUL characters."
    else:
        clean["body"] = body
    if errors:
        raise InvalidInput(errors)
    return clean


def set_mock(inspector: Inspector, **fields) -> Inspector:
    """Set the mock answer (fields as validate_mock); "fail the first N" counts afresh."""
    current = {
        "status_code": inspector.status_code,
        "body": inspector.body,
        "delay_ms": inspector.delay_ms,
        "fail_first": inspector.fail_first,
    }
    answer = validate_mock(**(current | fields))
    for key, value in answer.items():
        setattr(inspector, key, value)
    inspector.failed = 0
    answer["body"] = f"{len(answer['body'].encode())} bytes"  # the trail needs no copy of it
    _record(Action.INSPECTOR_ANSWER, inspector, **answer)
    db.session.commit()
    return inspector


def delete_inspector(inspector: Inspector, *, expired: bool = False) -> None:
    """Delete it and its requests, and the endpoint made from it while that still points here
    (nothing would answer it any more); an endpoint whose URL was changed since stays."""
    _record(Action.INSPECTOR_DELETE, inspector, **({"reason": "expired"} if expired else {}))
    _end_endpoint(inspector)
    db.session.execute(delete(CapturedRequest).where(CapturedRequest.inspector_id == inspector.id))
    db.session.delete(inspector)
    db.session.commit()


def purge_expired() -> int:
    """Delete expired inspectors as delete_inspector does, as the service itself (in the audit
    trail); how many went."""
    expired = select(Inspector).where(Inspector.expires_at <= utcnow())
    gone = list(db.session.scalars(expired))
    with audit.acting(audit.Actor.system()):
        for inspector in gone:
            delete_inspector(inspector, expired=True)
    return len(gone)


def _end_endpoint(inspector: Inspector) -> None:
    endpoint = inspector.endpoint
    if (
        endpoint is not None
        and endpoint.deleted_at is None
        and endpoint.url.endswith(CAPTURE_PREFIX + inspector.token)
    ):
        endpoints.delete(endpoint)  # soft: its deliveries stay in the Logs; pending ones end


def _record(action: Action, inspector: Inspector, **details):
    audit.record(action, inspector.account_id, target=("inspector", inspector.id), details=details)


# --- capturing ------------------------------------------------------------------------------


def by_token(token: str) -> Inspector | None:
    """The inspector of a capture URL, expired or not."""
    return db.session.scalar(select(Inspector).where(Inspector.token == token))


def capture(
    inspector: Inspector,
    method: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    remote_addr: str,
) -> Answer:
    """Record one request (dropping the oldest past KEEP) and decide the answer."""
    failing = (
        inspector.fail_first > 0
        and db.session.execute(
            update(Inspector)
            .where(Inspector.id == inspector.id, Inspector.failed < Inspector.fail_first)
            .values(failed=Inspector.failed + 1)
        ).rowcount
        == 1
    )
    if failing:
        answer = Answer(FAIL_STATUS, "Failing on purpose: this inspector fails its first requests.")
    else:
        answer = Answer(inspector.status_code, inspector.body, inspector.delay_ms / 1000)
    event_key = _event_key(body)
    row = CapturedRequest(
        inspector_id=inspector.id,
        method=method[:16],
        query=query[:2048],
        headers=json.dumps(headers),
        body=body,
        remote_addr=(remote_addr or "")[:64],
        received_at=utcnow(),
        signature=_signature_check(inspector, headers, body),
        event_key=event_key,
        repeat=_repeat(inspector.id, event_key, _header(headers, "X-TalkNTalk-Delivery")),
        answered_status=answer.status,
    )
    db.session.add(row)
    db.session.flush()
    keep = (
        select(CapturedRequest.id)
        .where(CapturedRequest.inspector_id == inspector.id)
        .order_by(CapturedRequest.id.desc())
        .limit(KEEP)
    )
    db.session.execute(
        delete(CapturedRequest).where(
            CapturedRequest.inspector_id == inspector.id,
            CapturedRequest.id.not_in(keep.scalar_subquery()),
        )
    )
    db.session.commit()
    return answer


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers if k.lower() == name), None)


def _signature_check(inspector: Inspector, headers, body: bytes) -> str | None:
    """verified | mismatch | missing, or None when the inspector has no endpoint secret."""
    endpoint = inspector.endpoint
    try:
        secret = endpoint.secret if endpoint is not None else None
    except Exception:  # an undecryptable secret: nothing to check with
        secret = None
    if not secret:
        return None
    given = _header(headers, "X-TalkNTalk-Signature")
    if given is None:
        return "missing"
    ok = given.isascii() and verify_signature(body, secret, given)
    return "verified" if ok else "mismatch"


def _event_key(body: bytes) -> str | None:
    """`event data.id` of a webhook body, or None for anything else."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        return None
    event, data_id = doc.get("event"), doc["data"].get("id")
    if not isinstance(event, str) or isinstance(data_id, bool) or data_id is None:
        return None
    return f"{event[:40]} {str(data_id)[:38]}"


def _repeat(inspector_id: int, event_key: str | None, delivery: str | None) -> str | None:
    """retry (the same X-TalkNTalk-Delivery again) or duplicate (another delivery of the same
    event and data.id), when this inspector has seen the event before."""
    if event_key is None:
        return None
    earlier = db.session.scalars(
        select(CapturedRequest.headers).where(
            CapturedRequest.inspector_id == inspector_id, CapturedRequest.event_key == event_key
        )
    ).all()
    if not earlier:
        return None
    seen = {_header(json.loads(h), "X-TalkNTalk-Delivery") for h in earlier}
    return "retry" if delivery is not None and delivery in seen else "duplicate"


# --- reading --------------------------------------------------------------------------------


def requests_of(inspector: Inspector, after: int | None = None) -> list[CapturedRequest]:
    """Its requests, newest first; with `after`, only those newer than that id."""
    query = (
        select(CapturedRequest)
        .where(CapturedRequest.inspector_id == inspector.id)
        .order_by(CapturedRequest.id.desc())
        .limit(KEEP)
    )
    if after is not None:
        query = query.where(CapturedRequest.id > after)
    return list(db.session.scalars(query))


def get_request(scope: Scope, request_id: int) -> CapturedRequest:
    row = db.session.get(CapturedRequest, request_id)
    if row is None:
        raise NotFound("No such request.")
    get(scope, row.inspector_id)  # its inspector: in the scope, and not expired
    return row


def headers_of(row: CapturedRequest) -> list[tuple[str, str]]:
    return [(k, v) for k, v in json.loads(row.headers)]


def pretty_body(row: CapturedRequest) -> str | None:
    """The body as indented JSON, or None if it is not JSON."""
    try:
        return json.dumps(json.loads(row.body), indent=2, ensure_ascii=False)
    except ValueError:
        return None


def body_text(row: CapturedRequest) -> str:
    """The raw body for showing: UTF-8, undecodable bytes as U+FFFD."""
    return row.body.decode("utf-8", errors="replace")


def check_replay_url(url: str | None) -> str:
    url = (url or "").strip()
    if not url:
        raise InvalidInput({"url": "Enter the URL to send it to."})
    if len(url) > netguard.MAX_URL_LENGTH or not REPLAY_URL.fullmatch(url):
        raise InvalidInput(
            {"url": "Use an http:// or https:// URL without spaces, such as your tunnel's."}
        )
    return url


def curl_command(row: CapturedRequest, url: str) -> str:
    """A shell command that re-sends this request's exact body bytes and headers to `url`.
    We never send it anywhere ourselves: the customer runs it (their local server, a tunnel)."""
    url = check_replay_url(url)
    headers = [(k, v) for k, v in headers_of(row) if k.lower() not in HOP_BY_HOP]
    lines = [f"curl -sS -X {shlex.quote(row.method)} {_quote(url.encode())}"]
    for name, value in headers:
        # `Name;` is curl's spelling of a header with an empty value.
        arg = f"{name};" if value == "" else f"{name}: {value}"
        lines.append(f"-H {_quote(arg.encode('latin-1'))}")
    present = {k.lower() for k, _ in headers}
    lines += [f"-H {_quote(f'{h}:'.encode())}" for h in CURL_ADDS if h.lower() not in present]
    lines.append("-H 'Expect:' --data-binary @-")
    return _feed(row.body) + " | " + " \\\n  ".join(lines)


def _feed(body: bytes) -> str:
    """A command that writes exactly `body` to stdout."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        return f"printf '%s' {_quote(body)}"
    import base64

    return f"printf '%s' {base64.b64encode(body).decode()} | base64 -d"


def _quote(raw: bytes) -> str:
    """Shell quoting that keeps bytes: plain single quotes for text, $'…' (bash, zsh) with
    escapes for control characters and bytes that are not UTF-8."""
    try:
        text = raw.decode("utf-8")
        if not any((c < " " and c not in "\t\n") or c == "\x7f" for c in text):
            return shlex.quote(text)
    except UnicodeDecodeError:
        pass
    out = []
    for byte in raw:
        ch = chr(byte)
        if ch in "\\'":
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\x{byte:02x}")
    return "$'" + "".join(out) + "'"
