"""Registrations in the advisors' back office (issue #2, point 8).

Registrations are written by officers through the public forms and change
status only through registrations.services and leerlab.services; here they
are read, filtered and searched, and their email can be sent again.
"""

from django.contrib import admin, messages
from django.utils.translation import gettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from leerlab.admin_utils import ReadOnlyAdminMixin, report_count
from leerlab.errors import LeerLabError
from leerlab.models import Cohort
from outbox.admin import REQUEUED
from outbox.models import OutboxMessage

from .models import Registration, RegistrationEvent
from .services import registration_resend_email


class CohortListFilter(admin.SimpleListFilter):
    """Cohorts by "lab #number" in one query (the default related filter
    would fetch each cohort's lab separately)."""

    title = _("cohort")
    parameter_name = "cohort"

    def lookups(self, request, model_admin):
        return [(str(c.pk), str(c)) for c in Cohort.objects.select_related("lab")]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(cohort_id=int(value))


class OutboxMessageInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The emails sent for this registration, to see what failed."""

    model = OutboxMessage
    fields = ("created_at", "subject", "status", "attempts", "last_error", "sent_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-created_at",)
    verbose_name_plural = _("e-mail aan deze contactpersoon")


class RegistrationEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Every change of this registration: who, what, when (issue #5)."""

    model = RegistrationEvent
    fields = ("created_at", "action", "actor", "details")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("created_at", "pk")
    verbose_name_plural = _("geschiedenis van deze aanmelding")

    def has_view_permission(self, request, obj=None):
        # Part of the registration: whoever may see it sees its history.
        return request.user.has_perm("registrations.view_registration")


@admin.register(Registration)
class RegistrationAdmin(admin.ModelAdmin):
    list_display = (
        "municipality",
        "lab",
        "cohort",
        "status",
        "contact_name",
        "contact_email",
        "case_title",
        "domain_flagged",
        "created_at",
        "confirmed_at",
    )
    list_filter = (
        "cohort__lab",
        CohortListFilter,
        "status",
        "email_domain_flagged",
        ("municipality", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("cohort__lab", "municipality")
    search_fields = ("municipality__name", "contact_name", "contact_email", "case_title")
    search_help_text = _("Zoek op gemeente, contactpersoon, e-mailadres of titel van de case.")
    date_hierarchy = "created_at"
    actions = ("resend_email",)
    inlines = (RegistrationEventInline, OutboxMessageInline)
    # token_hash is never shown: it is not in any fieldset.
    fieldsets = (
        (None, {"fields": ("cohort", "municipality", "status", "confirmed_at", "withdrawn_at")}),
        (
            _("Contactpersoon"),
            {
                "fields": (
                    "contact_name",
                    "contact_email",
                    "email_domain_flagged",
                    "contact_role",
                    "contact_phone",
                )
            },
        ),
        (_("Case"), {"fields": ("case_title", "case_description", "learning_needs")}),
        (
            _("Administratie"),
            {
                "classes": ("collapse",),
                "fields": (
                    "created_at",
                    "language",
                    "privacy_consent_at",
                    "privacy_version",
                    "token_expires_at",
                    "token_used_at",
                    "start_notified_at",
                    "anonymised_at",
                ),
            },
        ),
    )
    # What holds a rule (cohort, municipality, status, the address the
    # domain flag was computed from, the consent and link data) is never
    # edited here; only free text can be corrected by whoever may change.
    readonly_fields = (
        "cohort",
        "municipality",
        "status",
        "confirmed_at",
        "withdrawn_at",
        "contact_email",
        "email_domain_flagged",
        "created_at",
        "language",
        "privacy_consent_at",
        "privacy_version",
        "token_expires_at",
        "token_used_at",
        "start_notified_at",
        "anonymised_at",
    )

    @admin.display(description=_("Leer Lab"), ordering="cohort__lab__title")
    def lab(self, obj: Registration):
        return obj.cohort.lab

    @admin.display(description=_("Afwijkend e-maildomein"), boolean=True, ordering="email_domain_flagged")
    def domain_flagged(self, obj: Registration) -> bool:
        return obj.email_domain_flagged

    def has_add_permission(self, request):
        # Registrations come from officers through the public form.
        return False

    def has_resend_permission(self, request) -> bool:
        # Sending an email again changes nothing an advisor could edit and
        # runs the services of the automatic path, so the view permission
        # is enough (see leerlab/migrations/0003_advisors_group.py).
        return self.has_view_permission(request)

    @admin.action(description=_("E-mail opnieuw versturen"), permissions=["resend"])
    def resend_email(self, request, queryset):
        """See registrations.services.registration_resend_email."""
        new_links = requeued = nothing = 0
        for registration in queryset.order_by("pk"):
            try:
                outcome = registration_resend_email(registration_id=registration.pk)
                new_links += outcome == "new_link"
                requeued += outcome == "requeued"
                nothing += outcome == "nothing"
            except LeerLabError as exc:
                self.message_user(
                    request,
                    gettext("%(registration)s: %(message)s")
                    % {"registration": registration, "message": exc.message},
                    level=messages.WARNING,
                )
        report_count(
            self,
            request,
            new_links,
            ngettext_lazy(
                "Nieuwe bevestigingslink verstuurd voor %(count)d aanmelding.",
                "Nieuwe bevestigingslinks verstuurd voor %(count)d aanmeldingen.",
                "count",
            ),
        )
        report_count(
            self,
            request,
            requeued,
            REQUEUED,
        )
        report_count(
            self,
            request,
            nothing,
            ngettext_lazy(
                "Voor %(count)d aanmelding was er niets opnieuw te versturen.",
                "Voor %(count)d aanmeldingen was er niets opnieuw te versturen.",
                "count",
            ),
            level=messages.WARNING,
        )
