"""Signing up and confirming (../shared/DESIGN.md, lifecycle rules 1, 2, 5, 6)."""

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone, translation

from leerlab.models import CURRENT_STATUSES, Cohort, CohortStatus
from leerlab.services import cohort_lock, cohort_seats_taken, lab_lock
from leerlab.tasking import enqueue_on_commit
from municipalities.models import Municipality
from outbox.services import message_queue

from . import errors
from .models import (
    LIVE_STATUSES,
    Registration,
    RegistrationEvent,
    RegistrationEventAction,
    RegistrationStatus,
)

logger = logging.getLogger(__name__)


# Actors of RegistrationEvent: what acted, never an email address.
ACTOR_SYSTEM = "system"
ACTOR_SIGNUP = "officer (signup form)"
ACTOR_CONFIRMATION = "officer (confirmation link)"
ACTOR_SELFSERVICE = "officer (self-service)"
ACTOR_HANDOVER = "colleague (handover link)"


def registration_event_record(
    *, registration: Registration, action: str, actor: str, details: dict | None = None
) -> RegistrationEvent:
    """Record one change of a registration (issue #5); call inside the
    transaction that makes the change."""
    return RegistrationEvent.objects.create(
        registration=registration, action=action, actor=actor[:150], details=details or {}
    )


# The same person submitting the same signup within this window made a
# double submit, not a new signup.
RESUBMIT_WINDOW = timedelta(minutes=10)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def confirmation_url(*, token: str, language: str) -> str:
    with translation.override(language):
        path = reverse("registrations:confirm", kwargs={"token": token})
    return f"{settings.SITE_URL}{path}"


def municipality_check_participating(*, municipality: Municipality) -> None:
    if municipality.province != settings.LEERLAB_PROVINCE:
        raise errors.MunicipalityOutsideProvince()
    if not municipality.is_active:
        raise errors.MunicipalityInactive()


def _live_in_lab(*, lab_id: int, municipality_id: int):
    """The municipality's live registrations in the lab's current cohorts:
    a municipality takes part in (or waits for) one run of a lab at a time."""
    return Registration.objects.filter(
        cohort__lab_id=lab_id,
        cohort__status__in=CURRENT_STATUSES,
        municipality_id=municipality_id,
        status__in=LIVE_STATUSES,
    )


def _queue_confirmation_request(registration: Registration, token: str) -> None:
    # The key carries the token's hash: every new link is a new email, the
    # same link is never mailed twice.
    message_queue(
        key=f"confirm:{registration.pk}:{registration.token_hash[:16]}",
        template="confirm_request",
        to=registration.contact_email,
        context={
            "registration": registration,
            "lab": registration.cohort.lab,
            "cohort": registration.cohort,
            "confirm_url": confirmation_url(token=token, language=registration.language),
            "expires_at": registration.token_expires_at,
            "site_url": settings.SITE_URL,
        },
        language=registration.language,
        registration=registration,
        cohort=registration.cohort,
    )


