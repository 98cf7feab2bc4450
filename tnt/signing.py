"""The X-TalkNTalk-Signature header, exactly as the spec's verify_signature expects."""

import hashlib
import hmac


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
