"""The SMS carrier behind a small interface, and the simulated carrier we ship.

A real carrier would implement `submit` (raising SubmitFailed when it refuses the message) and
report delivery later through `tnt.messages.record_delivery_report`.
"""

import random
from typing import Protocol


class SubmitFailed(Exception):
    pass


class Provider(Protocol):
    def submit(self, message) -> bool:
        """Hand the message to the carrier; False if it is held back (stays queued)."""

    def submitted(self, message) -> None:
        """Called once the submission is committed (a real carrier needs nothing here)."""


class SimulatedProvider:
    """Accepts at once; reports delivered or undelivered a little later.

    `message.simulate` forces the outcome: `delivered`, `undelivered`, `failed` (refused at
    submission) or `hold` (stays queued, so it can be cancelled). None: mostly delivered.
    """

    OUTCOMES = ("delivered", "undelivered", "failed", "hold")

    def __init__(self, schedule_report):
        self._schedule_report = schedule_report  # (message_id, status) -> None, a little later
        self._outcomes = {}

    def submit(self, message) -> bool:
        outcome = message.simulate or random.choices(["delivered", "undelivered"], [9, 1])[0]  # noqa: S311  (a simulation)
        if outcome == "hold":
            return False
        if outcome == "failed":
            raise SubmitFailed("The simulated carrier refused the message.")
        self._outcomes[message.id] = outcome
        return True

    def submitted(self, message) -> None:
        # Report only after the sent status is committed, so the report never races it.
        self._schedule_report(message.id, self._outcomes.pop(message.id))
