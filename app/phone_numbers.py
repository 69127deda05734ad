"""UK phone numbers, validated with `phonenumbers` and stored as E.164."""

from __future__ import annotations

import phonenumbers

from app.errors import DomainError


def normalise_uk_phone(text: str, *, field: str = "phone") -> str:
    """'07700 900123' → '+447700900123'; a clear error for anything that is not a real number."""
    try:
        number = phonenumbers.parse(text, "GB")
    except phonenumbers.NumberParseException as exc:
        raise DomainError(
            "Enter a phone number, like 07911 123 456 or +44 7911 123 456.",
            fields={field: "Enter a valid phone number"},
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise DomainError(
            "Enter a real phone number, like 07911 123 456 or +44 7911 123 456.",
            fields={field: "Enter a valid phone number"},
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_mobile(e164: str) -> bool:
    number = phonenumbers.parse(e164, "GB")
    return phonenumbers.number_type(number) in {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    }
