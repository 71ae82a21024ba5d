"""The public signup form. It checks input shape only; whether a
municipality may take part is asked of the service, so the rule lives in
one place (registrations/services.py)."""

from typing import ClassVar

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Fieldset, Layout
from django import forms
from django.core.validators import ProhibitNullCharactersValidator
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from municipalities.models import Municipality
from municipalities.selectors import municipality_by_code, participating_municipalities

from . import errors
from .models import (
    CASE_DESCRIPTION_MAX,
    CASE_TITLE_MAX,
    CONTACT_NAME_MAX,
    CONTACT_PHONE_MAX,
    CONTACT_ROLE_MAX,
    LEARNING_NEEDS_MAX,
)
from .services import municipality_check_participating
from .validators import (
    no_control_characters,
    no_control_characters_multiline,
    phone_number,
)

# The RFC 5321 limit; the model's EmailField uses the same.
CONTACT_EMAIL_MAX = 254

# The contact details a second signup (for another lab) starts from.
CONTACT_FIELDS = ("municipality", "contact_name", "contact_email", "contact_role", "contact_phone")


# Django fills in the numbers from MaxLengthValidator's params.
MAX_LENGTH_MESSAGE = _("Gebruik maximaal %(limit_value)d tekens; u hebt er nu %(show_value)d.")


def _without_null_validator(field: forms.Field) -> forms.Field:
    """Our control-character validator already refuses NUL (with a clearer
    text); Django's own NUL check would only repeat the error."""
    field.validators = [v for v in field.validators if not isinstance(v, ProhibitNullCharactersValidator)]
    return field


class TelInput(forms.TextInput):
    input_type = "tel"


class ConsentCheckbox(forms.CheckboxInput):
    """Consent must be explicit: only the value a ticked checkbox sends
    counts, not any non-empty string (Django's default, where "off" or "0"
    would mean yes)."""

    def value_from_datadict(self, data, files, name):
        return data.get(name) in ("on", "true", "True")


class MunicipalityField(forms.Field):
    """A select of CBS codes whose value is looked up among ALL
    municipalities, so a known municipality that may not take part gets the
    specific reason instead of a generic "invalid choice"."""

    widget = forms.Select

    default_error_messages: ClassVar[dict] = {
        "required": _("Kies uw gemeente."),
        "unknown": errors.MunicipalityNotParticipating.message,
    }

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.widget.choices = []

    def set_choices(self, municipalities) -> None:
        self.widget.choices = [("", _("Kies uw gemeente"))] + [(m.cbs_code, m.name) for m in municipalities]

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if not isinstance(value, str):
            raise forms.ValidationError(self.error_messages["unknown"], code="unknown")
        code = value.strip().upper()
        # A CBS code is "GM" and four digits; anything else is not worth a query.
        if len(code) != 6 or not code.startswith("GM") or not code[2:].isdigit():
            raise forms.ValidationError(self.error_messages["unknown"], code="unknown")
        municipality = municipality_by_code(cbs_code=code)
        if municipality is None:
            raise forms.ValidationError(self.error_messages["unknown"], code="unknown")
        return municipality

    def validate(self, value):
        super().validate(value)
        if value is None:
            return
        try:
            municipality_check_participating(municipality=value)
        except errors.RegistrationError as exc:
            raise forms.ValidationError(exc.message, code=type(exc).__name__) from exc

    def prepare_value(self, value):
        if isinstance(value, Municipality):
            return value.cbs_code
        return value


def _privacy_label():
    return format_html(
        _("Ik geef toestemming om mijn gegevens te verwerken zoals beschreven in de {link}."),
        link=format_html(
            '<a href="{}" target="_blank" rel="noopener">{}<span class="visually-hidden"> {}</span></a>',
            reverse("privacy"),
            _("privacyverklaring"),
            _("(opent in een nieuw venster)"),
        ),
    )


def _text(
    max_length: int, *, required: bool = True, required_message=None, multiline: bool = False, **kwargs
):
    messages = {"max_length": MAX_LENGTH_MESSAGE}
    if required_message:
        messages["required"] = required_message
    return _without_null_validator(
        forms.CharField(
            max_length=max_length,
            required=required,
            error_messages=messages,
            validators=[no_control_characters_multiline if multiline else no_control_characters],
            **kwargs,
        )
    )


