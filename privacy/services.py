"""Personal data as the AVG requires (issue #5): export, erasure on request
and the retention period.

What counts as personal data here: the contact details and case texts of a
registration, the emails sent to the contact (and the advisors' emails
that name them), the self-service records of that address and any session
holding it. What stays: which municipality took part in which cohort, with
status and dates, for the Servicepunt's reporting.
"""

import csv
import io
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.html import escape
from django.utils.translation import gettext as _

from leerlab.models import CohortStatus
from outbox.models import OutboxMessage
from registrations.models import Registration, RegistrationStatus

from .models import Anonymisation, AnonymisationReason

logger = logging.getLogger(__name__)

REMOVED = "[verwijderd]"
ANONYMOUS_DOMAIN = "anoniem.invalid"
ENDED_STATUSES = (CohortStatus.COMPLETED, CohortStatus.CANCELLED)
# The apps whose tables hold officers' data; erasure searches every text
# column of their models for the person's address and name.
PERSONAL_DATA_APPS = ("registrations", "outbox", "selfservice", "privacy")

REGISTRATION_EXPORT_FIELDS = (
    "id",
    "lab",
    "cohort",
    "municipality",
    "status",
    "contact_name",
    "contact_email",
    "contact_role",
    "contact_phone",
    "case_title",
    "case_description",
    "learning_needs",
    "privacy_consent_at",
    "privacy_version",
    "language",
    "email_domain_flagged",
    "created_at",
    "token_expires_at",
    "confirmed_at",
    "withdrawn_at",
    "start_notified_at",
)
MESSAGE_EXPORT_FIELDS = (
    "id",
    "registration",
    "kind",
    "to",
    "subject",
    "status",
    "created_at",
    "sent_at",
    "body_text",
)


# --- Months -------------------------------------------------------------------


def _shift_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later (negative: earlier), clamped to the
    month's last day (31 March + 1 month = 30 April)."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    last_day = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def retention_months() -> int:
    return settings.LEERLAB_RETENTION_MONTHS


def cohort_ended_expression():
    """When a cohort ended: its `ended_at` (set when it is completed or
    cancelled, issue #6). Older rows without it fall back to the latest of
    creation, start and close (never later than the real end)."""
    return Coalesce(
        "cohort__ended_at",
        Greatest(
            Coalesce("cohort__closed_at", "cohort__created_at"),
            Coalesce("cohort__started_at", "cohort__created_at"),
            F("cohort__created_at"),
        ),
    )


# --- Export -------------------------------------------------------------------


def _value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _registration_row(registration: Registration) -> dict:
    row = {}
    for name in REGISTRATION_EXPORT_FIELDS:
        if name == "lab":
            row[name] = registration.cohort.lab.title
        elif name == "cohort":
            row[name] = registration.cohort.number
        elif name == "municipality":
            row[name] = registration.municipality.name
        else:
            row[name] = _value(getattr(registration, name))
    return row


def _message_row(message: OutboxMessage) -> dict:
    row = {}
    for name in MESSAGE_EXPORT_FIELDS:
        row[name] = message.registration_id if name == "registration" else _value(getattr(message, name))
    return row


def _event_model():
    """The self-service audit model, when it is installed (issue #5, built
    alongside this app)."""
    try:
        return apps.get_model("registrations", "RegistrationEvent")
    except LookupError:
        return None


def _model_row(obj: models.Model) -> dict:
    row = {}
    for field in obj._meta.concrete_fields:
        value = getattr(obj, field.attname)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif not isinstance(value, (str, int, float, bool, type(None), dict, list)):
            value = str(value)
        row[field.name] = value
    return row


def person_registrations(*, email: str):
    """The registrations made with this address, oldest first."""
    email = (email or "").strip()
    if not email:
        return Registration.objects.none()
    return (
        Registration.objects.filter(contact_email__iexact=email)
        .select_related("cohort__lab", "municipality")
        .order_by("created_at", "pk")
    )


