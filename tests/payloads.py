"""The spec's rules for a webhook request, checked the same way for real and test events."""

import hashlib
import hmac
import json
import re

from tnt.states import EventType

ISO_NAIROBI = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00$")
DATA_KEYS = [
    "id",
    "mobile",
    "sender_id",
    "message",
    "status",
    "network",
    "source",
    "created_at",
    "updated_at",
]


def verify_signature(raw_body: bytes, secret: str, header: str) -> bool:
    """Verbatim from the spec."""
    expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def assert_webhook(request: dict, secret: str | None) -> dict:
    """Check one request the receiver got against the spec; return its payload."""
    h, body = request["headers"], request["body"]
    payload = json.loads(body)
    assert list(payload) == ["event", "timestamp", "data"]
    event = EventType(payload["event"])
    assert h["Content-Type"] == "application/json"
    assert h["X-TalkNTalk-Event"] == event
    assert h["User-Agent"].startswith("TalkNTalk-Webhooks/")
    assert re.fullmatch(r"[0-9a-f-]{36}", h["X-TalkNTalk-Delivery"])
    if secret:
        assert verify_signature(body, secret, h["X-TalkNTalk-Signature"])
    else:
        assert "X-TalkNTalk-Signature" not in h
    assert ISO_NAIROBI.match(payload["timestamp"])
    data = payload["data"]
    assert list(data) == DATA_KEYS
    assert isinstance(data["id"], int) and data["id"] > 0
    assert re.fullmatch(r"254[17]\d{8}", data["mobile"])
    assert all(isinstance(data[k], str) and data[k] for k in DATA_KEYS[1:])
    assert data["status"] == event.status  # each event carries the status it means
    assert data["source"] in ("api", "dashboard")
    assert ISO_NAIROBI.match(data["created_at"]) and ISO_NAIROBI.match(data["updated_at"])
    assert data["updated_at"] == payload["timestamp"]
    return payload
