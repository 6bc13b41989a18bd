"""Twilio's calls to us: delivery statuses and families' replies. No session, no CSRF token:
each request must carry Twilio's signature over our public URL and its form, else 403."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from referrals.notify import service

log = logging.getLogger(__name__)
bp = Blueprint("sms", __name__, url_prefix="/sms")


def _verified() -> None:
    """Check X-Twilio-Signature against PUBLIC_BASE_URL plus the path (and query): behind a
    proxy, request.url is not the URL Twilio signed."""
    settings = current_app.config["SETTINGS"]
    signature = request.headers.get("X-Twilio-Signature", "")
    if not settings.twilio_auth_token or not signature:
        log.warning("refused %s: no signature or no Twilio auth token", request.path)
        abort(403)
    url = settings.public_base_url.rstrip("/") + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    validator = RequestValidator(settings.twilio_auth_token)
    if not validator.validate(url, request.form, signature):
        log.warning("refused %s: the Twilio signature does not match", request.path)
        abort(403)


@bp.post("/status")
def status() -> Response:
    _verified()
    service.record_status(request.form.to_dict(flat=True), request.args.get("message"))
    return Response(status=204)


@bp.post("/inbound")
def inbound() -> Response:
    _verified()
    answer = service.receive_text(request.form.to_dict(flat=True))
    twiml = MessagingResponse()
    if answer:
        twiml.message(answer)
    return Response(str(twiml), mimetype="application/xml")