def personal_data_export(*, email: str) -> dict:
    """Everything the portal holds about this email address: the
    registrations made with it (with the moment of consent and the version
    of the privacy statement), the emails sent to it and, when present,
    the self-service history of those registrations."""
    email = (email or "").strip()
    registrations = list(person_registrations(email=email))
    messages = list(
        OutboxMessage.objects.filter(to__iexact=email).order_by("created_at", "pk") if email else []
    )
    data = {
        "email": email,
        "exported_at": timezone.now().isoformat(),
        "registrations": [_registration_row(r) for r in registrations],
        "messages": [_message_row(m) for m in messages],
    }
    event_model = _event_model()
    if event_model is not None:
        events = event_model.objects.filter(registration__in=[r.pk for r in registrations]).order_by("pk")
        data["events"] = [_model_row(e) for e in events]
    return data


def _csv_cell(value) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet runs a cell that starts like a formula; quote it.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def personal_data_csv(data: dict) -> str:
    """The export as one CSV file: a section per kind of data, each with its
    own title line and header row, separated by an empty line."""
    sections = [
        (_("Aanmeldingen"), list(REGISTRATION_EXPORT_FIELDS), data["registrations"]),
        (_("E-mails"), list(MESSAGE_EXPORT_FIELDS), data["messages"]),
    ]
    if "events" in data:
        header = list(data["events"][0]) if data["events"] else []
        sections.append((_("Geschiedenis"), header, data["events"]))
    out = io.StringIO()
    writer = csv.writer(out)
    for position, (title, header, rows) in enumerate(sections):
        if position:
            writer.writerow([])
        writer.writerow([title])
        writer.writerow(header)
        for row in rows:
            writer.writerow([_csv_cell(row.get(name)) for name in header])
    return out.getvalue()


# --- Anonymising --------------------------------------------------------------


# Shorter names are not searched for elsewhere: "Li" would wipe every
# "li" in every text. The person's own registration is blanked regardless.
MIN_NEEDLE_LENGTH = 4
# Another person's own contact details are theirs, even when they share a
# name with the person being forgotten.
NOT_SCRUBBED = {
    ("registrations", "registration"): {"contact_name", "contact_email", "contact_phone", "contact_role"}
}


def _needles_for(registrations) -> set[str]:
    needles = set()
    for registration in registrations:
        for value in (registration.contact_email, registration.contact_name, registration.contact_phone):
            value = (value or "").strip()
            if value:
                needles.add(value)
                needles.add(escape(value))
    return needles


def _replace(value, pattern: re.Pattern):
    if isinstance(value, str):
        return pattern.sub(REMOVED, value)
    if isinstance(value, list):
        return [_replace(item, pattern) for item in value]
    if isinstance(value, dict):
        return {key: _replace(item, pattern) for key, item in value.items()}
    return value


def _text_fields(model) -> list[models.Field]:
    skipped = NOT_SCRUBBED.get((model._meta.app_label, model._meta.model_name), set())
    return [
        field
        for field in model._meta.concrete_fields
        if isinstance(field, (models.CharField, models.TextField, models.JSONField))
        and not field.choices
        and field.name not in skipped
    ]


def _scrub(queryset, needles: set[str]) -> int:
    """Replace every occurrence of the needles in the text columns of the
    rows of `queryset` that contain one. Returns the number of rows changed."""
    needles = {n for n in needles if len(n) >= MIN_NEEDLE_LENGTH}
    if not needles:
        return 0
    pattern = re.compile(
        "|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)), re.IGNORECASE
    )
    fields = _text_fields(queryset.model)
    if not fields:
        return 0
    condition = Q()
    for field in fields:
        for needle in needles:
            condition |= Q(**{f"{field.name}__icontains": needle})
    changed = 0
    for obj in queryset.filter(condition).select_for_update():
        updates = []
        for field in fields:
            old = getattr(obj, field.attname)
            new = _replace(old, pattern)
            if new != old:
                setattr(obj, field.attname, new)
                updates.append(field.name)
        if updates:
            obj.save(update_fields=updates)
            changed += 1
    return changed


