import unicodedata

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# Line breaks and tabs are text; every other control or format character
# (NUL, escape sequences, bidi overrides, zero-width tricks) is not.
_ALLOWED_IN_TEXT = {"\n", "\r", "\t"}


def _has_control_characters(value: str, allowed: set[str]) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") and ch not in allowed for ch in value)


def no_control_characters(value: str) -> None:
    """For one-line fields."""
    if _has_control_characters(value, set()):
        raise ValidationError(_("Dit veld bevat ongeldige (onzichtbare) tekens."), code="control_characters")


def no_control_characters_multiline(value: str) -> None:
    """For text areas: line breaks and tabs are allowed."""
    if _has_control_characters(value, _ALLOWED_IN_TEXT):
        raise ValidationError(_("Dit veld bevat ongeldige (onzichtbare) tekens."), code="control_characters")


def phone_number(value: str) -> None:
    """A Dutch or international phone number as people type it."""
    allowed = set("0123456789+-() ")
    digits = sum(ch.isdigit() for ch in value)
    if not value or set(value) - allowed or not 8 <= digits <= 15:
        raise ValidationError(
            _("Vul een geldig telefoonnummer in, bijvoorbeeld 020 123 4567 of +31 20 123 4567."),
            code="phone",
        )
