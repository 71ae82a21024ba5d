"""Municipalities and their email domains in the advisors' back office
(issue #2, point 8).

The municipalities themselves are reference data loaded from CBS
(`load_municipalities`, data migration); editing them here would be undone
by the next load, so they are read-only. Advisors keep the email domains up
to date: a registration from an address at none of them is flagged.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.core.validators import DomainNameValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .models import EmailDomain, Municipality

_domain_validator = DomainNameValidator(message=_("Vul een geldig domein in, bijvoorbeeld amsterdam.nl."))


class EmailDomainForm(forms.ModelForm):
    class Meta:
        model = EmailDomain
        fields = ("domain",)

    def clean_domain(self) -> str:
        # The same normalisation as EmailDomain.clean(), before validating,
        # so "@Gemeente.NL " is accepted as "gemeente.nl".
        domain = (self.cleaned_data.get("domain") or "").strip().lower().lstrip("@")
        try:
            _domain_validator(domain)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from exc
        return domain


class EmailDomainInline(admin.TabularInline):
    model = EmailDomain
    form = EmailDomainForm
    extra = 1
    verbose_name = _("e-maildomein")
    verbose_name_plural = _("e-maildomeinen (een adres op een ander domein wordt gemarkeerd, niet geweigerd)")


@admin.register(Municipality)
class MunicipalityAdmin(admin.ModelAdmin):
    list_display = ("cbs_code", "name", "province", "is_active", "merged_into")
    list_display_links = ("cbs_code", "name")
    list_filter = ("province", "is_active")
    list_select_related = ("merged_into",)
    search_fields = ("name", "cbs_code")
    inlines = (EmailDomainInline,)
    fields = ("cbs_code", "name", "province", "is_active", "merged_into", "merged_on", "website")
    readonly_fields = ("cbs_code", "name", "province", "is_active", "merged_into", "merged_on")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Registrations from a domain that advisors just added (or removed)
        # are flagged anew.
        from registrations.services import registrations_reflag_email_domains

        registrations_reflag_email_domains(municipality_id=form.instance.pk)
