"""Entry point: `gunicorn app:app`, `flask --app app ...`."""

from tnt import create_app

app = create_app()
