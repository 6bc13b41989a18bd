"""What a patient form may contain."""

from __future__ import annotations

from datetime import date

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from referrals.directory.geo import check_zip, normalize_zip
from referrals.forms import FormSchema, Phone
from referrals.patients.consent_rules import ADULT_AGE, age_on
from referrals.terminology import GENDERS, GUARDIAN_RELATIONSHIPS, LANGUAGES, california_today

NAME = validate.Length(min=1, max=100, error="Between 1 and 100 characters.")


def plausible_birth_date(born: date) -> None:
    today = california_today()
    if born > today:
        raise ValidationError("The birth date is in the future.")
    if born.year < today.year - 120:
        raise ValidationError("The birth date is more than 120 years ago.")


class PatientSchema(FormSchema):
    given_name = fields.String(required=True, validate=NAME)
    family_name = fields.String(required=True, validate=NAME)
    birth_date = fields.Date(
        required=True, validate=plausible_birth_date, error_messages={"invalid": "Use a real date."}
    )
    gender = fields.String(load_default="unknown", validate=validate.OneOf(list(GENDERS)))
    phone = Phone(load_default=None)
    language = fields.String(load_default="en", validate=validate.OneOf(list(LANGUAGES)))
    zip_code = fields.String(load_default="", validate=validate.Length(max=10))
    # The ZIP code the clinician confirmed after being told it lies outside California.
    confirm_zip = fields.String(load_default="", validate=validate.Length(max=10))
    mrn = fields.String(load_default=None, validate=validate.Length(max=64))
    guardian_name = fields.String(load_default=None, validate=validate.Length(max=200))
    guardian_relationship = fields.String(
        load_default="parent", validate=validate.OneOf(list(GUARDIAN_RELATIONSHIPS))
    )
    guardian_phone = Phone(load_default=None)
    confirm_new = fields.Boolean(load_default=False)
    guardian_language = fields.String(load_default=None, validate=validate.OneOf(list(LANGUAGES)))

    @validates_schema(skip_on_field_errors=False)  # said together with the other mistakes
    def known_zip(self, data: dict, **_: object) -> None:
        """Unknown ZIP codes are refused; one outside California is confirmed first."""
        if data.get("zip_code"):
            found = check_zip(data["zip_code"], (data.get("confirm_zip", ""),))
            if found.refusal:
                raise ValidationError(found.refusal, "zip_code")
            if found.question:
                raise ValidationError(found.question, "confirm_zip")

    @post_load
    def five_digits(self, data: dict, **_: object) -> dict:
        """The ZIP code as the directory's table has it (94110-1234 is 94110)."""
        if data.get("zip_code"):
            data["zip_code"] = normalize_zip(data["zip_code"])
        return data

    @validates_schema
    def check(self, data: dict, **_: object) -> None:
        if data.get("guardian_phone") and not data.get("guardian_name"):
            raise ValidationError("Give the guardian's name with their phone.", "guardian_name")
        if age_on(data["birth_date"], california_today()) < ADULT_AGE:
            if not data.get("guardian_name"):
                raise ValidationError(
                    "A patient under 18 needs a parent or guardian on file.", "guardian_name"
                )
            if not data.get("guardian_phone"):
                raise ValidationError(
                    "A phone number for the parent or guardian of a minor.", "guardian_phone"
                )
        if data.get("phone") and data.get("phone") == data.get("guardian_phone"):
            raise ValidationError(
                "This is the guardian's number. Give the patient's own phone only: "
                "confidential notices go there.",
                "phone",
            )