def registration_submit(
    *,
    cohort: Cohort,
    municipality: Municipality,
    contact_name: str,
    contact_email: str,
    case_title: str,
    case_description: str,
    privacy_consent: bool,
    contact_role: str = "",
    contact_phone: str = "",
    learning_needs: str = "",
    language: str = "nl",
) -> Registration:
    """Store a pending signup and queue the confirmation email (double opt-in)."""
    if not privacy_consent:
        raise errors.ConsentMissing()
    municipality_check_participating(municipality=municipality)
    if cohort.status not in CURRENT_STATUSES:
        raise errors.SignupClosed()
    if _live_in_lab(lab_id=cohort.lab_id, municipality_id=municipality.pk).exists():
        raise errors.AlreadyRegistered()

    now = timezone.now()
    token, hashed = _new_token()
    registration = Registration(
        cohort=cohort,
        municipality=municipality,
        contact_name=contact_name.strip(),
        contact_email=contact_email.strip(),
        contact_role=contact_role.strip(),
        contact_phone=contact_phone.strip(),
        case_title=case_title.strip(),
        case_description=case_description.strip(),
        learning_needs=learning_needs.strip(),
        privacy_consent_at=now,
        privacy_version=settings.LEERLAB_PRIVACY_VERSION,
        language=language,
        email_domain_flagged=not municipality.email_domain_matches(contact_email),
        token_hash=hashed,
        token_expires_at=now + timedelta(days=settings.LEERLAB_CONFIRMATION_DAYS),
    )
    registration.full_clean()
    with transaction.atomic():
        # The lab lock serialises signups of one lab, so identical submits
        # fired at once are recognised as one, even when an advisor opens a
        # new cohort between the two clicks.
        lab_lock(lab_id=cohort.lab_id)
        if _live_in_lab(lab_id=cohort.lab_id, municipality_id=municipality.pk).exists():
            raise errors.AlreadyRegistered()
        duplicate = (
            Registration.objects.filter(
                cohort__lab_id=cohort.lab_id,
                cohort__status__in=CURRENT_STATUSES,
                municipality=municipality,
                status=RegistrationStatus.PENDING,
                contact_email__iexact=registration.contact_email,
                created_at__gte=now - RESUBMIT_WINDOW,
            )
            .order_by("-created_at")
            .first()
        )
        if duplicate is not None:
            # A double submit: one signup and one email. After the window a
            # new signup (and a new link) is made, for whoever lost the mail.
            logger.info("registration %s submitted again; kept as one", duplicate.pk)
            return duplicate
        registration.save()
        registration_event_record(
            registration=registration, action=RegistrationEventAction.SUBMITTED, actor=ACTOR_SIGNUP
        )
        _queue_confirmation_request(registration, token)
    logger.info("registration %s submitted for cohort %s", registration.pk, cohort.pk)
    return registration


def _redact_token_in_outbox(*, registration: Registration, token: str) -> None:
    """A used link is worthless, but keep no copy of it either: the
    confirmation emails in the outbox lose the token once it is used.
    Messages still waiting to be sent keep it (they must work)."""
    from outbox.models import MessageStatus, OutboxMessage

    for message in OutboxMessage.objects.filter(
        registration=registration, kind="confirm_request", status=MessageStatus.SENT
    ):
        message.body_text = message.body_text.replace(token, "[gebruikt]")
        message.body_html = message.body_html.replace(token, "[gebruikt]")
        message.save(update_fields=["body_text", "body_html"])


@dataclass(frozen=True)
class ConfirmationResult:
    registration: Registration
    # False when the link had been used before: the outcome is shown again.
    newly_confirmed: bool

    @property
    def has_seat(self) -> bool:
        return self.registration.status == RegistrationStatus.CONFIRMED


def registration_for_token(*, token: str) -> Registration:
    """The registration a confirmation link belongs to, for the GET page.
    Raises InvalidToken or TokenExpired; changes nothing."""
    if not token or len(token) > 100:
        raise errors.InvalidToken()
    registration = (
        Registration.objects.select_related("cohort__lab", "municipality")
        .filter(token_hash=token_hash(token))
        .first()
    )
    if registration is None:
        raise errors.InvalidToken()
    if registration.token_used_at is None and registration.token_expires_at <= timezone.now():
        raise errors.TokenExpired()
    return registration


