"""Reads for the public pages: a fixed number of queries whatever the
number of registrations (counts are annotations, not loops)."""

from dataclasses import dataclass

from django.db.models import Count, Prefetch, Q
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from registrations.models import RegistrationStatus

from .models import CURRENT_STATUSES, Cohort, CohortStatus, LeerLab


@dataclass(frozen=True)
class LabState:
    lab: LeerLab
    cohort: Cohort | None
    seats_taken: int
    waitlisted: int

    @property
    def accepts_signups(self) -> bool:
        return self.cohort is not None

    @property
    def is_full(self) -> bool:
        return self.cohort is not None and (
            self.cohort.status == CohortStatus.CLOSED or self.seats_taken >= self.lab.max_municipalities
        )

    @property
    def needed(self) -> int:
        return max(self.lab.min_municipalities - self.seats_taken, 0)

    @property
    def places_left(self) -> int:
        return max(self.lab.max_municipalities - self.seats_taken, 0)

    @property
    def status_text(self) -> str:
        """The cohort's state in words, as officers read it on the home page."""
        if self.cohort is None:
            return _("aanmelden is op dit moment niet mogelijk")
        if self.is_full:
            return _("vol, aanmelden voor de wachtlijst")
        if self.cohort.started_at is None and self.needed > 0:
            return ngettext(
                "nog %(count)d gemeente nodig om te starten",
                "nog %(count)d gemeenten nodig om te starten",
                self.needed,
            ) % {"count": self.needed}
        if self.cohort.started_at is not None:
            return ngettext(
                "gestart, nog %(count)d plaats",
                "gestart, nog %(count)d plaatsen",
                self.places_left,
            ) % {"count": self.places_left}
        return ngettext(
            "start binnenkort, nog %(count)d plaats",
            "start binnenkort, nog %(count)d plaatsen",
            self.places_left,
        ) % {"count": self.places_left}


def _current_cohorts_prefetch() -> Prefetch:
    cohorts = (
        Cohort.objects.filter(status__in=CURRENT_STATUSES)
        .annotate(
            seats_taken=Count(
                "registrations__municipality",
                filter=Q(registrations__status=RegistrationStatus.CONFIRMED),
                distinct=True,
            ),
            waitlisted=Count("registrations", filter=Q(registrations__status=RegistrationStatus.WAITLISTED)),
        )
        .order_by("number")
    )
    return Prefetch("cohorts", queryset=cohorts, to_attr="current_cohorts")


def current_cohort(cohorts: list[Cohort]) -> Cohort | None:
    """The cohort new signups go to: the newest one that still takes seats,
    else the newest closed one (its waitlist)."""
    taking_seats = [c for c in cohorts if c.status in (CohortStatus.OPEN, CohortStatus.STARTED)]
    if taking_seats:
        return taking_seats[-1]
    return cohorts[-1] if cohorts else None


def _state(lab: LeerLab) -> LabState:
    cohort = current_cohort(lab.current_cohorts)
    return LabState(
        lab=lab,
        cohort=cohort,
        seats_taken=getattr(cohort, "seats_taken", 0),
        waitlisted=getattr(cohort, "waitlisted", 0),
    )


def lab_states() -> list[LabState]:
    return [_state(lab) for lab in LeerLab.objects.prefetch_related(_current_cohorts_prefetch())]


def lab_state(*, slug: str) -> LabState:
    """The lab with this slug, or 404."""
    lab = get_object_or_404(LeerLab.objects.prefetch_related(_current_cohorts_prefetch()), slug=slug)
    return _state(lab)
