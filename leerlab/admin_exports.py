"""Exports of a cohort's participants, cases and learning needs (issue #6),
in the admin: two actions on the cohort list (CSV, Excel) for the selected
cohorts, and the same downloads for one cohort from its page. What is in
the file and why: leerlab.exports.

CohortAdmin takes EXPORT_ACTIONS (which also holds the action that opens
the message page, leerlab.admin_messages) and inherits
CohortActionPermissions for the permissions these actions name."""

from functools import partial

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils.http import content_disposition_header
from django.utils.translation import gettext_lazy as _

from .admin_messages import send_cohort_message, user_may_message
from .exports import FORMATS, ParticipantsExport, cohort_participants_export
from .history import actor_for
from .models import Cohort


def user_may_export(user) -> bool:
    """Contact details and cases are registrations' data: whoever may read
    registrations (and cohorts) may take them out."""
    return user.has_perm("registrations.view_registration") and user.has_perm("leerlab.view_cohort")


class CohortActionPermissions:
    """The has_<name>_permission methods Django asks for the actions'
    `permissions` (mixed into CohortAdmin)."""

    def has_export_permission(self, request) -> bool:
        return user_may_export(request.user)

    def has_cohort_message_permission(self, request) -> bool:
        return user_may_message(request.user)


def _download(export: ParticipantsExport) -> HttpResponse:
    response = HttpResponse(export.content, content_type=export.content_type)
    response["Content-Disposition"] = content_disposition_header(True, export.filename)
    # Personal data: not kept by the browser or anything in between.
    response["Cache-Control"] = "private, no-store"
    return response


def _export_selected(request, queryset, file_format: str) -> HttpResponse:
    cohort_ids = list(queryset.order_by().values_list("pk", flat=True))
    export = cohort_participants_export(
        cohort_ids=cohort_ids, file_format=file_format, actor=actor_for(request.user)
    )
    return _download(export)


@admin.action(description=_("Deelnemers exporteren (CSV)"), permissions=["export"])
def export_participants_csv(model_admin, request, queryset):
    return _export_selected(request, queryset, "csv")


@admin.action(description=_("Deelnemers exporteren (Excel)"), permissions=["export"])
def export_participants_xlsx(model_admin, request, queryset):
    return _export_selected(request, queryset, "xlsx")


def cohort_export_view(request, cohort_id: int, file_format: str, *, model_admin):
    """One cohort's participants, from the links on the cohort page."""
    cohort = get_object_or_404(Cohort, pk=cohort_id)
    if not (user_may_export(request.user) and model_admin.has_view_permission(request, cohort)):
        raise PermissionDenied
    if file_format not in FORMATS:
        raise Http404
    export = cohort_participants_export(
        cohort_ids=[cohort.pk], file_format=file_format, actor=actor_for(request.user)
    )
    return _download(export)


def export_urls(model_admin) -> list:
    return [
        path(
            "<int:cohort_id>/deelnemers/<str:file_format>/",
            model_admin.admin_site.admin_view(partial(cohort_export_view, model_admin=model_admin)),
            name="leerlab_cohort_export",
        ),
    ]


EXPORT_ACTIONS: tuple = (export_participants_csv, export_participants_xlsx, send_cohort_message)