def registration_confirm(*, token: str) -> ConfirmationResult:
    """Confirm a signup: a seat while fewer than the maximum municipalities
    are confirmed and the cohort takes seats, else the waitlist."""
    found = registration_for_token(token=token)
    with transaction.atomic():
        lab_lock(lab_id=found.cohort.lab_id)
        cohort = cohort_lock(cohort_id=found.cohort_id)
        registration = (
            Registration.objects.select_for_update().select_related("municipality").get(pk=found.pk)
        )
        registration.cohort = cohort
        if registration.token_used_at is not None:
            if registration.status in LIVE_STATUSES:
                return ConfirmationResult(registration=registration, newly_confirmed=False)
            raise errors.TokenUsed()
        if registration.status != RegistrationStatus.PENDING:
            raise errors.TokenUsed()
        if registration.token_expires_at <= timezone.now():
            raise errors.TokenExpired()
        if cohort.status not in CURRENT_STATUSES:
            raise errors.SignupClosed()
        live = (
            _live_in_lab(lab_id=cohort.lab_id, municipality_id=registration.municipality_id)
            .exclude(pk=registration.pk)
            .select_related("municipality", "cohort__lab")
            .first()
        )
        if live is not None:
            if live.contact_email.lower() == registration.contact_email.lower():
                # The same person signed up twice (a double submit) and now
                # uses the other link: show the outcome they already have.
                return ConfirmationResult(registration=live, newly_confirmed=False)
            raise errors.AlreadyRegistered()

        now = timezone.now()
        takes_seats = cohort.status in (CohortStatus.OPEN, CohortStatus.STARTED)
        if takes_seats and cohort_seats_taken(cohort=cohort) < cohort.lab.max_municipalities:
            registration.status = RegistrationStatus.CONFIRMED
            template = "seat_confirmed"
        else:
            registration.status = RegistrationStatus.WAITLISTED
            template = "waitlisted"
        registration.confirmed_at = now
        registration.token_used_at = now
        registration.save(update_fields=["status", "confirmed_at", "token_used_at"])
        registration_event_record(
            registration=registration,
            action=(
                RegistrationEventAction.CONFIRMED
                if registration.status == RegistrationStatus.CONFIRMED
                else RegistrationEventAction.WAITLISTED
            ),
            actor=ACTOR_CONFIRMATION,
        )
        _redact_token_in_outbox(registration=registration, token=token)
        message_queue(
            key=f"{template}:{registration.pk}",
            template=template,
            to=registration.contact_email,
            context={
                "registration": registration,
                "lab": cohort.lab,
                "cohort": cohort,
                "waitlist_position": waitlist_position(registration=registration),
                "site_url": settings.SITE_URL,
            },
            language=registration.language,
            registration=registration,
            cohort=cohort,
        )
        from leerlab.tasks import evaluate_cohort

        enqueue_on_commit(evaluate_cohort, cohort.pk)
    logger.info("registration %s confirmed as %s", registration.pk, registration.status)
    return ConfirmationResult(registration=registration, newly_confirmed=True)


def waitlist_position(*, registration: Registration) -> int | None:
    """1-based place on the cohort's waitlist, in order of confirmation."""
    if registration.status != RegistrationStatus.WAITLISTED:
        return None
    # Same order as the waitlist moves up in: confirmation time, then id.
    ahead = (
        Registration.objects.filter(cohort_id=registration.cohort_id, status=RegistrationStatus.WAITLISTED)
        .filter(
            Q(confirmed_at__lt=registration.confirmed_at)
            | Q(confirmed_at=registration.confirmed_at, pk__lt=registration.pk)
        )
        .count()
    )
    return ahead + 1


def registration_resend_confirmation(*, registration_id: int) -> bool:
    """Admin action: mail a fresh confirmation link to a pending signup (the
    old link stops working). Returns False when there is nothing to resend."""
    with transaction.atomic():
        registration = (
            # The registration row only: locking its cohort and lab here, out
            # of the lab-then-cohort order, could deadlock with a confirmation.
            Registration.objects.select_for_update(of=("self",))
            .select_related("cohort__lab")
            .get(pk=registration_id)
        )
        if registration.status != RegistrationStatus.PENDING:
            return False
        token, hashed = _new_token()
        registration.token_hash = hashed
        registration.token_expires_at = timezone.now() + timedelta(days=settings.LEERLAB_CONFIRMATION_DAYS)
        registration.save(update_fields=["token_hash", "token_expires_at"])
        _queue_confirmation_request(registration, token)
    return True


def registrations_reflag_email_domains(*, municipality_id: int) -> int:
    """Recompute the email-domain flag of a municipality's registrations
    after advisors edited its domains. Returns how many changed."""
    municipality = Municipality.objects.prefetch_related("email_domains").get(pk=municipality_id)
    changed = 0
    with transaction.atomic():
        for registration in Registration.objects.select_for_update().filter(municipality=municipality):
            flagged = not municipality.email_domain_matches(registration.contact_email)
            if flagged != registration.email_domain_flagged:
                registration.email_domain_flagged = flagged
                registration.save(update_fields=["email_domain_flagged"])
                changed += 1
    return changed


