"""A message from an advisor to a whole cohort (issue #6).

The advisor writes a subject and a plain-text body; every recipient gets
them as written inside the portal's usual frame (greeting, signature, why
they receive it), in the language they signed up in, through the outbox:
one email per recipient, each at most once. Choices:

- Recipients: the confirmed registrations of the cohort, and its waitlist
  when the advisor asks; never pending signups (address not confirmed),
  withdrawn or anonymised registrations.
- Each of the cohort's advisors gets a copy in Dutch, with the list of
  recipients.
- Cancelled and completed cohorts may be written to (a follow-up, a
  survey); once their registrations are anonymised there is nobody left
  to write to and the send is refused as having no recipients.
- The history: one CohortEvent MESSAGE_SENT per message (ids and counts).
  No RegistrationEvent: the registrations did not change, and the outbox
  keeps one row per recipient linked to its registration.
- Exactly once: the form carries a key made when it was first shown
  (CohortMessage.form_key, unique). A second submit of the same form finds
  the key, or loses the race on the unique index, and sends nothing.
"""

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from outbox.services import message_queue, render_email
from registrations.models import Registration, RegistrationStatus
from registrations.validators import no_control_characters, no_control_characters_multiline

from .errors import LeerLabError
from .history import actor_for, cohort_event_record
from .models import Cohort, CohortEventAction, CohortMessage

logger = logging.getLogger(__name__)

TEMPLATE = "cohort_message"
ADVISOR_TEMPLATE = "cohort_message_advisor"
SUBJECT_MAX = CohortMessage._meta.get_field("subject").max_length
BODY_MAX = 5000


class NoRecipients(LeerLabError):
    message = _(
        "Dit cohort heeft geen deelnemers die dit bericht kunnen ontvangen (bevestigd, of op de wachtlijst "
        "als u die aanvinkt). Er is niets verstuurd."
    )


# --- Validation: the form uses these, and the service checks again -----------


def validate_subject(value: str) -> None:
    """One line, no invisible characters: it becomes an email header."""
    if "\n" in value or "\r" in value:
        raise ValidationError(_("Het onderwerp moet op één regel staan."), code="newline")
    no_control_characters(value)


def validate_body(value: str) -> None:
    no_control_characters_multiline(value)


def _validate(*, subject: str, body: str) -> None:
    errors = {}
    for field, value, validators in (
        ("subject", subject, [validate_subject, MaxLengthValidator(SUBJECT_MAX)]),
        ("body", body, [validate_body, MaxLengthValidator(BODY_MAX)]),
    ):
        if not value.strip():
            errors[field] = [ValidationError(_("Dit veld is verplicht."), code="required")]
            continue
        for validator in validators:
            try:
                validator(value)
            except ValidationError as exc:
                errors.setdefault(field, []).extend(exc.error_list)
    if errors:
        raise ValidationError(errors)


# --- Reads ---------------------------------------------------------------------


def cohort_message_recipients(*, cohort: Cohort, include_waitlist: bool) -> list[Registration]:
    """Who receives a message to this cohort, seats first, then the
    waitlist, each by municipality name. One query."""
    statuses = [RegistrationStatus.CONFIRMED]
    if include_waitlist:
        statuses.append(RegistrationStatus.WAITLISTED)
    return list(
        Registration.objects.filter(cohort=cohort, status__in=statuses, anonymised_at__isnull=True)
        .select_related("municipality")
        .order_by("status", "municipality__name", "pk")
    )


def cohort_message_advisors(*, cohort: Cohort) -> list:
    return list(cohort.advisors.exclude(email="").order_by("first_name", "last_name", "username", "pk"))


def cohort_message_for_key(*, form_key: uuid.UUID) -> CohortMessage | None:
    return CohortMessage.objects.filter(form_key=form_key).select_related("cohort").first()


def sender_name(user) -> str:
    """How the sender signs: the full name, else nothing (participants do
    not need the advisor's username)."""
    if user is None:
        return ""
    return (user.get_full_name() or "").strip()


def _participant_context(
    *, cohort: Cohort, registration: Registration, subject: str, body: str, sender
) -> dict:
    return {
        "site_url": settings.SITE_URL,
        "lab": cohort.lab,
        "cohort": cohort,
        "registration": registration,
        "waitlisted": registration.status == RegistrationStatus.WAITLISTED,
        "subject": subject,
        "body": body,
        "sender_name": sender_name(sender),
    }


