"""Database models. Times are naive UTC (see tnt.clock)."""

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .clock import utcnow
from .crypto import EncryptedString
from .extensions import db
from .states import DeliveryStatus, EventType, MessageStatus

EVENTS = {e.value: e.description for e in EventType}  # name -> when it fires, in the spec's order


class Account(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(UserMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="customer")  # customer | support
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Part of every session's id: raising it ends all of them (tnt.accounts.end_sessions).
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")

    account: Mapped[Account | None] = relationship()

    def get_id(self) -> str:
        """What Flask-Login keeps in the session; tnt.accounts.user_for_session reads it."""
        return f"{self.id}:{self.session_epoch}"

    @property
    def is_support(self) -> bool:
        return self.role == "support"


class Message(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    mobile: Mapped[str] = mapped_column(String(12))
    sender_id: Mapped[str] = mapped_column(String(11))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.QUEUED)
    network: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))  # api | dashboard
    # The simulated provider's forced outcome (tests and demos); None lets it choose.
    simulate: Mapped[str | None] = mapped_column(String(16))
    # Made by "Send test event": real in every field a webhook carries, kept out of lists.
    is_test: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    # The API's delivery listing and the Logs page's queued rows, filtered by mobile.
    __table_args__ = (Index("ix_message_mobile", "mobile"),)

    def as_data(self) -> dict:
        """The `data` object of a webhook payload, keys in the spec's order."""
        from .clock import nairobi_iso

        return {
            "id": self.id,
            "mobile": self.mobile,
            "sender_id": self.sender_id,
            "message": self.message,
            "status": self.status,
            "network": self.network,
            "source": self.source,
            "created_at": nairobi_iso(self.created_at),
            "updated_at": nairobi_iso(self.updated_at),
        }


class Endpoint(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(255), default="")
    events: Mapped[str] = mapped_column(String(255))  # space-separated event names
    secret: Mapped[str | None] = mapped_column(EncryptedString())  # a Fernet token at rest
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column()

    account: Mapped[Account] = relationship()

    @property
    def event_list(self) -> list[str]:
        return self.events.split()

    @property
    def active(self) -> bool:
        return self.enabled and self.deleted_at is None


class Event(db.Model):
    """One fired event; `body` holds the exact bytes every delivery sends."""

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    is_test: Mapped[bool] = mapped_column(default=False)
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(db.Model):
    """An event on its way to one endpoint.

    status: pending (no attempt yet) -> retrying -> delivered | failed.
    `next_attempt_at` is set only while an automatic attempt is due; `lease_*` mark a claim by a
    worker so two workers never send the same delivery at once, and a dead worker's claim expires.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)  # X-TalkNTalk-Delivery
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoint.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    auto_attempts: Mapped[int] = mapped_column(default=0)
    attempts_count: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    lease_token: Mapped[str | None] = mapped_column(String(36))
    last_error: Mapped[str | None] = mapped_column(String(500))
    # A bulk resend asked for one manual attempt; set until the engine has made it.
    resend_pending: Mapped[bool] = mapped_column(default=False, server_default=false())
    resend_requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    event: Mapped[Event] = relationship()
    endpoint: Mapped[Endpoint] = relationship()

    # The Logs page's status filter finds an account's deliveries in one state.
    __table_args__ = (
        Index("ix_delivery_account_status", "account_id", "status", "id"),
        Index("ix_delivery_status", "status", "id"),
    )


class Attempt(db.Model):
    """One POST of a delivery, with what the customer's server answered.

    Event type, message id and mobile are copied here so the Logs page filters one table (a
    message id search goes through the message's events and deliveries: it has few attempts).
    Every index here costs the delivery engine on each attempt it records: keep only those a
    measured Logs query needs (bench/logs_page.py).
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("delivery.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoint.id"))
    event_type: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column()
    mobile: Mapped[str | None] = mapped_column(String(12))
    number: Mapped[int] = mapped_column()
    trigger: Mapped[str] = mapped_column(String(8))  # auto | manual
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    started_at: Mapped[datetime] = mapped_column()
    duration_ms: Mapped[int] = mapped_column()
    ok: Mapped[bool] = mapped_column()
    status_code: Mapped[int | None] = mapped_column()
    response_headers: Mapped[str] = mapped_column(Text, default="")
    response_body: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(String(500))
    # X-TalkNTalk-Signature as sent; loaded only when read (the Logs detail), not with every row
    signature: Mapped[str | None] = mapped_column(String(80), deferred=True)

    delivery: Mapped[Delivery] = relationship()
    requested_by: Mapped[User | None] = relationship()

    # The Logs page lists newest first by (started_at, id) and pages by keyset: each filter is
    # a range scan of one of these, never a sort of the whole table. (delivery_id's index above:
    # a delivery's attempts, and the status filter when few deliveries are in that status.)
    __table_args__ = (
        Index("ix_attempt_started", "started_at", "id"),  # support's "all accounts"
        # A customer's log, date range and 24 h chart; `ok` last so the chart reads the index.
        Index("ix_attempt_account_started", "account_id", "started_at", "id", "ok"),
        # The endpoint filter and the Endpoints page's 24 h success rates.
        Index("ix_attempt_endpoint_started", "endpoint_id", "started_at", "id", "ok"),
        Index("ix_attempt_account_event_started", "account_id", "event_type", "started_at", "id"),
        # A mobile may have thousands of messages: walked newest first, not sorted.
        Index("ix_attempt_mobile_started", "mobile", "started_at", "id"),
    )


