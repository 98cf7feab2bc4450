"""The retry policy: from a delivery's state and the outcome of an attempt, its next state.

Pure: no I/O, no clock (the caller passes `now`). Every rule about what happens after an
attempt lives here: what counts as success, the reason a failure is logged with, the 1 / 5 / 30
minute schedule, when a delivery is Failed, and how a person's resend differs from the engine's
own attempts.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..states import DeliveryStatus, Trigger

RETRY_DELAYS = (60, 300, 1800)  # seconds after automatic failures 1, 2 and 3; the 4th is final
NOT_SENT = "Endpoint disabled or deleted before this attempt."


@dataclass(frozen=True)
class State:
    """What the policy needs to know of a delivery."""

    status: DeliveryStatus
    auto_attempts: int  # automatic attempts so far (manual ones don't count)
    next_attempt_at: datetime | None
    resend_pending: bool = False  # a bulk resend asked for one manual attempt


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended."""

    ok: bool
    reason: str | None = None  # why it failed, as the Logs show it
    manual: bool = False  # a person asked for it (a resend)

    @classmethod
    def of(
        cls,
        status: int | None,
        error: str | None,
        location: str | None = None,
        *,
        manual: bool = False,
    ) -> "Outcome":
        """From what the transport got: success is a 2xx with no transport error (a 2xx whose
        body then timed out or broke off is a failure)."""
        if error is None and status is not None and 200 <= status < 300:
            return cls(ok=True, manual=manual)
        return cls(ok=False, reason=failure_reason(status, error, location), manual=manual)


@dataclass(frozen=True)
class Decision:
    """The delivery's next state, and the attempt to log."""

    status: DeliveryStatus
    auto_attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    trigger: Trigger | None  # the logged attempt's trigger; None: no attempt was made
    retry_in: int | None = None  # seconds until the next automatic attempt, to wake a worker


def failure_reason(status: int | None, error: str | None, location: str | None = None) -> str:
    if error:
        return error
    if status is None:
        return "No response"
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed" + (
            f" (to {location})" if location else ""
        )
    return f"HTTP {status}: not a 2xx response"


def decide(state: State, outcome: Outcome, now: datetime) -> Decision:
    """The next state after an attempt."""
    manual = outcome.manual or state.resend_pending
    trigger = Trigger.MANUAL if manual else Trigger.AUTO
    if outcome.ok:  # whoever asked: done, and any retries still waiting are cancelled
        return Decision(DeliveryStatus.DELIVERED, state.auto_attempts, None, None, trigger)
    if state.resend_pending:  # a bulk resend of a failed delivery: one attempt, no new series
        return Decision(DeliveryStatus.FAILED, state.auto_attempts, None, outcome.reason, trigger)
    if manual:  # one more attempt: the automatic schedule, if any, goes on as it was
        return Decision(
            state.status, state.auto_attempts, state.next_attempt_at, outcome.reason, trigger
        )
    n = state.auto_attempts + 1
    if n > len(RETRY_DELAYS):
        return Decision(DeliveryStatus.FAILED, n, None, outcome.reason, trigger)
    delay = RETRY_DELAYS[n - 1]
    return Decision(
        DeliveryStatus.RETRYING,
        n,
        now + timedelta(seconds=delay),
        outcome.reason,
        trigger,
        retry_in=delay,
    )


def not_sent(state: State) -> Decision:
    """The endpoint was disabled or deleted after the delivery was queued: no attempt, Failed."""
    return Decision(DeliveryStatus.FAILED, state.auto_attempts, None, NOT_SENT, trigger=None)