def _advisor_context(
    *, cohort: Cohort, advisor, recipients: list[Registration], subject: str, body: str, sender
) -> dict:
    return {
        "site_url": settings.SITE_URL,
        "lab": cohort.lab,
        "cohort": cohort,
        "advisor": advisor,
        "recipients": recipients,
        "subject": subject,
        "body": body,
        "sender_name": sender_name(sender) or (sender.get_username() if sender else ""),
    }


@dataclass(frozen=True)
class MessagePreview:
    subject: str
    text: str
    html: str
    language: str
    sample: Registration
    recipients: list[Registration]
    advisors: list


def cohort_message_preview(
    *, cohort: Cohort, subject: str, body: str, include_waitlist: bool, sender
) -> MessagePreview:
    """The email exactly as the first recipient will get it (in their
    language), and who else gets it. Sends nothing."""
    _validate(subject=subject, body=body)
    recipients = cohort_message_recipients(cohort=cohort, include_waitlist=include_waitlist)
    if not recipients:
        raise NoRecipients()
    sample = recipients[0]
    rendered = render_email(
        template=TEMPLATE,
        context=_participant_context(
            cohort=cohort, registration=sample, subject=subject, body=body, sender=sender
        ),
        language=sample.language,
    )
    return MessagePreview(
        *rendered,
        language=sample.language,
        sample=sample,
        recipients=recipients,
        advisors=cohort_message_advisors(cohort=cohort),
    )


# --- Write ---------------------------------------------------------------------


@dataclass(frozen=True)
class MessageSendResult:
    message: CohortMessage
    already_sent: bool
    recipients: int = 0
    advisor_copies: int = 0


def cohort_message_send(
    *,
    cohort_id: int,
    subject: str,
    body: str,
    include_waitlist: bool,
    form_key: uuid.UUID,
    sent_by,
) -> MessageSendResult:
    """Queue the message for every recipient and a copy for every advisor,
    in one transaction with the CohortMessage that makes it happen once.
    Raises NoRecipients (nothing stored) and ValidationError."""
    _validate(subject=subject, body=body)
    existing = cohort_message_for_key(form_key=form_key)
    if existing is not None:
        return MessageSendResult(message=existing, already_sent=True)
    with transaction.atomic():
        cohort = Cohort.objects.select_related("lab").get(pk=cohort_id)
        recipients = cohort_message_recipients(cohort=cohort, include_waitlist=include_waitlist)
        if not recipients:
            raise NoRecipients()
        message = CohortMessage(
            cohort=cohort,
            subject=subject,
            body=body,
            include_waitlist=include_waitlist,
            form_key=form_key,
            sent_by=sent_by,
            recipients=len(recipients),
        )
        # The unique index decides, not a check before it: of two submits
        # at the same moment one inserts, the other finds the key taken.
        message.full_clean(validate_unique=False)
        try:
            with transaction.atomic():
                message.save()
        except IntegrityError:
            existing = cohort_message_for_key(form_key=form_key)
            if existing is None:
                raise
            return MessageSendResult(message=existing, already_sent=True)

        for registration in recipients:
            message_queue(
                key=f"cohort_message:{message.pk}:registration:{registration.pk}",
                template=TEMPLATE,
                to=registration.contact_email,
                context=_participant_context(
                    cohort=cohort, registration=registration, subject=subject, body=body, sender=sent_by
                ),
                language=registration.language,
                registration=registration,
                cohort=cohort,
            )
        advisors = cohort_message_advisors(cohort=cohort)
        for advisor in advisors:
            message_queue(
                key=f"cohort_message:{message.pk}:advisor:{advisor.pk}",
                template=ADVISOR_TEMPLATE,
                to=advisor.email,
                context=_advisor_context(
                    cohort=cohort,
                    advisor=advisor,
                    recipients=recipients,
                    subject=subject,
                    body=body,
                    sender=sent_by,
                ),
                language=settings.LANGUAGE_CODE,
                cohort=cohort,
            )
        cohort_event_record(
            cohort=cohort,
            action=CohortEventAction.MESSAGE_SENT,
            actor=actor_for(sent_by),
            details={
                "message": message.pk,
                "recipients": len(recipients),
                "advisor_copies": len(advisors),
                "include_waitlist": include_waitlist,
            },
        )
    logger.info("cohort %s: message %s queued for %s recipients", cohort.pk, message.pk, len(recipients))
    return MessageSendResult(
        message=message, already_sent=False, recipients=len(recipients), advisor_copies=len(advisors)
    )
