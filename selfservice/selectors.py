"""Reads for "mijn aanmeldingen": a fixed number of queries per page."""

from dataclasses import dataclass

from django.db.models import Count, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from leerlab.models import CohortSession, CohortStatus
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


# Cohorts whose session plan a participant sees (issue #6): started, and
# afterwards as a record of what took place; not a cancelled one.
PLAN_STATUSES = (CohortStatus.STARTED, CohortStatus.CLOSED, CohortStatus.COMPLETED)


def _sessions_prefetch() -> Prefetch:
    return Prefetch("cohort__sessions", queryset=CohortSession.objects.order_by("date", "start_time", "pk"))


def shows_session_plan(registration: Registration) -> bool:
    """A confirmed participant of a cohort that has started sees its plan."""
    cohort = registration.cohort
    return (
        registration.status == RegistrationStatus.CONFIRMED
        and registration.anonymised_at is None
        and cohort.started_at is not None
        and cohort.status in PLAN_STATUSES
    )


@dataclass(frozen=True)
class SessionLine:
    session: CohortSession
    upcoming: bool

    @property
    def cancelled(self) -> bool:
        return self.session.cancelled_at is not None

    @property
    def downloadable(self) -> bool:
        return self.upcoming and not self.cancelled


@dataclass(frozen=True)
class RegistrationView:
    registration: Registration
    seats: int
    waitlist_position: int | None
    sessions: tuple[SessionLine, ...] = ()

    @property
    def shows_plan(self) -> bool:
        return shows_session_plan(self.registration)

    @property
    def changeable(self) -> bool:
        return self.registration.status != RegistrationStatus.WITHDRAWN

    @property
    def cohort_text(self) -> str:
        cohort = self.registration.cohort
        lab = cohort.lab
        if cohort.status == CohortStatus.CANCELLED:
            return _("Dit cohort is geannuleerd en gaat niet door.")
        if cohort.status == CohortStatus.COMPLETED:
            return _("Dit Leer Lab is afgerond.")
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
        live = (RegistrationStatus.CONFIRMED, RegistrationStatus.WAITLISTED)
        if status in live and self.registration.cohort.status == CohortStatus.CANCELLED:
            return _("vervallen, want het cohort gaat niet door")
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
        # One query for the session plans of all the cohorts on the page.
        .prefetch_related(_sessions_prefetch())
        .annotate(
            cohort_seats=Coalesce(Subquery(_seats_subquery(), output_field=IntegerField()), Value(0)),
            waitlist_ahead=Coalesce(Subquery(_ahead_subquery(), output_field=IntegerField()), Value(0)),
        )
        .order_by("-created_at", "-pk")
    )
    now = timezone.now()
    return [
        RegistrationView(
            registration=r,
            seats=r.cohort_seats,
            waitlist_position=(r.waitlist_ahead + 1) if r.status == RegistrationStatus.WAITLISTED else None,
            sessions=tuple(
                SessionLine(session=session, upcoming=session.ends_at > now)
                for session in r.cohort.sessions.all()
            )
            if shows_session_plan(r)
            else (),
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


def session_plan_for_email(
    *, email: str, registration_id: int, session_id: int | None = None
) -> tuple[Registration, list[CohortSession]] | None:
    """The session plan (or one session of it) of one of the address's own
    registrations, for the .ics download; None when the registration is not
    the address's, has no plan to show, or the session is not in it."""
    registration = registration_for_email(email=email, registration_id=registration_id)
    if registration is None or not shows_session_plan(registration):
        return None
    sessions = registration.cohort.sessions.order_by("date", "start_time", "pk")
    if session_id is not None:
        sessions = sessions.filter(pk=session_id)
    sessions = list(sessions)
    for session in sessions:
        session.cohort = registration.cohort
    if session_id is not None and not sessions:
        return None
    return registration, sessions
