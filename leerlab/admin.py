"""The advisors' back office for labs and cohorts (issue #2, point 8).

Statuses change only through leerlab.services: the admin actions below call
the same service functions the automatic path (Celery task, sweep) calls,
and the status fields are read-only in the forms.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from registrations.models import Registration, RegistrationStatus

from . import services
from .admin_exports import EXPORT_ACTIONS, CohortActionPermissions
from .admin_messages import message_urls
from .admin_sessions import CohortSessionInline, save_session_formset
from .admin_utils import ReadOnlyAdminMixin, report_count
from .errors import LeerLabError
from .history import actor_for, cohort_event_record
from .models import (
    CURRENT_STATUSES,
    Cohort,
    CohortEvent,
    CohortEventAction,
    CohortSession,
    CohortStatus,
    LeerLab,
)
from .tasking import enqueue_on_commit

admin.site.site_header = _("Leer Labs – beheer Servicepunt")
admin.site.site_title = _("Leer Labs – beheer Servicepunt")
admin.site.index_title = _("Beheer")


def _evaluate_after_commit(cohort_ids) -> None:
    """Let the lifecycle task look at these cohorts once the admin's change
    is committed (new advisors get the start email, a lowered minimum starts
    a cohort). The sweep does the same later if the broker is down."""
    from .tasks import evaluate_cohort

    for cohort_id in cohort_ids:
        enqueue_on_commit(evaluate_cohort, cohort_id)


@admin.register(LeerLab)
class LeerLabAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "slug",
        "min_municipalities",
        "max_municipalities",
        "auto_next_cohort",
        "position",
    )
    list_display_links = ("title",)
    list_editable = ("position",)
    search_fields = ("title",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "title",
                    "slug",
                    "summary",
                    "description",
                    "duration",
                    ("min_municipalities", "max_municipalities"),
                    "auto_next_cohort",
                    "position",
                )
            },
        ),
        (
            # Shown under /en/ and in email to officers who signed up in
            # English; an empty field falls back to the Dutch text (issue #4).
            _("Engelse teksten"),
            {
                "description": _(
                    "Voor de Engelse versie van het portaal (onder /en/) en de e-mail aan wie zich in het "
                    "Engels aanmeldde. Laat u een veld leeg, dan verschijnt de Nederlandse tekst."
                ),
                "fields": ("title_en", "summary_en", "description_en", "duration_en"),
            },
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        # Slugs are part of the public URLs (DESIGN.md): fixed once created.
        if obj is not None:
            return ("slug",)
        return ()

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and {"min_municipalities", "max_municipalities"} & set(form.changed_data):
            _evaluate_after_commit(
                obj.cohorts.filter(status__in=CURRENT_STATUSES).values_list("pk", flat=True)
            )


class RegistrationInline(admin.TabularInline):
    """The cohort's registrations, to read. Registrations come from
    officers and change status only through the services."""

    model = Registration
    fields = (
        "municipality",
        "status",
        "contact_name",
        "case_title",
        "email_domain_flagged",
        "confirmed_at",
    )
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ("status", "municipality__name")

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        # The tabular inline prints str(registration): municipality and cohort.
        return super().get_queryset(request).select_related("municipality", "cohort__lab")


class CohortForm(forms.ModelForm):
    """Dates an advisor sets: a go/no-go day in the past would cancel the
    cohort at the next sweep, so a new or changed one must be today or later."""

    class Meta:
        model = Cohort
        fields = ("lab", "start_date", "go_no_go_date", "advisors")

    def clean(self):
        cleaned = super().clean()
        go_no_go = cleaned.get("go_no_go_date")
        start = cleaned.get("start_date")
        if go_no_go and "go_no_go_date" in self.changed_data and go_no_go < timezone.localdate():
            self.add_error("go_no_go_date", gettext("Kies een go/no-go-datum van vandaag of later."))
        if go_no_go and start and go_no_go > start:
            self.add_error(
                "go_no_go_date", gettext("De go/no-go-datum moet op of vóór de startdatum liggen.")
            )
        return cleaned


class CohortEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Every change of this cohort: who, what, when (issue #6)."""

    model = CohortEvent
    fields = ("created_at", "action", "actor", "what_changed")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("created_at", "pk")
    verbose_name_plural = _("geschiedenis van dit cohort")

    @admin.display(description=_("details"))
    def what_changed(self, event: CohortEvent) -> str:
        """The details in words: field names as the form labels them."""
        details = dict(event.details or {})
        parts = []
        fields = details.pop("fields", None)
        if fields:
            labels = []
            # Session events name the session's fields, the others the cohort's.
            model = CohortSession if "session" in details else Cohort
            for name in fields:
                try:
                    labels.append(str(model._meta.get_field(name).verbose_name))
                except FieldDoesNotExist:  # a field that no longer exists
                    labels.append(name)
            parts.append(gettext("gewijzigd: %(fields)s") % {"fields": ", ".join(labels)})
        labels = {
            "seats": _("plaatsen bezet"),
            "waitlisted": _("op de wachtlijst"),
            "reason": _("reden"),
            "moved": _("doorgeschoven"),
            "recipients": _("ontvangers"),
            "rows": _("regels"),
            "format": _("formaat"),
            "added": _("toegevoegd (id)"),
            "removed": _("verwijderd (id)"),
            "by_hand": _("met de hand"),
            "next_cohort": _("volgend cohort (id)"),
            "previous_cohort": _("vorig cohort (id)"),
            "session": _("bijeenkomst (id)"),
            "message": _("bericht (id)"),
            "emails": _("e-mails"),
            "advisor_copies": _("kopieën aan adviseurs"),
            "include_waitlist": _("ook aan de wachtlijst"),
        }
        reasons = {"go_no_go": _("go/no-go-datum verstreken"), "advisor": _("door een adviseur")}
        for key, value in details.items():
            if key == "reason":
                value = reasons.get(value, value)
            elif isinstance(value, bool):
                value = gettext("ja") if value else gettext("nee")
            elif isinstance(value, list):
                value = ", ".join(str(v) for v in value) or "–"
            parts.append(f"{labels.get(key, key)}: {value}")
        return "; ".join(parts) or "–"

    def has_view_permission(self, request, obj=None):
        # Part of the cohort: whoever may see it sees its history.
        return request.user.has_perm("leerlab.view_cohort")


