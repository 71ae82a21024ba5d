"""What the advisors see of the AVG part (issue #5): which registrations
were anonymised (when and why, not what they held) and a read-only list of
when each registration's personal data will go. Visible to whoever may view
registrations: no permissions of their own to hand out."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from leerlab.admin_utils import ReadOnlyAdminMixin

from .models import Anonymisation, RetentionSchedule
from .services import planned_removal, retention_schedule_queryset


class _ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    def has_module_permission(self, request):
        return request.user.has_perm("registrations.view_registration")

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("registrations.view_registration")


@admin.register(Anonymisation)
class AnonymisationAdmin(_ReadOnlyAdmin):
    list_display = ("created_at", "reason", "municipality", "cohort")
    list_filter = ("reason",)
    list_display_links = None
    list_select_related = ("registration__municipality", "registration__cohort__lab")
    date_hierarchy = "created_at"

    @admin.display(description=_("gemeente"), ordering="registration__municipality__name")
    def municipality(self, obj: Anonymisation):
        return obj.registration.municipality

    @admin.display(description=_("cohort"))
    def cohort(self, obj: Anonymisation):
        return obj.registration.cohort


@admin.register(RetentionSchedule)
class RetentionScheduleAdmin(_ReadOnlyAdmin):
    list_display = ("municipality", "cohort", "status", "cohort_status", "planned_at", "rule")
    list_filter = ("status", "cohort__status")
    list_display_links = None
    # The list shows no contact details: it is about when, not whom.
    fields = ()

    def get_queryset(self, request):
        return retention_schedule_queryset()

    @admin.display(description=_("status cohort"), ordering="cohort__status")
    def cohort_status(self, obj):
        return obj.cohort.get_status_display()

    @admin.display(description=_("persoonsgegevens weg op"), ordering="cohort_ended_at")
    def planned_at(self, obj):
        return planned_removal(obj).planned_at or "–"

    @admin.display(description=_("regel"))
    def rule(self, obj):
        return planned_removal(obj).rule