def _anonymise(registration: Registration, *, reason: str, now) -> None:
    """Blank the contact details and case texts of one (locked)
    registration; municipality, cohort, status and dates stay. Saved with
    update() rather than full_clean(): the placeholders are meant to fail
    no rule but an empty name would."""
    values = {
        "contact_name": "",
        "contact_email": f"verwijderd-{registration.pk}@{ANONYMOUS_DOMAIN}",
        "contact_role": "",
        "contact_phone": "",
        "case_title": REMOVED,
        "case_description": REMOVED,
        "learning_needs": "",
    }
    if registration.status == RegistrationStatus.PENDING:
        # The confirmation link must not give a seat to a contact nobody
        # knows any more; the sweep deletes the signup once it expired.
        values["token_expires_at"] = min(registration.token_expires_at, now)
    if any(f.name == "anonymised_at" for f in Registration._meta.concrete_fields):
        values["anonymised_at"] = now
    Registration.objects.filter(pk=registration.pk).update(**values)
    Anonymisation.objects.update_or_create(registration=registration, defaults={"reason": reason})


def _scrub_message(queryset) -> int:
    """The emails to the person themselves: address and contents go."""
    count = 0
    for message in queryset.select_for_update():
        message.to = f"verwijderd-{message.pk}@{ANONYMOUS_DOMAIN}"
        message.subject = REMOVED
        message.body_text = REMOVED
        message.body_html = ""
        message.last_error = ""
        message.save(update_fields=["to", "subject", "body_text", "body_html", "last_error"])
        count += 1
    return count


def _delete_selfservice_rows(*, email: str | None = None, registration_ids=()) -> int:
    """The self-service app's records (access links, handovers), whatever
    they are called: every row of that app with an email column holding
    this address or a link to one of these registrations."""
    if not apps.is_installed("selfservice"):
        return 0
    deleted = 0
    for model in apps.get_app_config("selfservice").get_models():
        condition = Q(pk__in=[])
        for field in model._meta.concrete_fields:
            if email and isinstance(field, models.EmailField):
                condition |= Q(**{f"{field.name}__iexact": email})
            elif field.is_relation and field.related_model is Registration:
                condition |= Q(**{f"{field.name}__in": list(registration_ids)})
        deleted += model._default_manager.filter(condition).delete()[0]
    return deleted


def _record_event(registration: Registration, *, actor: str, reason: str) -> None:
    """The registration's history says it was anonymised and why."""
    if _event_model() is None:
        return
    from registrations import services as registration_services

    record = getattr(registration_services, "registration_event_record", None)
    if record is not None:
        record(registration=registration, action="anonymised", actor=actor, details={"reason": reason})


def _delete_sessions(needles: set[str]) -> int:
    """Sessions whose data holds the person's address or name (the signup
    form keeps the contact details in the session to pre-fill the next
    one). Session data is encoded, so each is decoded and read."""
    engine = import_module(settings.SESSION_ENGINE)
    store_class = engine.SessionStore
    if not hasattr(store_class, "get_model_class"):
        return 0
    lowered = [n.lower() for n in needles if len(n) >= MIN_NEEDLE_LENGTH]
    store = store_class()
    doomed = []
    for key, encoded in (
        store_class.get_model_class().objects.values_list("session_key", "session_data").iterator()
    ):
        text = repr(store.decode(encoded)).lower()
        if any(needle in text for needle in lowered):
            doomed.append(key)
    for key in doomed:
        store_class(session_key=key).delete()
    return len(doomed)


def person_erase(*, email: str, actor: str = "") -> int:
    """Forget a person at once (the AVG's right to erasure): anonymise every
    registration made with this address, scrub the emails sent to it and
    every mention of their address, name or phone number in the portal's
    tables, delete their self-service records and sessions. Which
    municipality took part in which cohort stays. Returns the number of
    registrations anonymised. `actor` says who asked (for the log; no
    personal data)."""
    email = (email or "").strip()
    if not email:
        return 0
    now = timezone.now()
    with transaction.atomic():
        registrations = list(Registration.objects.select_for_update().filter(contact_email__iexact=email))
        needles = _needles_for(registrations) | {email}
        _delete_selfservice_rows(email=email, registration_ids=[r.pk for r in registrations])
        for registration in registrations:
            _anonymise(registration, reason=AnonymisationReason.REQUEST, now=now)
        _scrub_message(OutboxMessage.objects.filter(to__iexact=email))
        for app_label in PERSONAL_DATA_APPS:
            if apps.is_installed(app_label):
                for model in apps.get_app_config(app_label).get_models():
                    if not model._meta.proxy:
                        _scrub(model._default_manager.all(), needles)
        # After the scrub: the event names nobody.
        for registration in registrations:
            _record_event(registration, actor=actor or "officer", reason=AnonymisationReason.REQUEST)
        _delete_sessions(needles)
    logger.info("erased personal data of %s registrations (asked by %s)", len(registrations), actor or "-")
    return len(registrations)


