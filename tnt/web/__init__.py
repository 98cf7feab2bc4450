"""The dashboard (Flask + htmx)."""


def register(app) -> None:
    """Attach the dashboard's blueprints, login manager hooks and error handlers."""
