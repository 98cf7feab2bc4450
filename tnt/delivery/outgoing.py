"""What one claimed delivery carries on its way out, and the headers of its POST."""

from dataclasses import dataclass
from datetime import datetime

from .. import __version__
from ..signing import signature
from ..states import DeliveryStatus
from .policy import State

USER_AGENT = f"TalkNTalk-Webhooks/{__version__}"


@dataclass(slots=True)
class Outgoing:
    delivery_id: int
    account_id: int
    endpoint_id: int
    url: str
    secret: str | None
    active: bool  # the endpoint is enabled and not deleted
    uid: str
    event_type: str
    body: bytes
    message_id: int | None
    mobile: str | None
    status: DeliveryStatus
    auto_attempts: int
    next_attempt_at: datetime | None
    resend_pending: bool  # a bulk resend asked for one manual attempt
    resend_requested_by_id: int | None
    lease_expires_at: datetime | None  # the lease as the database holds it
    unusable: str | None = None  # why it cannot be sent (its signing secret cannot be read)
    signature: str | None = None  # X-TalkNTalk-Signature, when the endpoint has a secret
    token: str = ""  # the claim's lease token
    send_by: float = 0.0  # time.monotonic() after which no POST may start (see claiming)

    @property
    def state(self) -> State:
        return State(self.status, self.auto_attempts, self.next_attempt_at, self.resend_pending)


def sign(o: Outgoing) -> None:
    """Sign the body with the endpoint's secret as read at claim time (kept with the attempt)."""
    o.signature = signature(o.body, o.secret) if o.secret else None


def request_headers(o: Outgoing) -> dict[str, str]:
    """The headers of a delivery's POST."""
    return sent_headers(o.event_type, o.uid, o.signature)


def sent_headers(event_type: str, uid: str, signed: str | None) -> dict[str, str]:
    """The headers a POST carried, from what is stored: the Logs show exactly these."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-TalkNTalk-Event": event_type,
        "X-TalkNTalk-Delivery": uid,
    }
    if signed:
        headers["X-TalkNTalk-Signature"] = signed
    return headers
