"""Time: stored as naive UTC, shown in Africa/Nairobi with its offset (as the spec's payloads)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

NAIROBI = ZoneInfo("Africa/Nairobi")


def utcnow() -> datetime:
    """Naive UTC now; freezegun moves it in tests. The database clock is never used."""
    return datetime.now(UTC).replace(tzinfo=None)


def nairobi_iso(dt: datetime) -> str:
    """`2026-05-20T11:30:04+03:00` for a naive UTC datetime."""
    return dt.replace(tzinfo=UTC).astimezone(NAIROBI).isoformat(timespec="seconds")
