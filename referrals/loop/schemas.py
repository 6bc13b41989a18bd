"""What the referral forms and the status-change forms may contain."""

from __future__ import annotations

from datetime import date

from marshmallow import ValidationError, fields, validate, validates_schema

from referrals.forms import FormSchema
from referrals.loop.lifecycle import Action
from referrals.loop.reasons import OTHER, PROGRESS_STEPS
from referrals.terminology import (
    CONSENT_GIVERS,
    CONSENT_METHODS,
    PRIORITIES,
    SDOH_CATEGORIES,
    california_today,
)

NOTE_MAX = 2000


def not_in_future(given: date) -> None:
    if given > california_today():
        raise ValidationError("Consent cannot be dated in the future.")


class ReferralSchema(FormSchema):
    service_id = fields.UUID(
        required=True,
        error_messages={"required": "Choose a service.", "invalid": "Choose a service."},
    )
    category = fields.String(load_default=None, validate=validate.OneOf(list(SDOH_CATEGORIES)))
    priority = fields.String(load_default="routine", validate=validate.OneOf(list(PRIORITIES)))
    note = fields.String(
        required=True,
        validate=validate.Length(max=NOTE_MAX, error=f"At most {NOTE_MAX} characters."),
        error_messages={"required": "Tell the recipient what the family needs."},
    )
    sensitive = fields.Boolean(load_default=False)
    contact_prohibited = fields.Boolean(load_default=False)
    consent_given_by = fields.String(
        load_default=None, validate=validate.OneOf(list(CONSENT_GIVERS))
    )
    consent_given_by_name = fields.String(load_default=None, validate=validate.Length(max=200))
    consent_method = fields.String(
        load_default=None, validate=validate.OneOf(list(CONSENT_METHODS))
    )
    consent_date = fields.Date(
        load_default=None, validate=not_in_future, error_messages={"invalid": "Use a real date."}
    )


class StatusChangeSchema(FormSchema):
    action = fields.String(required=True, validate=validate.OneOf([a.value for a in Action]))
    version = fields.Integer(
        required=True, error_messages={"required": "This form is out of date: reload the page."}
    )
    reason = fields.String(load_default="", validate=validate.Length(max=32))
    reason_detail = fields.String(load_default="", validate=validate.Length(max=1000))
    output_code = fields.String(load_default=None, validate=validate.Length(max=32))
    outcome_note = fields.String(load_default="", validate=validate.Length(max=NOTE_MAX))
    note = fields.String(load_default="", validate=validate.Length(max=NOTE_MAX))
    business_status = fields.String(
        load_default=None, validate=validate.OneOf(list(PROGRESS_STEPS))
    )

    @validates_schema
    def check(self, data: dict, **_: object) -> None:
        if data.get("reason") == OTHER and not data.get("reason_detail"):
            raise ValidationError("Explain the reason.", "reason_detail")