# --- Retention ----------------------------------------------------------------


def retention_cutoff(*, now=None) -> datetime:
    return _shift_months(now or timezone.now(), -retention_months())


def _due_for_retention(*, now=None):
    return (
        Registration.objects.filter(cohort__status__in=ENDED_STATUSES, anonymisation__isnull=True)
        .annotate(cohort_ended_at=cohort_ended_expression())
        .filter(cohort_ended_at__lte=retention_cutoff(now=now))
    )


def retention_run(*, now=None, batch_size: int = 500) -> dict:
    """Anonymise the registrations of cohorts that were completed or
    cancelled longer than LEERLAB_RETENTION_MONTHS ago, with the emails sent
    for them and the mentions of their contacts in the advisors' emails of
    those cohorts. Idempotent: an anonymised registration has its
    Anonymisation row and is not due again. Run daily by Celery beat."""
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            ids = list(_due_for_retention(now=now).order_by("pk").values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            registrations = list(
                Registration.objects.select_for_update(of=("self",))
                .filter(pk__in=ids, anonymisation__isnull=True)
                .order_by("pk")
            )
            needles = _needles_for(registrations)
            cohort_ids = {r.cohort_id for r in registrations}
            _delete_selfservice_rows(registration_ids=ids)
            for registration in registrations:
                _anonymise(registration, reason=AnonymisationReason.RETENTION, now=now)
            _scrub_message(OutboxMessage.objects.filter(registration_id__in=ids))
            _scrub(OutboxMessage.objects.filter(registration__isnull=True, cohort_id__in=cohort_ids), needles)
            event_model = _event_model()
            if event_model is not None:
                _scrub(event_model._default_manager.filter(registration_id__in=ids), needles)
            for registration in registrations:
                _record_event(registration, actor="system", reason=AnonymisationReason.RETENTION)
            total += len(registrations)
            if not registrations:
                break
    if total:
        logger.info("retention: anonymised %s registrations", total)
    return {"anonymised": total}


@dataclass(frozen=True)
class PlannedRemoval:
    registration: Registration
    planned_at: datetime | None
    rule: str


def planned_removal(registration: Registration, *, cohort_ended_at: datetime | None = None) -> PlannedRemoval:
    """When this registration's personal data goes, and by which rule."""
    if registration.status == RegistrationStatus.PENDING and registration.cohort.status not in ENDED_STATUSES:
        return PlannedRemoval(
            registration,
            registration.token_expires_at,
            _("niet bevestigd: verwijderd zodra de bevestigingslink verloopt"),
        )
    if registration.cohort.status in ENDED_STATUSES:
        ended = cohort_ended_at or getattr(registration, "cohort_ended_at", None)
        if ended is None:
            cohort = registration.cohort
            ended = cohort.ended_at or max(
                d for d in (cohort.closed_at, cohort.started_at, cohort.created_at) if d is not None
            )
        return PlannedRemoval(
            registration,
            _shift_months(ended, retention_months()),
            _("cohort afgerond of geannuleerd: geanonimiseerd na de bewaartermijn"),
        )
    return PlannedRemoval(
        registration,
        None,
        _("cohort loopt nog: geanonimiseerd na de bewaartermijn, gerekend vanaf de afronding"),
    )


def retention_schedule_queryset():
    """The registrations that still hold personal data, soonest removal
    first where known."""
    return (
        Registration.objects.filter(anonymisation__isnull=True)
        .select_related("cohort__lab", "municipality")
        .annotate(cohort_ended_at=cohort_ended_expression())
        .order_by("cohort__status", "cohort_ended_at", "token_expires_at", "pk")
    )


def retention_schedule() -> list[PlannedRemoval]:
    """What will be removed when, for the advisors (issue #5)."""
    return [planned_removal(r) for r in retention_schedule_queryset()]