def registrations_purge_expired(*, now=None) -> int:
    """Delete unconfirmed signups whose link has expired, with the emails
    that were sent for them: the privacy statement promises it. Run by the
    sweep. Returns how many signups were removed."""
    from outbox.models import OutboxMessage

    now = now or timezone.now()
    with transaction.atomic():
        expired = Registration.objects.filter(status=RegistrationStatus.PENDING, token_expires_at__lt=now)
        ids = list(expired.values_list("pk", flat=True)[:1000])
        if not ids:
            return 0
        OutboxMessage.objects.filter(registration_id__in=ids).delete()
        Registration.objects.filter(pk__in=ids).delete()
    logger.info("purged %s expired unconfirmed signups", len(ids))
    return len(ids)


def registration_resend_email(*, registration_id: int) -> str:
    """Admin action "resend email". Pending: a fresh confirmation link (the
    old one stops working). Confirmed or waitlisted: the newest email that
    has not gone out (failed or still queued) goes back in the queue.
    Returns "new_link", "requeued" or "nothing"."""
    from outbox.models import MessageStatus, OutboxMessage
    from outbox.services import message_resend

    registration = Registration.objects.get(pk=registration_id)
    if registration.status == RegistrationStatus.PENDING:
        return "new_link" if registration_resend_confirmation(registration_id=registration.pk) else "nothing"
    if registration.status in LIVE_STATUSES:
        message = (
            OutboxMessage.objects.filter(
                registration=registration, status__in=(MessageStatus.FAILED, MessageStatus.QUEUED)
            )
            .order_by("-created_at", "-pk")
            .first()
        )
        if message is not None:
            message_resend(message_id=message.pk)
            return "requeued"
    return "nothing"


# --- Self-service (issue #5) -------------------------------------------------

CASE_FIELDS = ("case_title", "case_description", "learning_needs")
# Registrations an officer may still change: not withdrawn, not erased.
CHANGEABLE_STATUSES = (RegistrationStatus.PENDING, *LIVE_STATUSES)


@dataclass(frozen=True)
class WithdrawalResult:
    registration: Registration
    freed_seat: bool
    promoted: tuple[Registration, ...] = ()
    reopened: bool = False
    below_minimum: bool = False


def _lock_registration_with_cohort(*, registration_id: int) -> tuple[Registration, Cohort]:
    """Lab lock, then cohort lock, then the registration row: the order every
    signup and confirmation takes, so none of them can deadlock."""
    found = Registration.objects.select_related("cohort").only("pk", "cohort__lab_id").get(pk=registration_id)
    lab_lock(lab_id=found.cohort.lab_id)
    cohort = cohort_lock(cohort_id=found.cohort_id)
    registration = (
        Registration.objects.select_for_update(of=("self",))
        .select_related("municipality")
        .get(pk=registration_id)
    )
    registration.cohort = cohort
    return registration, cohort


def _queue_advisors(cohort: Cohort, *, key: str, template: str, context: dict) -> None:
    for advisor in cohort.advisors.exclude(email="").order_by("pk"):
        message_queue(
            key=f"{key}:advisor:{advisor.pk}",
            template=template,
            to=advisor.email,
            context={
                "cohort": cohort,
                "lab": cohort.lab,
                "site_url": settings.SITE_URL,
                "advisor": advisor,
                **context,
            },
            language=settings.LANGUAGE_CODE,
            cohort=cohort,
        )


