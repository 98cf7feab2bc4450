"""The retry policy, exhaustively: it is a pure function, so every case is a line."""

from datetime import datetime, timedelta

import pytest

from tnt.delivery.policy import (
    NOT_SENT,
    RETRY_DELAYS,
    Outcome,
    State,
    decide,
    failure_reason,
    not_sent,
)
from tnt.states import DeliveryStatus as S
from tnt.states import Trigger

NOW = datetime(2026, 5, 20, 8, 30)
LATER = NOW + timedelta(minutes=3)
PENDING = State(S.PENDING, 0, NOW)
TRANSPORT_ERRORS = [
    "Timed out after 10 s",
    "Connection refused",
    "Connection reset by the server",
    "TLS error: certificate verify failed",
    "Connection closed mid-response",
    "Refused: 10.0.0.1 is a private address",
    "Could not resolve host x.test",
]


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_without_a_transport_error_is_success(status):
    assert Outcome.of(status, None) == Outcome(ok=True)


@pytest.mark.parametrize(
    "status, reason",
    [
        (100, "HTTP 100: not a 2xx response"),
        (199, "HTTP 199: not a 2xx response"),
        (300, "HTTP 300: redirects are not followed"),
        (301, "HTTP 301: redirects are not followed"),
        (308, "HTTP 308: redirects are not followed"),
        (400, "HTTP 400: not a 2xx response"),
        (401, "HTTP 401: not a 2xx response"),
        (404, "HTTP 404: not a 2xx response"),
        (410, "HTTP 410: not a 2xx response"),
        (429, "HTTP 429: not a 2xx response"),
        (500, "HTTP 500: not a 2xx response"),
        (503, "HTTP 503: not a 2xx response"),
        (599, "HTTP 599: not a 2xx response"),
    ],
)
def test_every_other_status_is_a_failure_with_its_reason(status, reason):
    assert Outcome.of(status, None) == Outcome(ok=False, reason=reason)


def test_a_redirect_names_where_it_pointed():
    assert failure_reason(302, None, "https://elsewhere.test/") == (
        "HTTP 302: redirects are not followed (to https://elsewhere.test/)"
    )


@pytest.mark.parametrize("error", TRANSPORT_ERRORS)
@pytest.mark.parametrize("status", [None, 200, 503])
def test_a_transport_error_is_a_failure_even_after_a_2xx_status_line(error, status):
    assert Outcome.of(status, error) == Outcome(ok=False, reason=error)


def test_no_status_and_no_error_is_still_a_failure():
    assert Outcome.of(None, None) == Outcome(ok=False, reason="No response")


def failure(reason="HTTP 503: not a 2xx response", manual=False):
    return Outcome(ok=False, reason=reason, manual=manual)


def test_automatic_failures_retry_after_1_5_30_minutes_then_fail_on_the_4th():
    state, seen = PENDING, []
    for n in range(1, 5):
        d = decide(state, failure(), NOW)
        seen.append((d.status, d.auto_attempts, d.retry_in, d.trigger))
        state = State(d.status, d.auto_attempts, d.next_attempt_at)
        if n <= 3:
            assert d.next_attempt_at == NOW + timedelta(seconds=RETRY_DELAYS[n - 1])
    assert seen == [
        (S.RETRYING, 1, 60, Trigger.AUTO),
        (S.RETRYING, 2, 300, Trigger.AUTO),
        (S.RETRYING, 3, 1800, Trigger.AUTO),
        (S.FAILED, 4, None, Trigger.AUTO),
    ]
    assert state.next_attempt_at is None
    assert RETRY_DELAYS == (60, 300, 1800)


@pytest.mark.parametrize("auto_attempts", [0, 1, 2, 3])
@pytest.mark.parametrize("status", [S.PENDING, S.RETRYING])
def test_an_automatic_success_delivers_and_cancels_what_was_due(status, auto_attempts):
    d = decide(State(status, auto_attempts, NOW), Outcome(ok=True), NOW)
    assert (d.status, d.next_attempt_at, d.last_error, d.trigger, d.retry_in) == (
        S.DELIVERED,
        None,
        None,
        Trigger.AUTO,
        None,
    )
    assert d.auto_attempts == auto_attempts


@pytest.mark.parametrize(
    "state",
    [
        State(S.FAILED, 4, None),
        State(S.RETRYING, 2, LATER),
        State(S.PENDING, 0, NOW),
        State(S.DELIVERED, 1, None),
    ],
)
def test_a_manual_resend_that_succeeds_delivers_and_stops_pending_retries(state):
    d = decide(state, Outcome(ok=True, manual=True), NOW)
    assert (d.status, d.next_attempt_at, d.trigger, d.auto_attempts) == (
        S.DELIVERED,
        None,
        Trigger.MANUAL,
        state.auto_attempts,
    )


@pytest.mark.parametrize(
    "state",
    [
        State(S.FAILED, 4, None),
        State(S.RETRYING, 2, LATER),
        State(S.PENDING, 0, NOW),
        State(S.DELIVERED, 1, None),
    ],
)
def test_a_manual_resend_that_fails_changes_no_schedule(state):
    """One more attempt: it starts no second retry series, and a delivery still retrying keeps
    its next automatic attempt and its count."""
    d = decide(state, failure(manual=True), NOW)
    assert (d.status, d.auto_attempts, d.next_attempt_at, d.retry_in, d.trigger) == (
        state.status,
        state.auto_attempts,
        state.next_attempt_at,
        None,
        Trigger.MANUAL,
    )
    assert d.last_error == "HTTP 503: not a 2xx response"


def test_a_bulk_resend_is_one_manual_attempt_whoever_sends_it():
    queued = State(S.RETRYING, 4, NOW, resend_pending=True)
    failed = decide(queued, failure(), NOW)  # sent by the engine, not by a person
    assert (failed.status, failed.auto_attempts, failed.next_attempt_at, failed.trigger) == (
        S.FAILED,
        4,
        None,
        Trigger.MANUAL,
    )
    ok = decide(queued, Outcome(ok=True), NOW)
    assert (ok.status, ok.trigger) == (S.DELIVERED, Trigger.MANUAL)


@pytest.mark.parametrize("error", TRANSPORT_ERRORS)
def test_transport_errors_follow_the_same_schedule_as_bad_statuses(error):
    d = decide(PENDING, Outcome.of(None, error), NOW)
    assert (d.status, d.retry_in, d.last_error) == (S.RETRYING, 60, error)


def test_an_endpoint_gone_before_the_attempt_fails_the_delivery_without_one():
    d = not_sent(State(S.RETRYING, 2, NOW))
    assert (d.status, d.next_attempt_at, d.trigger, d.last_error, d.auto_attempts) == (
        S.FAILED,
        None,
        None,
        NOT_SENT,
        2,
    )
