"""A cohort's sessions (issue #6): invitations with .ics, changes,
cancellations and reminders, all through the outbox.

Who is told: the cohort's confirmed participants (in the language they
signed up in) and its advisors (in Dutch), and only once the cohort has
started; before that nothing is sent, and the start (cohort_evaluate →
_queue_start_emails → sessions_invite_participants) sends the upcoming
sessions. Every email has a dedupe key, so each goes out exactly once:

- invitation: one per (session, SEQUENCE, recipient). A change that
  participants are told about raises SEQUENCE, which makes new keys: one
  updated invitation ("Gewijzigd: …") per recipient, same UID.
- cancellation: one per (session, recipient), only to recipients who had an
  invitation for that session.
- reminder: one per (session, date and start time, recipient), so a session
  that is moved is reminded of again.

A change to the notes only is saved without an email: the notes are
background, not the appointment; the self-service page and the next
reminder show them.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import reduce
from operator import or_

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from outbox.models import OutboxMessage
from outbox.services import message_queue

from .history import ACTOR_SYSTEM, cohort_event_record
from .ics import session_attachment
from .models import Cohort, CohortEventAction, CohortSession, CohortStatus

logger = logging.getLogger(__name__)

# What participants are told about when it changes: a new SEQUENCE and an
# updated invitation. Notes are not among them (see the module docstring).
ANNOUNCED_FIELDS = ("topic", "date", "start_time", "end_time", "location", "online_url")
EDITABLE_FIELDS = (*ANNOUNCED_FIELDS, "notes")

TEMPLATE_INVITATION = "session_invitation"
TEMPLATE_CANCELLATION = "session_cancelled"
TEMPLATE_REMINDER = "session_reminder"

# The user-facing texts of the rules below, in one place.
PAST_DATE = _("Deze datum ligt in het verleden. Kies een datum die nog moet komen.")
PAST_START = _("Deze begintijd is vandaag al voorbij. Kies een later tijdstip of een andere dag.")
SESSION_ENDED = _("Deze bijeenkomst is al voorbij; alleen de toelichting kunt u nog aanpassen.")
SESSION_ENDED_CANCEL = _("Een bijeenkomst die al voorbij is, kunt u niet meer aflassen.")
SESSION_CANCELLED = _(
    "Deze bijeenkomst is afgelast en kan niet meer worden gewijzigd. Plan zo nodig een nieuwe bijeenkomst."
)
CANCEL_WITH_CHANGES = _(
    "U kunt een bijeenkomst niet tegelijk aflassen en verplaatsen of wijzigen. Alleen de toelichting "
    "kunt u bij het aflassen aanpassen, bijvoorbeeld met de reden."
)
CANCEL_NEW = _("Een nieuwe bijeenkomst kunt u niet meteen aflassen.")
COHORT_ENDED = _(
    "Dit cohort is afgerond of geannuleerd; er kunnen geen bijeenkomsten meer bij of veranderen."
)

ENDED_COHORT_STATUSES = (CohortStatus.COMPLETED, CohortStatus.CANCELLED)


@dataclass(frozen=True)
class SessionOutcome:
    """What a session service did: the session, and how many emails it queued."""

    session: CohortSession
    emails: int
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipient:
    """A participant (registration) or an advisor (user). `ref` names the
    recipient in dedupe keys: ids only, no addresses."""

    ref: str
    email: str
    language: str
    name: str
    registration: object | None = None

    @property
    def is_advisor(self) -> bool:
        return self.registration is None


def cohort_announces(cohort: Cohort) -> bool:
    """Sessions are sent out only once the cohort has started."""
    return cohort.started_at is not None and cohort.status in (CohortStatus.STARTED, CohortStatus.CLOSED)


def session_recipients(*, cohort: Cohort) -> list[Recipient]:
    """Confirmed, not anonymised participants and the active advisors with
    an address. Two queries."""
    from registrations.models import Registration, RegistrationStatus

    participants = (
        Registration.objects.filter(
            cohort=cohort, status=RegistrationStatus.CONFIRMED, anonymised_at__isnull=True
        )
        .exclude(contact_email="")
        .order_by("pk")
    )
    recipients = [
        Recipient(
            ref=f"registration:{r.pk}",
            email=r.contact_email,
            language=r.language or settings.LANGUAGE_CODE,
            name=r.contact_name,
            registration=r,
        )
        for r in participants
    ]
    for advisor in cohort.advisors.filter(is_active=True).exclude(email="").order_by("pk"):
        recipients.append(
            Recipient(
                ref=f"advisor:{advisor.pk}",
                email=advisor.email,
                language=settings.LANGUAGE_CODE,
                name=advisor.get_full_name() or advisor.get_username(),
            )
        )
    return recipients


# --- Keys --------------------------------------------------------------------


def _invitation_prefix(session: CohortSession) -> str:
    return f"session:{session.pk}:invitation:"


def invitation_key(session: CohortSession, recipient: Recipient) -> str:
    return f"{_invitation_prefix(session)}{session.sequence}:{recipient.ref}"


def cancellation_key(session: CohortSession, recipient: Recipient) -> str:
    return f"session:{session.pk}:cancellation:{recipient.ref}"


def reminder_key(session: CohortSession, recipient: Recipient) -> str:
    return f"session:{session.pk}:reminder:{session.date:%Y%m%d}T{session.start_time:%H%M}:{recipient.ref}"


def _invitations_sent(sessions: list[CohortSession]) -> dict[int, dict[str, set[int]]]:
    """{session id: {recipient ref: {sequences invited}}}, in one query."""
    sent: dict[int, dict[str, set[int]]] = {session.pk: {} for session in sessions}
    if not sessions:
        return sent
    condition = reduce(or_, (Q(dedupe_key__startswith=_invitation_prefix(s)) for s in sessions))
    for key in OutboxMessage.objects.filter(condition).values_list("dedupe_key", flat=True):
        # session:<id>:invitation:<sequence>:<kind>:<id>
        _, session_id, _, sequence, ref = key.split(":", 4)
        sent[int(session_id)].setdefault(ref, set()).add(int(sequence))
    return sent


def _existing_keys(keys: list[str]) -> set[str]:
    if not keys:
        return set()
    return set(OutboxMessage.objects.filter(dedupe_key__in=keys).values_list("dedupe_key", flat=True))


# --- Emails ------------------------------------------------------------------


def _context(session: CohortSession, recipient: Recipient, **extra) -> dict:
    from django.urls import reverse

    with translation.override(recipient.language):
        plan_path = reverse("selfservice:request")
    return {
        "session": session,
        "cohort": session.cohort,
        "lab": session.cohort.lab,
        "name": recipient.name,
        "is_advisor": recipient.is_advisor,
        "site_url": settings.SITE_URL,
        "plan_url": f"{settings.SITE_URL}{plan_path}",
        "admin_url": f"{settings.SITE_URL}/admin/",
        **extra,
    }


def _attachments(session: CohortSession, *, cancel: bool, cache: dict) -> Callable[[str], list[dict]]:
    """The .ics in the recipient's language (the summary holds the lab's
    title), built once per language."""

    def build(language: str) -> list[dict]:
        if language not in cache:
            with translation.override(language):
                cache[language] = [session_attachment(session, cancel=cancel)]
        return cache[language]

    return build


def _queue(session: CohortSession, recipient: Recipient, *, key: str, template: str, **kwargs) -> bool:
    message = message_queue(
        key=key,
        template=template,
        to=recipient.email,
        language=recipient.language,
        registration=recipient.registration,
        cohort=session.cohort,
        **kwargs,
    )
    return message is not None


def _invite(cohort: Cohort, sessions: list[CohortSession]) -> int:
    """Queue the invitation for each session's current SEQUENCE to every
    recipient that has not had it. One query finds what was sent."""
    if not sessions or not cohort_announces(cohort):
        return 0
    recipients = session_recipients(cohort=cohort)
    if not recipients:
        return 0
    sent = _invitations_sent(sessions)
    queued = 0
    for session in sessions:
        session.cohort = cohort
        had = sent[session.pk]
        files = _attachments(session, cancel=False, cache={})
        for recipient in recipients:
            sequences = had.get(recipient.ref, set())
            if session.sequence in sequences:
                continue
            queued += _queue(
                session,
                recipient,
                key=invitation_key(session, recipient),
                template=TEMPLATE_INVITATION,
                # "Gewijzigd" only for whoever had an earlier version.
                context=_context(session, recipient, changed=bool(sequences)),
                attachments=files(recipient.language),
            )
    if queued:
        logger.info("cohort %s: %s session invitations queued", cohort.pk, queued)
    return queued


def _send_cancellations(cohort: Cohort, session: CohortSession) -> int:
    """The cancellation with a METHOD:CANCEL .ics, to the participants and
    advisors who had an invitation for this session."""
    session.cohort = cohort
    invited = _invitations_sent([session])[session.pk]
    if not invited:
        return 0
    files = _attachments(session, cancel=True, cache={})
    queued = 0
    for recipient in session_recipients(cohort=cohort):
        if recipient.ref not in invited:
            continue
        queued += _queue(
            session,
            recipient,
            key=cancellation_key(session, recipient),
            template=TEMPLATE_CANCELLATION,
            context=_context(session, recipient),
            attachments=files(recipient.language),
        )
    return queued


# --- Rules -------------------------------------------------------------------


def _changed_fields(session: CohortSession | None, data: dict) -> list[str]:
    return [
        name
        for name in EDITABLE_FIELDS
        if name in data and (session is None or getattr(session, name) != data[name])
    ]


def session_check(
    *, cohort: Cohort, session: CohortSession | None, data: dict, cancel: bool = False, now=None
) -> None:
    """The rules for planning, changing and calling off a session, as a
    ValidationError with Dutch messages (per field where there is one).
    `session` is the stored session (None for a new one), `data` the new
    values. The admin form calls this for its messages; the services call
    it again as their guard."""
    now = now or timezone.now()
    if cohort.status in ENDED_COHORT_STATUSES:
        raise ValidationError(COHORT_ENDED)
    if session is not None and session.cancelled_at is not None:
        raise ValidationError(SESSION_CANCELLED)
    changed = set(_changed_fields(session, data))
    if cancel:
        if session is None:
            raise ValidationError(CANCEL_NEW)
        if session.ends_at <= now:
            raise ValidationError(SESSION_ENDED_CANCEL)
        if changed - {"notes"}:
            raise ValidationError(CANCEL_WITH_CHANGES)
        return
    if session is not None and session.ends_at <= now:
        if changed - {"notes"}:
            raise ValidationError(SESSION_ENDED)
        return
    if session is None or {"date", "start_time"} & changed:
        day, start = data.get("date"), data.get("start_time")
        today = timezone.localdate(now)
        if day is not None and day < today:
            raise ValidationError({"date": PAST_DATE})
        if day == today and start is not None and start <= timezone.localtime(now).time():
            raise ValidationError({"start_time": PAST_START})


def _lock(cohort_id: int) -> Cohort:
    # The cohort lock orders this with cohort_evaluate: a session planned
    # while the cohort starts is invited by one of the two, never by none.
    from .services import cohort_lock

    return cohort_lock(cohort_id=cohort_id)


def _locked_session(session_id: int) -> tuple[Cohort, CohortSession]:
    cohort_id = CohortSession.objects.values_list("cohort_id", flat=True).get(pk=session_id)
    cohort = _lock(cohort_id)
    session = CohortSession.objects.select_for_update().get(pk=session_id)
    session.cohort = cohort
    return cohort, session


# --- Services ----------------------------------------------------------------


def session_plan(*, cohort_id: int, actor: str = ACTOR_SYSTEM, **data) -> SessionOutcome:
    """Add a session to a cohort's plan; a started cohort's participants and
    advisors get an invitation with the .ics at once."""
    values = {name: data[name] for name in EDITABLE_FIELDS if name in data}
    with transaction.atomic():
        cohort = _lock(cohort_id)
        session_check(cohort=cohort, session=None, data=values)
        session = CohortSession(cohort=cohort, **values)
        session.full_clean()
        session.save()
        emails = _invite(cohort, [session])
        fields = tuple(name for name in EDITABLE_FIELDS if getattr(session, name) not in ("", None))
        cohort_event_record(
            cohort=cohort,
            action=CohortEventAction.SESSION_PLANNED,
            actor=actor,
            details={"session": session.pk, "fields": list(fields), "emails": emails},
        )
    return SessionOutcome(session=session, emails=emails, fields=fields)


def session_update(*, session_id: int, actor: str = ACTOR_SYSTEM, **data) -> SessionOutcome:
    """Change a session. A change participants are told about raises the
    SEQUENCE and sends one updated invitation to each of them; a change of
    the notes only is saved without an email."""
    with transaction.atomic():
        cohort, session = _locked_session(session_id)
        changed = _changed_fields(session, data)
        if not changed:
            return SessionOutcome(session=session, emails=0)
        session_check(cohort=cohort, session=session, data=data)
        for name in changed:
            setattr(session, name, data[name])
        announced = [name for name in changed if name in ANNOUNCED_FIELDS]
        if announced:
            session.sequence += 1
        session.full_clean()
        session.save()
        emails = _invite(cohort, [session]) if announced else 0
        cohort_event_record(
            cohort=cohort,
            action=CohortEventAction.SESSION_CHANGED,
            actor=actor,
            details={"session": session.pk, "fields": changed, "emails": emails},
        )
    return SessionOutcome(session=session, emails=emails, fields=tuple(changed))


def session_cancel(
    *, session_id: int, actor: str = ACTOR_SYSTEM, notes: str | None = None, _check: bool = True
) -> SessionOutcome:
    """Call a session off (sessions that were announced are never deleted):
    whoever had its invitation gets a cancellation with a METHOD:CANCEL
    .ics that takes it out of their calendar. `notes` may give the reason.
    Calling off a session that is off already changes nothing."""
    with transaction.atomic():
        cohort, session = _locked_session(session_id)
        if session.cancelled_at is not None:
            return SessionOutcome(session=session, emails=0)
        data = {} if notes is None else {"notes": notes}
        if _check:
            session_check(cohort=cohort, session=session, data=data, cancel=True)
        fields = ["cancelled_at", *_changed_fields(session, data)]
        if notes is not None:
            session.notes = notes
        session.cancelled_at = timezone.now()
        # A higher SEQUENCE: calendars accept the cancellation as newer
        # than the invitation they hold.
        session.sequence += 1
        session.full_clean()
        session.save()
        emails = _send_cancellations(cohort, session)
        cohort_event_record(
            cohort=cohort,
            action=CohortEventAction.SESSION_CANCELLED,
            actor=actor,
            details={"session": session.pk, "fields": fields, "emails": emails},
        )
    return SessionOutcome(session=session, emails=emails, fields=tuple(fields))


def sessions_call_off_for_cohort(*, cohort: Cohort, actor: str = ACTOR_SYSTEM) -> int:
    """Call off every upcoming session of a cohort that is cancelled as a
    whole, so that the appointments leave the participants' calendars.
    Call with the cohort locked (inside its transaction). Returns the
    number of cancellation emails."""
    now = timezone.now()
    emails = 0
    upcoming = cohort.sessions.filter(cancelled_at__isnull=True, date__gte=timezone.localdate(now))
    for session in upcoming.order_by("date", "start_time", "pk"):
        if session.ends_at > now:
            emails += session_cancel(session_id=session.pk, actor=actor, _check=False).emails
    return emails


def sessions_invite_participants(*, cohort) -> int:
    """Queue the invitations for the cohort's upcoming sessions that its
    participants and advisors have not had yet. Returns how many.

    Called whenever start emails are queued (cohort_evaluate, the actions,
    the sweep), with the cohort locked: participants who join later get the
    upcoming sessions too; everyone else has them already and gets nothing."""
    if not cohort_announces(cohort):
        return 0
    now = timezone.now()
    sessions = [
        session
        for session in cohort.sessions.filter(cancelled_at__isnull=True, date__gte=timezone.localdate(now))
        if session.starts_at > now
    ]
    return _invite(cohort, sessions)


def sessions_send_reminders(*, now=None) -> int:
    """Remind participants and advisors of each session that starts within
    LEERLAB_SESSION_REMINDER_DAYS days (0: no reminders). Run by beat every
    hour; running it again sends nothing more, a moved session is reminded
    of again. Returns the number of reminders queued."""
    days = settings.LEERLAB_SESSION_REMINDER_DAYS
    if days <= 0:
        return 0
    now = now or timezone.now()
    until = now + timedelta(days=days)
    candidates = (
        CohortSession.objects.filter(
            cancelled_at__isnull=True,
            cohort__started_at__isnull=False,
            cohort__status__in=(CohortStatus.STARTED, CohortStatus.CLOSED),
            date__gte=timezone.localdate(now),
            date__lte=timezone.localdate(until),
        )
        .select_related("cohort__lab")
        .order_by("cohort_id", "date", "start_time", "pk")
    )
    due: dict[int, list[CohortSession]] = {}
    for session in candidates:
        if now < session.starts_at <= until:
            due.setdefault(session.cohort_id, []).append(session)
    queued = 0
    for sessions in due.values():
        cohort = sessions[0].cohort
        with transaction.atomic():
            recipients = session_recipients(cohort=cohort)
            keys = {
                (session.pk, recipient.ref): reminder_key(session, recipient)
                for session in sessions
                for recipient in recipients
            }
            existing = _existing_keys(list(keys.values()))
            for session in sessions:
                session.cohort = cohort
                for recipient in recipients:
                    key = keys[(session.pk, recipient.ref)]
                    if key in existing:
                        continue
                    queued += _queue(
                        session,
                        recipient,
                        key=key,
                        template=TEMPLATE_REMINDER,
                        context=_context(session, recipient),
                    )
    if queued:
        logger.info("%s session reminders queued", queued)
    return queued