def registration_withdraw(*, registration_id: int, actor: str) -> WithdrawalResult:
    """Withdraw a registration (issue #5). A freed seat goes to the first
    municipality on the waitlist (one "plaats" email); a closed cohort that
    is not full again reopens; a started cohort never un-starts: advisors
    are told when it falls below the minimum and decide."""
    from leerlab.services import _apply_rules, _queue_start_emails

    with transaction.atomic():
        registration, cohort = _lock_registration_with_cohort(registration_id=registration_id)
        if registration.status == RegistrationStatus.WITHDRAWN:
            raise errors.AlreadyWithdrawn()
        if registration.anonymised_at is not None:
            raise errors.RegistrationClosedForChanges()
        previous = registration.status
        freed_seat = previous == RegistrationStatus.CONFIRMED
        registration.status = RegistrationStatus.WITHDRAWN
        registration.withdrawn_at = timezone.now()
        registration.save(update_fields=["status", "withdrawn_at"])
        registration_event_record(
            registration=registration,
            action=RegistrationEventAction.WITHDRAWN,
            actor=actor,
            details={"previous_status": previous},
        )

        promoted_before = set(
            Registration.objects.filter(cohort=cohort, status=RegistrationStatus.CONFIRMED).values_list(
                "pk", flat=True
            )
        )
        reopened = False
        if freed_seat and cohort.status in CURRENT_STATUSES:
            was_closed = cohort.status == CohortStatus.CLOSED
            if was_closed:
                # Let the rules hand out the free seat: if the waitlist fills
                # the cohort again they close it again (closed_at kept),
                # otherwise it stays open for new signups.
                cohort.status = CohortStatus.STARTED if cohort.started_at else CohortStatus.OPEN
            _apply_rules(cohort)
            if was_closed and cohort.status != CohortStatus.CLOSED:
                cohort.closed_at = None
                cohort.save(update_fields=["status", "closed_at"])
                reopened = True
            if cohort.started_at is not None:
                _queue_start_emails(cohort)
        promoted = tuple(
            Registration.objects.filter(cohort=cohort, status=RegistrationStatus.CONFIRMED)
            .exclude(pk__in=promoted_before)
            .select_related("municipality")
            .order_by("pk")
        )
        seats = cohort_seats_taken(cohort=cohort)
        below_minimum = freed_seat and cohort.started_at is not None and seats < cohort.lab.min_municipalities
        if previous in LIVE_STATUSES:
            _queue_advisors(
                cohort,
                key=f"withdrawn:{registration.pk}",
                template="registration_withdrawn_advisor",
                context={
                    "registration": registration,
                    "had_seat": freed_seat,
                    "promoted": promoted,
                    "reopened": reopened,
                    "seats": seats,
                },
            )
        if below_minimum:
            _queue_advisors(
                cohort,
                key=f"below_minimum:{cohort.pk}:{registration.pk}",
                template="cohort_below_minimum_advisor",
                context={"registration": registration, "seats": seats},
            )
    logger.info("registration %s withdrawn (was %s)", registration.pk, previous)
    return WithdrawalResult(
        registration=registration,
        freed_seat=freed_seat,
        promoted=promoted,
        reopened=reopened,
        below_minimum=below_minimum,
    )


def registration_update_case(
    *,
    registration_id: int,
    case_title: str,
    case_description: str,
    learning_needs: str,
    actor: str,
) -> Registration:
    """The officer edits the case and learning needs; the event names the
    fields that changed, not their contents."""
    with transaction.atomic():
        registration = Registration.objects.select_for_update().get(pk=registration_id)
        if registration.status not in CHANGEABLE_STATUSES or registration.anonymised_at is not None:
            raise errors.RegistrationClosedForChanges()
        new = {
            "case_title": case_title.strip(),
            "case_description": case_description.strip(),
            "learning_needs": learning_needs.strip(),
        }
        changed = [name for name in CASE_FIELDS if getattr(registration, name) != new[name]]
        if not changed:
            return registration
        for name in changed:
            setattr(registration, name, new[name])
        registration.full_clean()
        registration.save(update_fields=changed)
        registration_event_record(
            registration=registration,
            action=RegistrationEventAction.CASE_CHANGED,
            actor=actor,
            details={"fields": changed},
        )
    return registration


def handover_url(*, token: str, language: str) -> str:
    with translation.override(language):
        path = reverse("selfservice:handover_confirm", kwargs={"token": token})
    return f"{settings.SITE_URL}{path}"