class SignupForm(forms.Form):
    # Short names for the error summary where the label is long or has a link.
    summary_labels: ClassVar[dict] = {"privacy_consent": _("Toestemming")}

    municipality = MunicipalityField(
        label=_("Gemeente"),
        help_text=_("De gemeente die u aanmeldt. Alleen gemeenten in Noord-Holland kunnen meedoen."),
    )
    contact_name = _text(
        CONTACT_NAME_MAX,
        label=_("Uw naam"),
        required_message=_("Vul uw naam in."),
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    contact_email = _without_null_validator(
        forms.EmailField(
            label=_("Uw e-mailadres"),
            max_length=CONTACT_EMAIL_MAX,
            help_text=_(
                "Bij voorkeur uw e-mailadres bij de gemeente. U ontvangt hierop een bevestigingslink."
            ),
            error_messages={
                "required": _("Vul uw e-mailadres in."),
                "invalid": _("Vul een geldig e-mailadres in, bijvoorbeeld naam@gemeente.nl."),
                "max_length": MAX_LENGTH_MESSAGE,
            },
            validators=[no_control_characters],
            widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        )
    )
    contact_role = _text(
        CONTACT_ROLE_MAX,
        required=False,
        label=_("Uw functie (optioneel)"),
        widget=forms.TextInput(attrs={"autocomplete": "organization-title"}),
    )
    contact_phone = _without_null_validator(
        forms.CharField(
            label=_("Uw telefoonnummer (optioneel)"),
            required=False,
            max_length=CONTACT_PHONE_MAX,
            error_messages={"max_length": MAX_LENGTH_MESSAGE},
            validators=[phone_number],
            widget=TelInput(attrs={"autocomplete": "tel"}),
        )
    )
    case_title = _text(
        CASE_TITLE_MAX,
        label=_("Titel van uw case"),
        required_message=_("Geef uw case een titel."),
        help_text=_("Het eigen project van uw gemeente waaraan u in het Leer Lab werkt."),
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    case_description = _text(
        CASE_DESCRIPTION_MAX,
        multiline=True,
        label=_("Beschrijving van uw case"),
        required_message=_("Beschrijf uw case."),
        help_text=_("Waar staat u nu, wat wilt u bereiken en waar loopt u tegenaan?"),
        widget=forms.Textarea(attrs={"rows": 6}),
    )
    learning_needs = _text(
        LEARNING_NEEDS_MAX,
        multiline=True,
        required=False,
        label=_("Uw leervragen (optioneel)"),
        help_text=_(
            "Wat wilt u leren van en met de andere gemeenten? Dit helpt de adviseurs het programma te vormen."
        ),
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    privacy_consent = forms.BooleanField(
        # The label links to the privacy page; set per request in __init__.
        label=_("Toestemming"),
        widget=ConsentCheckbox,
        error_messages={"required": errors.ConsentMissing.message},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["municipality"].set_choices(participating_municipalities())
        self.fields["privacy_consent"].label = _privacy_label()
        self.helper = FormHelper(self)
        # The template renders the <form> tag and the error summary itself.
        self.helper.form_tag = False
        self.helper.disable_csrf = True
        self.helper.form_show_errors = True
        self.helper.layout = Layout(
            Fieldset(
                _("Uw gemeente en uw gegevens"),
                "municipality",
                "contact_name",
                "contact_email",
                "contact_role",
                "contact_phone",
            ),
            Fieldset(
                _("Uw case"),
                "case_title",
                "case_description",
                "learning_needs",
            ),
            Fieldset(
                _("Toestemming"),
                "privacy_consent",
            ),
        )

    def error_summary(self) -> list[tuple[str | None, str]]:
        """(anchor id or None, message) for every error, in field order, for
        the summary at the top of the form."""
        items: list[tuple[str | None, str]] = [(None, str(message)) for message in self.non_field_errors()]
        for name in self.fields:
            if name in self.errors:
                anchor = self[name].id_for_label or self[name].auto_id
                label = self.summary_labels.get(name, self.fields[name].label)
                for message in self.errors[name]:
                    items.append((anchor, f"{label}: {message}"))
        return items

    def submit_kwargs(self) -> dict:
        """The cleaned data as keyword arguments of registration_submit."""
        data = self.cleaned_data
        return {
            "municipality": data["municipality"],
            "contact_name": data["contact_name"],
            "contact_email": data["contact_email"],
            "contact_role": data.get("contact_role", ""),
            "contact_phone": data.get("contact_phone", ""),
            "case_title": data["case_title"],
            "case_description": data["case_description"],
            "learning_needs": data.get("learning_needs", ""),
            "privacy_consent": data["privacy_consent"],
        }

    def contact_details(self) -> dict:
        """What the session keeps to pre-fill a signup for another lab."""
        data = self.cleaned_data
        return {
            "municipality": data["municipality"].cbs_code,
            "contact_name": data["contact_name"],
            "contact_email": data["contact_email"],
            "contact_role": data.get("contact_role", ""),
            "contact_phone": data.get("contact_phone", ""),
        }
