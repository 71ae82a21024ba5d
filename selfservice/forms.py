"""Forms of "mijn aanmeldingen": input shape only; the rules are in the
services."""

from crispy_forms.helper import FormHelper
from django import forms
from django.utils.translation import gettext_lazy as _

from registrations.forms import SignupForm


class _SummaryMixin:
    def _helper(self):
        self.helper = FormHelper(self)
        # The template renders the <form> tag and the error summary.
        self.helper.form_tag = False
        self.helper.disable_csrf = True

    def error_summary(self) -> list[tuple[str | None, str]]:
        items: list[tuple[str | None, str]] = [(None, str(m)) for m in self.non_field_errors()]
        for name in self.fields:
            if name in self.errors:
                anchor = self[name].id_for_label or self[name].auto_id
                for message in self.errors[name]:
                    items.append((anchor, f"{self.fields[name].label}: {message}"))
        return items


class AccessRequestForm(_SummaryMixin, forms.Form):
    email = forms.EmailField(
        label=_("Uw e-mailadres"),
        max_length=254,
        help_text=_("Het e-mailadres waarmee u zich hebt aangemeld."),
        error_messages={
            "required": _("Vul uw e-mailadres in."),
            "invalid": _("Vul een geldig e-mailadres in, bijvoorbeeld naam@gemeente.nl."),
        },
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._helper()


class CaseForm(_SummaryMixin, forms.Form):
    case_title = SignupForm.base_fields["case_title"]
    case_description = SignupForm.base_fields["case_description"]
    learning_needs = SignupForm.base_fields["learning_needs"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._helper()


class HandoverForm(_SummaryMixin, forms.Form):
    contact_name = SignupForm.base_fields["contact_name"]
    contact_email = SignupForm.base_fields["contact_email"]
    contact_role = SignupForm.base_fields["contact_role"]
    contact_phone = SignupForm.base_fields["contact_phone"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._helper()
        self.fields["contact_name"].label = _("Naam van uw collega")
        self.fields["contact_email"].label = _("E-mailadres van uw collega")
        self.fields["contact_email"].help_text = _(
            "Uw collega ontvangt hierop een link en neemt de aanmelding pas over na bevestiging."
        )
        self.fields["contact_role"].label = _("Functie van uw collega (optioneel)")
        self.fields["contact_phone"].label = _("Telefoonnummer van uw collega (optioneel)")
        for name in ("contact_name", "contact_email", "contact_role", "contact_phone"):
            self.fields[name].widget.attrs["autocomplete"] = "off"
