"""The history of cohorts (issue #6): one CohortEvent per change, written
inside the transaction that makes the change. Registrations have theirs in
registrations.services.registration_event_record."""

from .models import Cohort, CohortEvent

ACTOR_SYSTEM = "system"


def actor_for(user) -> str:
    """How a user appears in the history: the username, never an address."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ACTOR_SYSTEM
    return user.get_username()[:150]


def cohort_event_record(
    *, cohort: Cohort, action: str, actor: str, details: dict | None = None
) -> CohortEvent:
    return CohortEvent.objects.create(cohort=cohort, action=action, actor=actor[:150], details=details or {})
