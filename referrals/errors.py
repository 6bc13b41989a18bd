"""Errors the services raise; each entry point turns them into a page, a form message or an
OperationOutcome. Messages are written for the person who will read them."""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 400

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class InvalidInput(ServiceError):
    status_code = 422


class NotFound(ServiceError):
    """Also what a user gets for something it exists but is not theirs to see."""

    status_code = 404


class Forbidden(ServiceError):
    status_code = 403


class Conflict(ServiceError):
    """Someone else changed the record since the form was loaded."""

    status_code = 409
