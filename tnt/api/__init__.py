"""The REST API under /api/v1 and the carrier's delivery-report callback."""


def register(app) -> None:
    """Attach the API blueprints."""