class ApiKey(db.Model):
    """A bearer key for the REST API. Only its SHA-256 is stored; the key is shown once."""

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    account: Mapped[Account] = relationship()

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class AuditEntry(db.Model):
    """One change, or a sign-in: what was done, to what, by whom, when and from where.

    `actor` is a label written when the entry is made ("alice@acme.test", "API key billing
    (tnt_a1b2c3d4…)", "cli"), so the entry reads the same after the key is revoked or the user
    removed; `user_id` / `api_key_id` are kept as plain numbers, not foreign keys, for the same
    reason. `details` never holds a secret (tnt.audit). Written in the transaction of the change.
    """

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    # None: an entry of no account (a support user's own sign-in); support staff see those.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(40))  # tnt.audit.Action
    actor_type: Mapped[str] = mapped_column(String(8))  # tnt.audit.ActorType
    actor: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[int | None] = mapped_column()
    api_key_id: Mapped[int | None] = mapped_column()
    address: Mapped[str | None] = mapped_column(String(45))  # request.remote_addr
    target_type: Mapped[str | None] = mapped_column(String(16))  # endpoint | api_key | delivery
    target_id: Mapped[int | None] = mapped_column()
    details: Mapped[dict] = mapped_column(JSON, default=dict)

    # The one index: an account's entries newest first, paged by id (a B-tree is read backwards
    # as well as forwards, so no DESC column is needed). Support's "all accounts" pages by the
    # primary key.
    __table_args__ = (Index("ix_audit_entry_account_id", "account_id", "id"),)


class Inspector(db.Model):
    """A capture URL (`/in/<token>`) that records what is POSTed to it and answers as told
    (tnt.inspectors). Kept 7 days; its last 100 requests are kept."""

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)  # the unguessable path part
    name: Mapped[str] = mapped_column(String(80), default="")
    # The endpoint "Add as endpoint" made: its secret verifies captured signatures.
    endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("endpoint.id"))
    # The mock answer.
    status_code: Mapped[int] = mapped_column(default=200)
    body: Mapped[str] = mapped_column(Text, default="")
    delay_ms: Mapped[int] = mapped_column(default=0)
    fail_first: Mapped[int] = mapped_column(default=0)  # answer 500 to this many, then as told
    failed: Mapped[int] = mapped_column(default=0)  # of fail_first, answered so far (atomic)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)

    endpoint: Mapped[Endpoint | None] = relationship()


class CapturedRequest(db.Model):
    """One request an inspector received, as it arrived (body bytes as sent, headers in order)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    inspector_id: Mapped[int] = mapped_column(ForeignKey("inspector.id"))
    method: Mapped[str] = mapped_column(String(16))
    query: Mapped[str] = mapped_column(String(2048), default="")
    headers: Mapped[str] = mapped_column(Text)  # JSON list of [name, value], as received
    body: Mapped[bytes] = mapped_column(LargeBinary)
    remote_addr: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What the inspector found and answered, decided when it arrived.
    signature: Mapped[str | None] = mapped_column(String(16))  # verified | mismatch | missing
    event_key: Mapped[str | None] = mapped_column(String(80))  # "sms.sent 9041": event, data.id
    repeat: Mapped[str | None] = mapped_column(String(16))  # retry | duplicate (key seen before)
    answered_status: Mapped[int] = mapped_column()

    # The live view reads an inspector's newest rows, and those after the last one shown.
    __table_args__ = (Index("ix_captured_request_inspector", "inspector_id", "id"),)
