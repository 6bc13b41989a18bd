"""Turning submitted form fields into checked values with marshmallow, and phone numbers."""

from __future__ import annotations

from collections.abc import Mapping

import phonenumbers
from marshmallow import EXCLUDE, Schema, ValidationError, fields

from referrals.errors import InvalidInput


class FormSchema(Schema):
    """A browser form: fields it does not know (buttons, markers) are ignored."""

    class Meta:
        unknown = EXCLUDE


def load(schema: Schema, data: Mapping[str, object]) -> dict:
    """Checked values from raw input: strings trimmed, empty ones treated as not given."""
    cleaned: dict[str, object] = {}
    for key, value in data.items():
        if key == "csrf_token":
            continue
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                continue
        cleaned[key] = value
    try:
        return schema.load(cleaned)
    except ValidationError as err:
        messages = err.normalized_messages()
        flat = {
            key: [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
            for key, msgs in messages.items()
        }
        raise InvalidInput("Please correct the fields marked below.", flat) from None


def normalize_phone(raw: str, region: str = "US") -> str:
    """E.164 form of a phone number a person typed, or ValidationError with a readable reason."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValidationError(f"“{raw}” is not a phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(f"“{raw}” is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class Phone(fields.String):
    """A phone number, stored in E.164."""

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        text = super()._deserialize(value, attr, data, **kwargs)
        return normalize_phone(text)


def display_phone(e164: str | None) -> str:
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
