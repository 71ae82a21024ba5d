"""Lifecycle of a cohort (../shared/DESIGN.md, "Lifecycle rules").

Every function here takes the cohort row lock first, counts seats from the
database, and is safe to run twice or twice at once.
"""

import logging

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from outbox.services import message_queue

from .errors import CohortBusy, CohortFull, IllegalTransition
from .models import CURRENT_STATUSES, Cohort, CohortStatus

logger = logging.getLogger(__name__)

# How long a request waits for a cohort lock before it says "busy".
LOCK_TIMEOUT_MS = 5000


def cohort_lock(*, cohort_id: int) -> Cohort:
    """Lock and return the cohort row; call inside transaction.atomic()."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
    try:
        # of=("self",): the cohort row only. Without it PostgreSQL also locks
        # the joined lab row, in the same statement and after the cohort row,
        # which deadlocks with a confirmation that holds the lab lock and
        # waits for this cohort (issue #3).
        return Cohort.objects.select_for_update(of=("self",)).select_related("lab").get(pk=cohort_id)
    except OperationalError as exc:
        raise CohortBusy() from exc


def lab_lock(*, lab_id: int) -> None:
    """Lock a lab's row; call inside transaction.atomic(). Signups and
    confirmations take it before the cohort lock (always in that order), so
    that rules spanning a lab's cohorts hold under concurrency."""
    from .models import LeerLab

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
    try:
        LeerLab.objects.select_for_update().only("pk").get(pk=lab_id)
    except OperationalError as exc:
        raise CohortBusy() from exc


def cohort_seats_taken(*, cohort: Cohort) -> int:
    """Confirmed municipalities: seats count municipalities, not people."""
    from registrations.models import RegistrationStatus

    return (
        cohort.registrations.filter(status=RegistrationStatus.CONFIRMED)
        .values("municipality_id")
        .distinct()
        .count()
    )


def _email_context(cohort: Cohort, **extra) -> dict:
    return {"cohort": cohort, "lab": cohort.lab, "site_url": settings.SITE_URL, **extra}


def _queue_start_emails(cohort: Cohort) -> int:
    """Queue the "van start" email for every participant and advisor that has
    not had it. Idempotent through the outbox keys and start_notified_at."""
    from registrations.models import Registration, RegistrationStatus

    participants = list(
        Registration.objects.filter(cohort=cohort, status=RegistrationStatus.CONFIRMED)
        .select_related("municipality")
        .order_by("municipality__name")
    )
    municipalities = [r.municipality.name for r in participants]
    queued = 0
    now = timezone.now()
    for registration in participants:
        if registration.start_notified_at is None:
            message = message_queue(
                key=f"start:{cohort.pk}:registration:{registration.pk}",
                template="lab_started",
                to=registration.contact_email,
                context=_email_context(cohort, registration=registration, municipalities=municipalities),
                language=registration.language,
                registration=registration,
                cohort=cohort,
            )
            registration.start_notified_at = now
            registration.save(update_fields=["start_notified_at"])
            queued += message is not None
    for advisor in cohort.advisors.exclude(email="").order_by("pk"):
        message = message_queue(
            key=f"start:{cohort.pk}:advisor:{advisor.pk}",
            template="lab_started_advisor",
            to=advisor.email,
            context=_email_context(cohort, advisor=advisor, participants=participants),
            language=settings.LANGUAGE_CODE,
            cohort=cohort,
        )
        queued += message is not None
    return queued


def _promote_waitlist(cohort: Cohort, seats: int) -> int:
    """Give free seats of a cohort that takes seats to the waitlist, first
    confirmed first, each with an email. Returns the new seat count."""
    from registrations.models import Registration, RegistrationStatus
    from registrations.services import registration_event_record

    free = cohort.lab.max_municipalities - seats
    if free <= 0 or cohort.status not in (CohortStatus.OPEN, CohortStatus.STARTED):
        return seats
    waiting = (
        Registration.objects.select_for_update()
        .filter(cohort=cohort, status=RegistrationStatus.WAITLISTED)
        .select_related("municipality")
        .order_by("confirmed_at", "pk")[:free]
    )
    for registration in waiting:
        registration.status = RegistrationStatus.CONFIRMED
        registration.save(update_fields=["status"])
        registration_event_record(registration=registration, action="promoted", actor="system")
        message_queue(
            key=f"promoted:{cohort.pk}:registration:{registration.pk}",
            template="waitlist_promoted",
            to=registration.contact_email,
            context=_email_context(cohort, registration=registration),
            language=registration.language,
            registration=registration,
            cohort=cohort,
        )
        seats += 1
        logger.info(
            "registration %s moved from the waitlist to a seat in cohort %s", registration.pk, cohort.pk
        )
    return seats


