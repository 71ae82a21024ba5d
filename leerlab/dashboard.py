"""The advisors' dashboard and a cohort's learning needs side by side
(issue #6), as pages of the admin site (LeerLabAdminSite.get_urls wraps
them in admin_view: staff only, two-factor login when it is on).

Selectors first, then the views. Every page costs a fixed number of
queries whatever the number of labs, cohorts and registrations. Reading
is not a change: nothing here writes history.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, Q
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from registrations.models import Registration, RegistrationStatus

from .map import municipality_participation, participation_map
from .models import CURRENT_STATUSES, Cohort, CohortStatus, LeerLab

# Completed and cancelled cohorts stay on the dashboard this long after
# they ended, so advisors see how a run finished (and its waitlist, which
# may have moved to a next cohort) before it drops off.
RECENTLY_ENDED_DAYS = 90
ENDED_STATUSES = (CohortStatus.COMPLETED, CohortStatus.CANCELLED)
LIVE_REGISTRATION_STATUSES = (
    RegistrationStatus.PENDING,
    RegistrationStatus.CONFIRMED,
    RegistrationStatus.WAITLISTED,
)


# --- Selectors --------------------------------------------------------------------


@dataclass(frozen=True)
class CohortOverview:
    """One cohort as the dashboard shows it. `cohort` carries the
    annotations and prefetches of dashboard_labs()."""

    cohort: Cohort
    lab: LeerLab

    @property
    def confirmed(self) -> int:
        return self.cohort.confirmed_count

    @property
    def waitlisted(self) -> int:
        return self.cohort.waitlisted_count

    @property
    def pending(self) -> int:
        return self.cohort.pending_count

    @property
    def waitlist(self) -> list[Registration]:
        return self.cohort.waitlist

    @property
    def advisors(self) -> list[str]:
        names = (user.get_full_name() or user.get_username() for user in self.cohort.advisors.all())
        return sorted(names, key=str.casefold)

    @property
    def is_ended(self) -> bool:
        return self.cohort.status in ENDED_STATUSES

    @property
    def needed(self) -> int:
        """Municipalities still needed to start (0 once it started)."""
        if self.cohort.started_at is not None or self.cohort.status != CohortStatus.OPEN:
            return 0
        return max(self.lab.min_municipalities - self.confirmed, 0)

    @property
    def places_left(self) -> int:
        return max(self.lab.max_municipalities - self.confirmed, 0)

    @property
    def capacity_text(self) -> str:
        """ "nog 2 gemeenten nodig om te starten", "nog 1 plaats", "vol"."""
        if self.is_ended:
            return ""
        if self.places_left == 0:
            return gettext("vol")
        if self.cohort.status == CohortStatus.CLOSED:
            return ngettext(
                "aanmelding gesloten, %(count)d plaats onbezet",
                "aanmelding gesloten, %(count)d plaatsen onbezet",
                self.places_left,
            ) % {"count": self.places_left}
        if self.needed:
            return ngettext(
                "nog %(count)d gemeente nodig om te starten",
                "nog %(count)d gemeenten nodig om te starten",
                self.needed,
            ) % {"count": self.needed}
        return ngettext("nog %(count)d plaats", "nog %(count)d plaatsen", self.places_left) % {
            "count": self.places_left
        }

    @property
    def go_no_go_days(self) -> int | None:
        """Days until the go/no-go date while the cohort still needs
        municipalities to start; None when that does not apply."""
        if self.cohort.go_no_go_date is None or not self.needed:
            return None
        return (self.cohort.go_no_go_date - timezone.localdate()).days

    @property
    def go_no_go_text(self) -> str:
        days = self.go_no_go_days
        if days is None:
            return ""
        if days < 0:
            return gettext("datum verstreken")
        if days == 0:
            return gettext("vandaag")
        return ngettext("over %(count)d dag", "over %(count)d dagen", days) % {"count": days}


@dataclass(frozen=True)
class LabOverview:
    lab: LeerLab
    cohorts: list[CohortOverview]


def _recently_ended() -> Q:
    # Cohorts ended before issue #6 have no ended_at: the latest moment
    # known stands in for it.
    cutoff = timezone.now() - timedelta(days=RECENTLY_ENDED_DAYS)
    return Q(status__in=ENDED_STATUSES, ended_or_last_change__gte=cutoff)


def dashboard_cohorts():
    """Cohorts on the dashboard: all that are not ended, plus those that
    ended in the last RECENTLY_ENDED_DAYS days, with their counts, advisors
    and waitlist (in the order it moves up: confirmation time, then id, as
    registrations.services.waitlist_position)."""
    status = "registrations__status"
    waitlist = (
        Registration.objects.filter(status=RegistrationStatus.WAITLISTED)
        .select_related("municipality")
        .order_by("confirmed_at", "pk")
    )
    return (
        Cohort.objects.annotate(
            ended_or_last_change=Coalesce("ended_at", "closed_at", "started_at", "created_at"),
        )
        .filter(Q(status__in=CURRENT_STATUSES) | _recently_ended())
        .annotate(
            confirmed_count=Count(
                "registrations__municipality",
                filter=Q(**{status: RegistrationStatus.CONFIRMED}),
                distinct=True,
            ),
            waitlisted_count=Count(
                "registrations", filter=Q(**{status: RegistrationStatus.WAITLISTED}), distinct=True
            ),
            # Expired signups are still "pending" in the database but can no
            # longer be confirmed: they do not count (as in the changelist).
            pending_count=Count(
                "registrations",
                filter=Q(
                    **{status: RegistrationStatus.PENDING},
                    registrations__token_expires_at__gt=timezone.now(),
                ),
                distinct=True,
            ),
        )
        .prefetch_related(
            "advisors",
            Prefetch("registrations", queryset=waitlist, to_attr="waitlist"),
        )
        .order_by("number")
    )


def dashboard_labs() -> list[LabOverview]:
    """Every lab in its order, each with its dashboard cohorts. Four
    queries: labs, cohorts with counts, their advisors, their waitlists."""
    labs = LeerLab.objects.order_by("position", "title").prefetch_related(
        Prefetch("cohorts", queryset=dashboard_cohorts(), to_attr="dashboard_cohorts")
    )
    return [
        LabOverview(lab=lab, cohorts=[CohortOverview(cohort=c, lab=lab) for c in lab.dashboard_cohorts])
        for lab in labs
    ]


@dataclass(frozen=True)
class FlaggedRegistration:
    registration: Registration

    @property
    def email_domain(self) -> str:
        """Only the part after the @: enough to judge, no more personal
        data on an overview than needed."""
        return self.registration.contact_email.rpartition("@")[2].lower()


def flagged_registrations() -> list[FlaggedRegistration]:
    """Registrations whose contact address is at none of the
    municipality's known domains, while they still matter: pending (link
    still valid), confirmed or waitlisted, in a cohort that is not ended.
    Anonymised ones are left out (their address is a placeholder)."""
    now = timezone.now()
    queryset = (
        Registration.objects.filter(
            email_domain_flagged=True,
            anonymised_at__isnull=True,
            status__in=LIVE_REGISTRATION_STATUSES,
            cohort__status__in=CURRENT_STATUSES,
        )
        .exclude(status=RegistrationStatus.PENDING, token_expires_at__lte=now)
        .select_related("municipality", "cohort__lab")
        .order_by("cohort__lab__position", "cohort__number", "municipality__name", "pk")
    )
    return [FlaggedRegistration(registration) for registration in queryset]


def learning_needs(*, cohort: Cohort) -> tuple[list[Registration], list[Registration]]:
    """The cohort's participants (by municipality name) and its waitlist
    (in waitlist order), with their cases and learning needs. One query."""
    registrations = list(
        cohort.registrations.filter(status__in=(RegistrationStatus.CONFIRMED, RegistrationStatus.WAITLISTED))
        .select_related("municipality")
        .order_by("confirmed_at", "pk")
    )
    confirmed = sorted(
        (r for r in registrations if r.status == RegistrationStatus.CONFIRMED),
        key=lambda r: (r.municipality.name.casefold(), r.pk),
    )
    waitlisted = [r for r in registrations if r.status == RegistrationStatus.WAITLISTED]
    return confirmed, waitlisted


# --- Views ------------------------------------------------------------------------


def _require(request, *permissions: str) -> None:
    if not request.user.has_perms(permissions):
        raise PermissionDenied


def dashboard_view(request, *, site):
    _require(request, "leerlab.view_cohort")
    show_flagged = request.user.has_perm("registrations.view_registration")
    labs = dashboard_labs()
    request.current_app = site.name
    context = {
        **site.each_context(request),
        "title": _("Dashboard Leer Labs"),
        "labs": labs,
        "recently_ended_days": RECENTLY_ENDED_DAYS,
        "show_flagged": show_flagged,
        "flagged": flagged_registrations() if show_flagged else [],
        "map": participation_map(municipality_participation(labs=[overview.lab for overview in labs])),
    }
    return TemplateResponse(request, "admin/leerlab/dashboard.html", context)


def learning_needs_view(request, cohort_id: int, *, site):
    # Contact names and cases are registration data: both permissions.
    _require(request, "leerlab.view_cohort", "registrations.view_registration")
    cohort = get_object_or_404(Cohort.objects.select_related("lab"), pk=cohort_id)
    confirmed, waitlisted = learning_needs(cohort=cohort)
    request.current_app = site.name
    context = {
        **site.each_context(request),
        "title": gettext("Leervragen van %(cohort)s") % {"cohort": cohort},
        "cohort": cohort,
        "confirmed": confirmed,
        "waitlisted": waitlisted,
    }
    return TemplateResponse(request, "admin/leerlab/learning_needs.html", context)
