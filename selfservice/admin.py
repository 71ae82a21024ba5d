"""Handovers in the back office, read only: they change registrations only
through the colleague's confirmation (registrations.services). Access links
are not shown: they hold nothing an advisor needs."""

from django.contrib import admin

from leerlab.admin_utils import ReadOnlyAdminMixin

from .models import HandoverRequest


@admin.register(HandoverRequest)
class HandoverRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("registration", "contact_name", "created_at", "expires_at", "confirmed_at")
    list_select_related = ("registration__cohort__lab", "registration__municipality")
    fields = (
        "registration",
        "contact_name",
        "contact_email",
        "contact_role",
        "contact_phone",
        "created_at",
        "expires_at",
        "confirmed_at",
    )
    readonly_fields = fields