@admin.register(Cohort)
class CohortAdmin(CohortActionPermissions, admin.ModelAdmin):
    form = CohortForm
    list_display = (
        "lab",
        "number",
        "status",
        "start_date",
        "go_no_go_date",
        "confirmed_count",
        "waitlisted_count",
        "pending_count",
        "started_at",
        "closed_at",
    )
    list_display_links = ("lab", "number")
    list_filter = ("lab", "status")
    list_select_related = ("lab",)
    search_fields = (
        "lab__title",
        "registrations__municipality__name",
        "registrations__contact_name",
        "registrations__contact_email",
    )
    filter_horizontal = ("advisors",)
    inlines = (RegistrationInline, CohortSessionInline, CohortEventInline)
    actions = ("start_now", "close_registration", "reopen", "complete", "cancel", *EXPORT_ACTIONS)
    fieldsets = (
        (None, {"fields": ("lab", "number", "status", "start_date", "go_no_go_date", "advisors")}),
        (
            _("Verloop"),
            {
                "fields": (
                    "started_at",
                    "closed_at",
                    "ended_at",
                    "created_at",
                    "previous_cohort",
                    "following_cohort",
                )
            },
        ),
    )

    def get_urls(self):
        # The message to a whole cohort (admin_messages) before the default
        # "<id>/..." patterns, which would swallow it.
        return message_urls(self) + super().get_urls()

    @admin.display(description=_("volgend cohort"))
    def following_cohort(self, obj: Cohort):
        following = getattr(obj, "next_cohort", None) if obj.pk else None
        if following is None:
            return "–"
        url = reverse("admin:leerlab_cohort_change", args=[following.pk])
        return format_html('<a href="{}">{}</a>', url, following)

    # --- Lists ------------------------------------------------------------

    def get_queryset(self, request):
        # Counts are annotations: the changelist costs a fixed number of
        # queries whatever the number of registrations.
        status = "registrations__status"
        return (
            super()
            .get_queryset(request)
            .annotate(
                confirmed_count=Count(
                    "registrations__municipality",
                    filter=Q(**{status: RegistrationStatus.CONFIRMED}),
                    distinct=True,
                ),
                waitlisted_count=Count("registrations", filter=Q(**{status: RegistrationStatus.WAITLISTED})),
                # Expired signups are still "pending" in the database but
                # can no longer be confirmed: they do not count here.
                pending_count=Count(
                    "registrations",
                    filter=Q(
                        **{status: RegistrationStatus.PENDING},
                        registrations__token_expires_at__gt=timezone.now(),
                    ),
                ),
            )
        )

    def _registrations_link(self, cohort: Cohort, status: str, count: int):
        url = reverse("admin:registrations_registration_changelist")
        query = urlencode({"cohort__id__exact": cohort.pk, "status__exact": status})
        return format_html('<a href="{}?{}">{}</a>', url, query, count)

    @admin.display(description=_("bevestigd"), ordering="confirmed_count")
    def confirmed_count(self, obj: Cohort):
        return self._registrations_link(obj, RegistrationStatus.CONFIRMED, obj.confirmed_count)

    @admin.display(description=_("wachtlijst"), ordering="waitlisted_count")
    def waitlisted_count(self, obj: Cohort):
        return self._registrations_link(obj, RegistrationStatus.WAITLISTED, obj.waitlisted_count)

    @admin.display(description=_("wacht op bevestiging"), ordering="pending_count")
    def pending_count(self, obj: Cohort):
        return self._registrations_link(obj, RegistrationStatus.PENDING, obj.pending_count)

    # --- Forms ------------------------------------------------------------

    def get_readonly_fields(self, request, obj=None):
        # Transitions only through the actions; lab and number are fixed
        # once the cohort exists (its registrations belong to them).
        readonly = [
            "number",
            "status",
            "started_at",
            "closed_at",
            "ended_at",
            "created_at",
            "previous_cohort",
            "following_cohort",
        ]
        if obj is not None:
            readonly.insert(0, "lab")
        return readonly

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "advisors":
            kwargs["queryset"] = (
                get_user_model()
                .objects.filter(is_staff=True, is_active=True)
                .order_by("first_name", "last_name", "username")
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        actor = actor_for(request.user)
        if not change:
            # Numbering and the initial state are the service's business.
            created = services.cohort_create(
                lab_id=obj.lab_id, start_date=obj.start_date, go_no_go_date=obj.go_no_go_date, actor=actor
            )
            obj.pk, obj.number, obj.status, obj.created_at = (
                created.pk,
                created.number,
                created.status,
                created.created_at,
            )
            taking_seats = (CohortStatus.OPEN, CohortStatus.STARTED)
            if Cohort.objects.filter(lab_id=obj.lab_id, status__in=taking_seats).exclude(pk=obj.pk).exists():
                self.message_user(
                    request,
                    gettext(
                        "Let op: dit Leer Lab had al een cohort dat aanmeldingen aanneemt. "
                        "Nieuwe aanmeldingen gaan vanaf nu naar cohort %(number)d."
                    )
                    % {"number": obj.number},
                    level=messages.WARNING,
                )
            return
        super().save_model(request, obj, form, change)
        changed = [name for name in form.changed_data if name != "advisors"]
        if changed:
            cohort_event_record(
                cohort=obj, action=CohortEventAction.CHANGED, actor=actor, details={"fields": sorted(changed)}
            )
            if "go_no_go_date" in changed:
                # A go/no-go day that has passed is acted on by the lifecycle.
                _evaluate_after_commit([obj.pk])

    def save_related(self, request, form, formsets, change):
        before = set(form.instance.advisors.values_list("pk", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        if change and "advisors" in form.changed_data:
            after = set(form.instance.advisors.values_list("pk", flat=True))
            cohort_event_record(
                cohort=form.instance,
                action=CohortEventAction.CHANGED,
                actor=actor_for(request.user),
                details={
                    "fields": ["advisors"],
                    "added": sorted(after - before),
                    "removed": sorted(before - after),
                },
            )
            if form.instance.started_at is not None:
                # Advisors added to a started cohort get the start email too.
                _evaluate_after_commit([form.instance.pk])

    def save_formset(self, request, form, formset, change):
        if formset.model is CohortSession:
            save_session_formset(self, request, form, formset, change)
        else:
            super().save_formset(request, form, formset, change)

    # --- Actions: the same services as the automatic path ------------------

    def _run_transition(self, request, queryset, service) -> int:
        """Call the service for each selected cohort; a refused transition
        is shown as a warning with the service's own text."""
        done = 0
        for cohort in queryset.select_related("lab").order_by("pk"):
            try:
                service(cohort_id=cohort.pk, actor=actor_for(request.user))
            except LeerLabError as exc:
                self.message_user(
                    request,
                    gettext("%(cohort)s: %(message)s") % {"cohort": cohort, "message": exc.message},
                    level=messages.WARNING,
                )
            else:
                done += 1
        return done

    def _transition_action(self, request, queryset, service, success) -> None:
        """Run one transition on the selected cohorts and say how many it
        changed (`success`: a plural message with %(count)d)."""
        report_count(self, request, self._run_transition(request, queryset, service), success)

    @admin.action(description=_("Nu starten"), permissions=["change"])
    def start_now(self, request, queryset):
        self._transition_action(
            request,
            queryset,
            services.cohort_start_now,
            ngettext_lazy(
                "%(count)d cohort gestart; de startberichten worden verstuurd.",
                "%(count)d cohorten gestart; de startberichten worden verstuurd.",
                "count",
            ),
        )

    @admin.action(description=_("Aanmelding sluiten"), permissions=["change"])
    def close_registration(self, request, queryset):
        self._transition_action(
            request,
            queryset,
            services.cohort_close_registration,
            ngettext_lazy(
                "Aanmelding gesloten voor %(count)d cohort.",
                "Aanmelding gesloten voor %(count)d cohorten.",
                "count",
            ),
        )

    @admin.action(description=_("Heropenen"), permissions=["change"])
    def reopen(self, request, queryset):
        self._transition_action(
            request,
            queryset,
            services.cohort_reopen,
            ngettext_lazy(
                "%(count)d cohort heropend voor aanmelding.",
                "%(count)d cohorten heropend voor aanmelding.",
                "count",
            ),
        )

    @admin.action(description=_("Afronden (Leer Lab is klaar)"), permissions=["change"])
    def complete(self, request, queryset):
        self._transition_action(
            request,
            queryset,
            services.cohort_complete,
            ngettext_lazy(
                "%(count)d cohort afgerond. De bewaartermijn van de persoonsgegevens loopt vanaf nu.",
                "%(count)d cohorten afgerond. De bewaartermijn van de persoonsgegevens loopt vanaf nu.",
                "count",
            ),
        )

    @admin.action(description=_("Annuleren (gaat niet door)"), permissions=["change"])
    def cancel(self, request, queryset):
        self._transition_action(
            request,
            queryset,
            services.cohort_cancel,
            ngettext_lazy(
                "%(count)d cohort geannuleerd; de aangemelde gemeenten en de adviseurs krijgen bericht.",
                "%(count)d cohorten geannuleerd; de aangemelde gemeenten en de adviseurs krijgen bericht.",
                "count",
            ),
        )