def _apply_rules(cohort: Cohort) -> list[str]:
    changed = []
    if cohort.status not in CURRENT_STATUSES:
        return changed
    seats = _promote_waitlist(cohort, cohort_seats_taken(cohort=cohort))
    now = timezone.now()
    if cohort.started_at is None and seats >= cohort.lab.min_municipalities:
        cohort.started_at = now
        changed.append("started_at")
        if cohort.status == CohortStatus.OPEN:
            cohort.status = CohortStatus.STARTED
            changed.append("status")
    if cohort.status in (CohortStatus.OPEN, CohortStatus.STARTED) and seats >= cohort.lab.max_municipalities:
        cohort.status = CohortStatus.CLOSED
        cohort.closed_at = cohort.closed_at or now
        changed += ["status", "closed_at"]
    if changed:
        cohort.save(update_fields=sorted(set(changed)))
        logger.info("cohort %s now %s with %s seats taken", cohort.pk, cohort.status, seats)
    return changed


def cohort_evaluate(*, cohort_id: int) -> None:
    """Apply the lifecycle rules to one cohort and queue what they imply."""
    with transaction.atomic():
        cohort = cohort_lock(cohort_id=cohort_id)
        _apply_rules(cohort)
        if cohort.started_at is not None and cohort.status in CURRENT_STATUSES:
            _queue_start_emails(cohort)


def cohort_create(*, lab_id: int, start_date=None) -> Cohort:
    """A new run of a lab: the next number, open for signups. The lab row
    lock makes two advisors adding at once get consecutive numbers instead
    of a unique-constraint error."""
    from django.db.models import Max

    from .models import LeerLab

    with transaction.atomic():
        LeerLab.objects.select_for_update().get(pk=lab_id)
        last = Cohort.objects.filter(lab_id=lab_id).aggregate(last=Max("number"))["last"]
        cohort = Cohort(
            lab_id=lab_id, number=(last or 0) + 1, status=CohortStatus.OPEN, start_date=start_date
        )
        cohort.full_clean()
        cohort.save()
    return cohort


def cohort_start_now(*, cohort_id: int) -> Cohort:
    """An advisor starts a cohort before it reached the minimum."""
    with transaction.atomic():
        cohort = cohort_lock(cohort_id=cohort_id)
        if cohort.status != CohortStatus.OPEN:
            raise IllegalTransition()
        cohort.status = CohortStatus.STARTED
        cohort.started_at = cohort.started_at or timezone.now()
        cohort.save(update_fields=["status", "started_at"])
        _apply_rules(cohort)
        _queue_start_emails(cohort)
    return cohort


def cohort_close_registration(*, cohort_id: int) -> Cohort:
    """An advisor closes registration: new confirmations go to the waitlist."""
    with transaction.atomic():
        cohort = cohort_lock(cohort_id=cohort_id)
        if cohort.status not in (CohortStatus.OPEN, CohortStatus.STARTED):
            raise IllegalTransition()
        cohort.status = CohortStatus.CLOSED
        cohort.closed_at = timezone.now()
        cohort.save(update_fields=["status", "closed_at"])
        _apply_rules(cohort)
        if cohort.started_at is not None:
            _queue_start_emails(cohort)
    return cohort


def cohort_reopen(*, cohort_id: int) -> Cohort:
    """An advisor reopens registration of a closed cohort that has room;
    waitlisted municipalities get the free seats first."""
    with transaction.atomic():
        cohort = cohort_lock(cohort_id=cohort_id)
        if cohort.status != CohortStatus.CLOSED:
            raise IllegalTransition()
        if cohort_seats_taken(cohort=cohort) >= cohort.lab.max_municipalities:
            raise CohortFull()
        cohort.status = CohortStatus.STARTED if cohort.started_at else CohortStatus.OPEN
        cohort.closed_at = None
        cohort.save(update_fields=["status", "closed_at"])
        # Free seats go to the waitlist first, in order.
        _apply_rules(cohort)
        if cohort.started_at is not None:
            _queue_start_emails(cohort)
    return cohort


def sweep() -> dict:
    """Safety net run by beat: evaluate every current cohort and resend
    outbox messages that are due or stuck."""
    from outbox.services import outbox_due_ids
    from outbox.tasks import send_message

    cohort_ids = list(Cohort.objects.filter(status__in=CURRENT_STATUSES).values_list("pk", flat=True))
    for cohort_id in cohort_ids:
        try:
            cohort_evaluate(cohort_id=cohort_id)
        except CohortBusy:
            logger.info("sweep: cohort %s busy, next sweep retries", cohort_id)
    from registrations.services import registrations_purge_expired
    from selfservice.services import access_links_purge

    purged = registrations_purge_expired()
    access_links_purge()
    due = outbox_due_ids()
    for message_id in due:
        try:
            send_message.delay(message_id)
        except Exception as exc:  # noqa: BLE001 - broker down: the next sweep retries
            logger.warning("sweep: could not enqueue email %s (%s)", message_id, type(exc).__name__)
            break
    return {"cohorts": len(cohort_ids), "emails": len(due), "purged": purged}
