"""The delivery engine's settings: one object, built from the app's config."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EngineSettings:
    timeout: float  # one deadline over a whole POST: DNS, connect, TLS, send, read
    lease: float  # how long a claim holds; a killed worker's claims come free after it
    batch: int  # most deliveries one claim takes
    in_flight: int  # most POSTs under way in one worker process (sockets, not threads)
    per_endpoint: int  # most POSTs under way to one endpoint from one worker process
    hold_per_endpoint: int  # most claimed and unanswered per endpoint; more is given back
    slow_after: float  # an endpoint with every lane busy and no answer this long is slow
    drain_idle: float  # a drain job with nothing to do waits this long for events, then ends
    drain_seconds: float = 2.0  # a drain job claims this long, then hands over to a fresh job
    claim_every: float = 0.025  # under steady traffic, claims come at most this often
    write_delay: float = 0.02  # a write waits this long for more answers to join it
    sweep_grace: float = 5.0  # due this long and unclaimed: its wake-up was lost
    fault: str = ""  # TNT_FAULT: a fault to inject, for the fault tests only

    def __post_init__(self) -> None:
        if self.lease <= self.send_window:
            raise ValueError(
                f"TNT_LEASE_SECONDS ({self.lease:g}) must be longer than the "
                f"delivery timeout plus a margin ({self.send_window:g} s): a "
                f"shorter lease could never cover a POST"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "EngineSettings":
        return cls(
            timeout=float(config["TNT_DELIVERY_TIMEOUT"]),
            lease=float(config["TNT_LEASE_SECONDS"]),
            batch=int(config["TNT_BATCH_SIZE"]),
            in_flight=int(config["TNT_SEND_CONCURRENCY"]),
            per_endpoint=int(config["TNT_PER_ENDPOINT"]),
            hold_per_endpoint=int(config["TNT_HOLD_PER_ENDPOINT"]),
            slow_after=float(config["TNT_SLOW_AFTER"]),
            drain_idle=float(config["TNT_DRAIN_IDLE"]),
            fault=config.get("TNT_FAULT") or "",
        )

    @property
    def margin(self) -> float:
        """Slack kept between a POST's deadline and its lease's end (scheduling, clocks)."""
        return min(5.0, self.lease / 10)

    @property
    def send_window(self) -> float:
        """A claimed delivery is sent only while its lease has more than this left to run,
        so its POST always ends (deadline + margin) before the lease does."""
        return self.timeout + self.margin

    @property
    def statement_timeout(self) -> float:
        """The longest one statement of a worker may run (claims and writes take milliseconds)."""
        return min(10.0, self.lease / 3)

    @property
    def idle_in_transaction(self) -> float:
        """A worker's database session that sits this long inside a transaction (a frozen
        process) is ended by PostgreSQL, which releases its row locks well within the lease."""
        return min(5.0, self.lease / 4)
