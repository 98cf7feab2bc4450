"""How the API reads a request for its schemas (webargs, under flask-smorest): a JSON body
whatever its Content-Type, unknown query parameters refused, and every error in our shape."""

import json

from marshmallow import RAISE, missing
from webargs.flaskparser import FlaskParser

from .errors import ApiError


def _first(messages) -> str:
    """A field's first message (marshmallow nests lists and per-item dicts)."""
    while not isinstance(messages, str):
        messages = next(iter(messages.values())) if isinstance(messages, dict) else messages[0]
    return messages


class Parser(FlaskParser):
    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": RAISE,
        "querystring": RAISE,
    }

    def load_json(self, req, schema):
        """The body as a JSON object, read whatever the Content-Type says (`curl -d` sends a
        form type). An empty body is an empty object, unless the schema requires fields."""
        raw = req.get_data(cache=True)
        if not raw.strip():
            if any(f.required for f in schema.fields.values()):
                raise ApiError(400, "bad_request", "Send a JSON object as the request body.")
            return missing
        try:
            data = json.loads(raw)
        except ValueError:
            raise ApiError(400, "malformed_json", "The body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "bad_request", "The body must be a JSON object.")
        return data

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        """One 422 naming each bad field (or query parameter) with its first message."""
        [(location, messages)] = error.messages.items()
        what = "query parameters" if location in ("query", "querystring") else "fields"
        raise ApiError(
            422,
            "invalid_input",
            f"Some {what} are not valid.",
            {name: _first(m) for name, m in messages.items()},
        )
