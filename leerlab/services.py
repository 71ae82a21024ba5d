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
from .history import ACTOR_SYSTEM, cohort_event_record
from .models import CURRENT_STATUSES, Cohort, CohortEventAction, CohortStatus
from .tasking import enqueue_on_commit

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
    # Invitations for the cohort's planned sessions, for whoever has not
    # had them (participants who joined later included).
    from .sessions import sessions_invite_participants

    queued += sessions_invite_participants(cohort=cohort)
    return queued


def _queue_seat_from_waitlist(cohort: Cohort, registration) -> None:
    """The "plaats" email: a municipality from a waitlist has a seat in
    this cohort (once per registration and cohort)."""
    message_queue(
        key=f"promoted:{cohort.pk}:registration:{registration.pk}",
        template="waitlist_promoted",
        to=registration.contact_email,
        context=_email_context(cohort, registration=registration),
        language=registration.language,
        registration=registration,
        cohort=cohort,
    )


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
        _queue_seat_from_waitlist(cohort, registration)
        seats += 1
        logger.info(
            "registration %s moved from the waitlist to a seat in cohort %s", registration.pk, cohort.pk
        )
    return seats


def _apply_rules(cohort: Cohort, *, actor: str = ACTOR_SYSTEM) -> list[str]:
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
        cohort_event_record(
            cohort=cohort, action=CohortEventAction.STARTED, actor=actor, details={"seats": seats}
        )
    if cohort.status in (CohortStatus.OPEN, CohortStatus.STARTED) and seats >= cohort.lab.max_municipalities:
        cohort.status = CohortStatus.CLOSED
        cohort.closed_at = cohort.closed_at or now
        changed += ["status", "closed_at"]
        cohort_event_record(
            cohort=cohort, action=CohortEventAction.CLOSED, actor=actor, details={"seats": seats}
        )
    if changed:
        cohort.save(update_fields=sorted(set(changed)))
        logger.info("cohort %s now %s with %s seats taken", cohort.pk, cohort.status, seats)
    if go_no_go_passed(cohort) and seats < cohort.lab.min_municipalities:
        _cancel(cohort, actor=ACTOR_SYSTEM, reason="go_no_go", seats=seats)
        changed.append("status")
    return changed


def go_no_go_passed(cohort: Cohort, *, today=None) -> bool:
    """The cohort has not started and its go/no-go day is over (in the
    portal's time zone): the day itself still counts as "go"."""
    if cohort.started_at is not None or cohort.go_no_go_date is None:
        return False
    return (today or timezone.localdate()) > cohort.go_no_go_date


def _cancel(cohort: Cohort, *, actor: str, reason: str, seats: int) -> None:
    """Cancel a cohort (locked by the caller): tell its registrants, with
    their alternatives, and its advisors; each email once."""
    from registrations.models import LIVE_STATUSES, Registration, RegistrationEventAction
    from registrations.services import registration_event_record

    from .selectors import lab_states

    now = timezone.now()
    cohort.status = CohortStatus.CANCELLED
    cohort.ended_at = now
    cohort.save(update_fields=["status", "ended_at"])
    cohort_event_record(
        cohort=cohort,
        action=CohortEventAction.CANCELLED,
        actor=actor,
        details={"reason": reason, "seats": seats},
    )
    # Planned sessions leave the calendars of whoever was invited.
    from .sessions import sessions_call_off_for_cohort

    sessions_call_off_for_cohort(cohort=cohort, actor=actor)
    registrations = list(
        Registration.objects.filter(cohort=cohort, status__in=LIVE_STATUSES, anonymised_at__isnull=True)
        .select_related("municipality")
        .order_by("municipality__name", "pk")
    )
    # The alternatives: the same lab's later cohort if one takes signups
    # (its seats or its waitlist), and the other labs, each in words.
    states = lab_states()
    same_lab = next((state for state in states if state.lab.pk == cohort.lab_id), None)
    other_labs = [state for state in states if state.lab.pk != cohort.lab_id and state.accepts_signups]
    for registration in registrations:
        registration_event_record(
            registration=registration,
            action=RegistrationEventAction.COHORT_CANCELLED,
            actor=actor,
            details={"reason": reason},
        )
        message_queue(
            key=f"cancelled:{cohort.pk}:registration:{registration.pk}",
            template="cohort_cancelled",
            to=registration.contact_email,
            context=_email_context(
                cohort,
                registration=registration,
                reason=reason,
                same_lab=same_lab if same_lab and same_lab.accepts_signups else None,
                other_labs=other_labs,
            ),
            language=registration.language,
            registration=registration,
            cohort=cohort,
        )
    for advisor in cohort.advisors.exclude(email="").order_by("pk"):
        message_queue(
            key=f"cancelled:{cohort.pk}:advisor:{advisor.pk}",
            template="cohort_cancelled_advisor",
            to=advisor.email,
            context=_email_context(
                cohort,
                advisor=advisor,
                reason=reason,
                seats=seats,
                registrations=registrations,
                lab_takes_signups=bool(same_lab and same_lab.accepts_signups),
            ),
            language=settings.LANGUAGE_CODE,
            cohort=cohort,
        )
    logger.info("cohort %s cancelled (%s) with %s seats taken", cohort.pk, reason, seats)


