"""Errors the service functions raise; the dashboard and the API turn them into responses."""


class InvalidInput(ValueError):
    """Bad input; `fields` maps each field name to its message."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


class NotFound(LookupError):
    """No such object for this account (another account's ids are not found either)."""


class Conflict(Exception):
    """The object is not in a state that allows this (e.g. cancelling a sent message)."""