def registration_handover_request(
    *,
    registration_id: int,
    contact_name: str,
    contact_email: str,
    actor: str,
    contact_role: str = "",
    contact_phone: str = "",
    language: str = "nl",
):
    """Ask a colleague to take over a registration: they get an email with a
    link and become the contact only when they confirm."""
    from selfservice.models import HandoverRequest

    with transaction.atomic():
        registration = (
            Registration.objects.select_for_update(of=("self",))
            .select_related("cohort__lab", "municipality")
            .get(pk=registration_id)
        )
        if registration.status not in CHANGEABLE_STATUSES or registration.anonymised_at is not None:
            raise errors.RegistrationClosedForChanges()
        if contact_email.strip().lower() == registration.contact_email.lower():
            raise errors.HandoverToSelf()
        token, hashed = _new_token()
        request = HandoverRequest(
            registration=registration,
            contact_name=contact_name.strip(),
            contact_email=contact_email.strip(),
            contact_role=contact_role.strip(),
            contact_phone=contact_phone.strip(),
            token_hash=hashed,
            expires_at=timezone.now() + timedelta(days=settings.LEERLAB_SELFSERVICE_HANDOVER_DAYS),
        )
        request.full_clean()
        request.save()
        registration_event_record(
            registration=registration, action=RegistrationEventAction.HANDOVER_REQUESTED, actor=actor
        )
        message_queue(
            key=f"handover:{request.pk}",
            template="handover_request",
            to=request.contact_email,
            context={
                "registration": registration,
                "handover": request,
                "lab": registration.cohort.lab,
                "cohort": registration.cohort,
                "handover_url": handover_url(token=token, language=language),
                "expires_at": request.expires_at,
                "site_url": settings.SITE_URL,
            },
            language=language,
            registration=registration,
            cohort=registration.cohort,
        )
    return request


def handover_for_token(*, token: str):
    """The open handover a link belongs to; raises HandoverLinkInvalid."""
    from selfservice.models import HandoverRequest

    if not token or len(token) > 100:
        raise errors.HandoverLinkInvalid()
    request = (
        HandoverRequest.objects.select_related("registration__cohort__lab", "registration__municipality")
        .filter(token_hash=token_hash(token), confirmed_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if request is None or request.registration.status not in CHANGEABLE_STATUSES:
        raise errors.HandoverLinkInvalid()
    return request


def registration_handover_confirm(*, token: str) -> Registration:
    """The colleague confirms: they become the registration's contact."""
    from selfservice.models import HandoverRequest

    found = handover_for_token(token=token)
    with transaction.atomic():
        registration = (
            Registration.objects.select_for_update(of=("self",))
            .select_related("municipality")
            .get(pk=found.registration_id)
        )
        request = HandoverRequest.objects.select_for_update().get(pk=found.pk)
        if (
            request.confirmed_at is not None
            or request.expires_at <= timezone.now()
            or registration.status not in CHANGEABLE_STATUSES
            or registration.anonymised_at is not None
        ):
            raise errors.HandoverLinkInvalid()
        registration.contact_name = request.contact_name
        registration.contact_email = request.contact_email
        registration.contact_role = request.contact_role
        registration.contact_phone = request.contact_phone
        registration.email_domain_flagged = not registration.municipality.email_domain_matches(
            request.contact_email
        )
        registration.full_clean()
        registration.save(
            update_fields=[
                "contact_name",
                "contact_email",
                "contact_role",
                "contact_phone",
                "email_domain_flagged",
            ]
        )
        request.confirmed_at = timezone.now()
        request.save(update_fields=["confirmed_at"])
        from selfservice.services import outbox_redact_token

        outbox_redact_token(key=f"handover:{request.pk}", token=token)
        # Other open handovers of this registration are void now.
        HandoverRequest.objects.filter(registration=registration, confirmed_at__isnull=True).exclude(
            pk=request.pk
        ).update(expires_at=timezone.now())
        registration_event_record(
            registration=registration, action=RegistrationEventAction.HANDED_OVER, actor=ACTOR_HANDOVER
        )
    logger.info("registration %s handed over to a colleague", registration.pk)
    return registration