def _move_waitlist_into(cohort: Cohort, newer: Cohort, waiting: list, actor: str = ACTOR_SYSTEM) -> int:
    """Give the free seats of a newer cohort of the same lab (locked) to the
    first municipalities on this closed cohort's waitlist, in order, each
    with a "plaats" email. Returns how many moved."""
    from registrations.models import RegistrationEventAction, RegistrationStatus
    from registrations.services import registration_event_record

    free = cohort.lab.max_municipalities - cohort_seats_taken(cohort=newer)
    moving = waiting[: max(free, 0)]
    for registration in moving:
        registration.cohort = newer
        registration.status = RegistrationStatus.CONFIRMED
        registration.save(update_fields=["cohort", "status"])
        registration_event_record(
            registration=registration,
            action=RegistrationEventAction.MOVED_TO_NEXT_COHORT,
            actor=actor,
            details={"from_cohort": cohort.pk, "to_cohort": newer.pk, "status": registration.status},
        )
        _queue_seat_from_waitlist(newer, registration)
    if moving:
        details = {"moved": len(moving)}
        cohort_event_record(
            cohort=cohort,
            action=CohortEventAction.WAITLIST_MOVED,
            actor=actor,
            details={**details, "next_cohort": newer.pk},
        )
        cohort_event_record(
            cohort=newer,
            action=CohortEventAction.WAITLIST_MOVED,
            actor=actor,
            details={**details, "previous_cohort": cohort.pk},
        )
        logger.info(
            "%s from the waitlist of cohort %s moved into cohort %s", len(moving), cohort.pk, newer.pk
        )
    return len(moving)


