"""Reads for "mijn aanmeldingen": a fixed number of queries per page."""

from dataclasses import dataclass

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from leerlab.models import CohortStatus
from registrations.models import Registration, RegistrationStatus

VISIBLE_STATUSES = (
    RegistrationStatus.PENDING,
    RegistrationStatus.CONFIRMED,
    RegistrationStatus.WAITLISTED,
    RegistrationStatus.WITHDRAWN,
)


def registrations_for_email(*, email: str) -> QuerySet[Registration]:
    """The registrations whose contact is this address (not erased ones)."""
    return Registration.objects.filter(
        contact_email__iexact=email.strip(), anonymised_at__isnull=True, status__in=VISIBLE_STATUSES
    )


def _seats_subquery():
    return (
        Registration.objects.filter(cohort=OuterRef("cohort"), status=RegistrationStatus.CONFIRMED)
        .order_by()
        .values("cohort")
        .annotate(n=Count("municipality", distinct=True))
        .values("n")
    )


def _ahead_subquery():
    return (
        Registration.objects.filter(cohort=OuterRef("cohort"), status=RegistrationStatus.WAITLISTED)
        .filter(
            Q(confirmed_at__lt=OuterRef("confirmed_at"))
            | Q(confirmed_at=OuterRef("confirmed_at"), pk__lt=OuterRef("pk"))
        )
        .order_by()
        .values("cohort")
        .annotate(n=Count("pk"))
        .values("n")
    )


@dataclass(frozen=True)
class RegistrationView:
    registration: Registration
    seats: int
    waitlist_position: int | None

    @property
    def changeable(self) -> bool:
        return self.registration.status != RegistrationStatus.WITHDRAWN

    @property
    def cohort_text(self) -> str:
        cohort = self.registration.cohort
        lab = cohort.lab
        if cohort.status in (CohortStatus.COMPLETED, CohortStatus.CANCELLED):
            return cohort.get_status_display()
        if cohort.started_at is None:
            needed = max(lab.min_municipalities - self.seats, 0)
            if needed:
                return _("%(seats)d van de %(min)d gemeenten; nog %(needed)d nodig om te starten") % {
                    "seats": self.seats,
                    "min": lab.min_municipalities,
                    "needed": needed,
                }
            return _("%(seats)d van de %(min)d gemeenten; start binnenkort") % {
                "seats": self.seats,
                "min": lab.min_municipalities,
            }
        return _("gestart met %(seats)d van de %(max)d plaatsen") % {
            "seats": self.seats,
            "max": lab.max_municipalities,
        }

    @property
    def place_text(self) -> str:
        status = self.registration.status
        if status == RegistrationStatus.CONFIRMED:
            return _("u heeft een plaats")
        if status == RegistrationStatus.WAITLISTED:
            return _("u staat op plaats %(position)d van de wachtlijst") % {
                "position": self.waitlist_position
            }
        if status == RegistrationStatus.PENDING:
            return _("nog niet bevestigd: gebruik de bevestigingslink uit de e-mail")
        return _("afgemeld")


def registration_views_for_email(*, email: str) -> list[RegistrationView]:
    registrations = (
        registrations_for_email(email=email)
        .select_related("cohort__lab", "municipality")
        .annotate(
            cohort_seats=Coalesce(Subquery(_seats_subquery(), output_field=IntegerField()), Value(0)),
            waitlist_ahead=Coalesce(Subquery(_ahead_subquery(), output_field=IntegerField()), Value(0)),
        )
        .order_by("-created_at", "-pk")
    )
    return [
        RegistrationView(
            registration=r,
            seats=r.cohort_seats,
            waitlist_position=(r.waitlist_ahead + 1) if r.status == RegistrationStatus.WAITLISTED else None,
        )
        for r in registrations
    ]


def registration_for_email(*, email: str, registration_id: int) -> Registration | None:
    """One of the address's registrations, or None (never someone else's)."""
    return (
        registrations_for_email(email=email)
        .select_related("cohort__lab", "municipality")
        .filter(pk=registration_id)
        .first()
    )
