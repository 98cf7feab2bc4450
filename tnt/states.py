"""The states things move through, named once: events, message and delivery statuses, triggers."""

from enum import StrEnum


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    CANCELLED = "cancelled"


class EventType(StrEnum):
    """The webhook events, in the spec's order. Each names the status its message has then."""

    SENT = "sms.sent"
    DELIVERED = "sms.delivered"
    FAILED = "sms.failed"
    UNDELIVERED = "sms.undelivered"
    CANCELLED = "sms.cancelled"

    @property
    def status(self) -> MessageStatus:
        return MessageStatus(self.value.removeprefix("sms."))

    @property
    def description(self) -> str:
        return _FIRED_WHEN[self]


_FIRED_WHEN = {
    EventType.SENT: "Message was successfully submitted to the SMS provider",
    EventType.DELIVERED: "Provider confirmed delivery to the handset",
    EventType.FAILED: "Submission to the provider failed",
    EventType.UNDELIVERED: "Provider could not deliver (e.g. number unreachable)",
    EventType.CANCELLED: "A queued message was cancelled before sending",
}


class DeliveryStatus(StrEnum):
    """pending (no attempt yet) -> retrying -> delivered | failed."""

    PENDING = "pending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"


class Trigger(StrEnum):
    """Who started an attempt: the engine's schedule, or a person's resend."""

    AUTO = "auto"
    MANUAL = "manual"