def _open_next_cohort_if_due(cohort: Cohort) -> Cohort | None:
    """The waitlist of a closed cohort moves on (issue #6). Call with the lab
    and cohort locked; returns the cohort that received municipalities (to
    be evaluated), or None.

    - A newer cohort of the lab takes seats (an advisor opened one): its free
      seats go to this waitlist first, in order, before newcomers.
    - Otherwise, once the waitlist reaches the lab's minimum, a next cohort
      opens and the waitlist moves into it in order, the first ones into its
      seats. The one-to-one `previous_cohort` makes that happen at most once
      per cohort."""
    from django.db.models import Max

    from registrations.models import Registration, RegistrationEventAction, RegistrationStatus
    from registrations.services import registration_event_record

    lab = cohort.lab
    if not lab.auto_next_cohort or cohort.status != CohortStatus.CLOSED:
        return None
    waiting = list(
        Registration.objects.select_for_update()
        .filter(cohort=cohort, status=RegistrationStatus.WAITLISTED)
        .order_by("confirmed_at", "pk")
    )
    if not waiting:
        return None
    newer = (
        Cohort.objects.filter(
            lab=lab, number__gt=cohort.number, status__in=(CohortStatus.OPEN, CohortStatus.STARTED)
        )
        .order_by("-number")
        .values_list("pk", flat=True)
        .first()
    )
    if newer is not None:
        newer = cohort_lock(cohort_id=newer)
        return newer if _move_waitlist_into(cohort, newer, waiting) else None
    if len(waiting) < lab.min_municipalities or Cohort.objects.filter(previous_cohort=cohort).exists():
        return None

    last = Cohort.objects.filter(lab=lab).aggregate(last=Max("number"))["last"] or 0
    following = Cohort.objects.create(
        lab=lab, number=last + 1, status=CohortStatus.OPEN, previous_cohort=cohort
    )
    following.advisors.set(cohort.advisors.all())
    for index, registration in enumerate(waiting):
        registration.cohort = following
        if index < lab.max_municipalities:
            registration.status = RegistrationStatus.CONFIRMED
        registration.save(update_fields=["cohort", "status"])
        registration_event_record(
            registration=registration,
            action=RegistrationEventAction.MOVED_TO_NEXT_COHORT,
            actor=ACTOR_SYSTEM,
            details={"from_cohort": cohort.pk, "to_cohort": following.pk, "status": registration.status},
        )
    moved = len(waiting)
    cohort_event_record(
        cohort=cohort,
        action=CohortEventAction.NEXT_COHORT_OPENED,
        actor=ACTOR_SYSTEM,
        details={"next_cohort": following.pk, "moved": moved},
    )
    cohort_event_record(
        cohort=following,
        action=CohortEventAction.OPENED_FROM_WAITLIST,
        actor=ACTOR_SYSTEM,
        details={"previous_cohort": cohort.pk, "moved": moved},
    )
    for advisor in following.advisors.exclude(email="").order_by("pk"):
        message_queue(
            key=f"next_cohort:{following.pk}:advisor:{advisor.pk}",
            template="next_cohort_opened_advisor",
            to=advisor.email,
            context=_email_context(following, advisor=advisor, previous=cohort, moved=waiting),
            language=settings.LANGUAGE_CODE,
            cohort=following,
        )
    logger.info("cohort %s opened for the waitlist of cohort %s (%s moved)", following.pk, cohort.pk, moved)
    return following


def cohort_evaluate(*, cohort_id: int) -> None:
    """Apply the lifecycle rules to one cohort and queue what they imply:
    start, close, go/no-go cancellation, the next cohort for a waitlist.
    Lab lock first, then the cohort: the order signups take."""
    from .tasks import evaluate_cohort

    with transaction.atomic():
        lab_id = Cohort.objects.values_list("lab_id", flat=True).get(pk=cohort_id)
        lab_lock(lab_id=lab_id)
        cohort = cohort_lock(cohort_id=cohort_id)
        _apply_rules(cohort)
        if cohort.started_at is not None and cohort.status in CURRENT_STATUSES:
            _queue_start_emails(cohort)
        following = _open_next_cohort_if_due(cohort)
        if following is not None:
            # The lifecycle starts it as usual, with the usual emails.
            enqueue_on_commit(evaluate_cohort, following.pk)


def cohort_create(*, lab_id: int, start_date=None, go_no_go_date=None, actor: str = ACTOR_SYSTEM) -> Cohort:
    """A new run of a lab: the next number, open for signups. The lab row
    lock makes two advisors adding at once get consecutive numbers instead
    of a unique-constraint error."""
    from django.db.models import Max

    from .models import LeerLab

    with transaction.atomic():
        LeerLab.objects.select_for_update().get(pk=lab_id)
        last = Cohort.objects.filter(lab_id=lab_id).aggregate(last=Max("number"))["last"]
        cohort = Cohort(
            lab_id=lab_id,
            number=(last or 0) + 1,
            status=CohortStatus.OPEN,
            start_date=start_date,
            go_no_go_date=go_no_go_date,
        )
        cohort.full_clean()
        cohort.save()
        cohort_event_record(cohort=cohort, action=CohortEventAction.CREATED, actor=actor)
        # Waitlists of the lab's closed cohorts get the new seats first.
        from registrations.models import RegistrationStatus

        from .tasks import evaluate_cohort

        waiting = (
            Cohort.objects.filter(
                lab_id=lab_id,
                status=CohortStatus.CLOSED,
                registrations__status=RegistrationStatus.WAITLISTED,
            )
            .order_by("number")
            .values_list("pk", flat=True)
            .distinct()
        )
        for closed_id in waiting:
            enqueue_on_commit(evaluate_cohort, closed_id)
    return cohort


