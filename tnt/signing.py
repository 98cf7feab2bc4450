"""The X-TalkNTalk-Signature header, exactly as the spec's verify_signature expects."""

import hashlib
import hmac


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(raw_body: bytes, secret: str, header: str) -> bool:
    """The spec's own receiver check, as written there (its "Verifying signatures" snippet)."""
    expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)
