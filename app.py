"""WSGI entry point: `gunicorn app:app`, `flask --app app run`."""

from referrals import create_app

app = create_app()