def cohort_start_now(*, cohort_id: int, actor: str = ACTOR_SYSTEM) -> Cohort:
    """An advisor starts a cohort before it reached the minimum."""
    with transaction.atomic():
        cohort = cohort_lock(cohort_id=cohort_id)
        if cohort.status != CohortStatus.OPEN:
            raise IllegalTransition()
        cohort.status = CohortStatus.STARTED
        cohort.started_at = cohort.started_at or timezone.now()
        cohort.save(update_fields=["status", "started_at"])
        cohort_event_record(
            cohort=cohort,
            action=CohortEventAction.STARTED,
            actor=actor,
            details={"seats": cohort_seats_taken(cohort=cohort), "by_hand": True},
        )
        _apply_rules(cohort, actor=actor)
        _queue_start_emails(cohort)
    return cohort


def cohort_close_registration(*, cohort_id: int, actor: str = ACTOR_SYSTEM) -> Cohort:
    """An advisor closes registration: new confirmations go to the waitlist."""
    with transaction.atomic():
        cohort = cohort_lock(cohort_id=cohort_id)
        if cohort.status not in (CohortStatus.OPEN, CohortStatus.STARTED):
            raise IllegalTransition()
        cohort.status = CohortStatus.CLOSED
        cohort.closed_at = timezone.now()
        cohort.save(update_fields=["status", "closed_at"])
        cohort_event_record(
            cohort=cohort,
            action=CohortEventAction.CLOSED,
            actor=actor,
            details={"seats": cohort_seats_taken(cohort=cohort), "by_hand": True},
        )
        _apply_rules(cohort, actor=actor)
        if cohort.started_at is not None:
            _queue_start_emails(cohort)
    return cohort


def cohort_reopen(*, cohort_id: int, actor: str = ACTOR_SYSTEM) -> Cohort:
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
        cohort_event_record(cohort=cohort, action=CohortEventAction.REOPENED, actor=actor)
        # Free seats go to the waitlist first, in order.
        _apply_rules(cohort, actor=actor)
        if cohort.started_at is not None:
            _queue_start_emails(cohort)
    return cohort


def cohort_complete(*, cohort_id: int, actor: str = ACTOR_SYSTEM) -> Cohort:
    """An advisor marks a started cohort as completed (afgerond). The
    retention period of its personal data counts from now."""
    from registrations.models import Registration, RegistrationEventAction, RegistrationStatus
    from registrations.services import registration_event_record

    with transaction.atomic():
        cohort = cohort_lock(cohort_id=cohort_id)
        if cohort.status not in (CohortStatus.STARTED, CohortStatus.CLOSED) or cohort.started_at is None:
            raise IllegalTransition()
        cohort.status = CohortStatus.COMPLETED
        cohort.ended_at = timezone.now()
        cohort.save(update_fields=["status", "ended_at"])
        waiting = Registration.objects.filter(cohort=cohort, status=RegistrationStatus.WAITLISTED).count()
        cohort_event_record(
            cohort=cohort,
            action=CohortEventAction.COMPLETED,
            actor=actor,
            details={"seats": cohort_seats_taken(cohort=cohort), "waitlisted": waiting},
        )
        for registration in Registration.objects.filter(
            cohort=cohort, status=RegistrationStatus.CONFIRMED, anonymised_at__isnull=True
        ):
            registration_event_record(
                registration=registration, action=RegistrationEventAction.COHORT_COMPLETED, actor=actor
            )
    return cohort


def cohort_cancel(*, cohort_id: int, actor: str = ACTOR_SYSTEM) -> Cohort:
    """An advisor cancels a cohort that has not been completed: the same
    as a go/no-go cancellation, registrants and advisors are told."""
    with transaction.atomic():
        cohort = cohort_lock(cohort_id=cohort_id)
        if cohort.status not in CURRENT_STATUSES:
            raise IllegalTransition()
        _cancel(cohort, actor=actor, reason="advisor", seats=cohort_seats_taken(cohort=cohort))
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
