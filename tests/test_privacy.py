"""Personal data as the AVG requires (issue #5): export, erasure on request,
the retention period and the privacy statement that says so."""

import csv
import io
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.db import models
from django.test import Client
from django.utils import timezone

from leerlab.models import Cohort, CohortStatus
from leerlab.services import cohort_start_now
from outbox.models import OutboxMessage
from privacy import services
from privacy.models import Anonymisation, AnonymisationReason
from privacy.services import (
    _shift_months,
    person_erase,
    personal_data_export,
    retention_run,
    retention_schedule,
)
from privacy.tasks import run_retention
from registrations.models import Registration, RegistrationStatus
from registrations.services import registration_confirm

from .factories import CohortFactory, RegistrationFactory, UserFactory

NAME = "Wilhelmina Zonneveld-Oosterbeek"
EMAIL = "w.zonneveld@haarlem.nl"
PHONE = "023 511 4477"
OTHER_NAME = "Pieter Brandsma-Koopman"
OTHER_EMAIL = "p.brandsma@zandvoort.nl"


def signup_data(**overrides) -> dict:
    data = {
        "municipality": "GM0392",  # Haarlem
        "contact_name": NAME,
        "contact_email": EMAIL,
        "contact_role": "Beleidsmedewerker warmtetransitie",
        "contact_phone": PHONE,
        "case_title": "Wijkaanpak Schalkwijk",
        "case_description": "Wij willen Schalkwijk aardgasvrij maken. Vragen aan Wilhelmina Zonneveld-Oosterbeek.",
        "learning_needs": "Hoe betrekken we huurders?",
        "privacy_consent": "on",
    }
    data.update(overrides)
    return data


def verify(client: Client, email: str, *, valid_for: int = 600) -> None:
    """What the self-service app does once the emailed link was opened."""
    session = client.session
    session["selfservice_email"] = email
    session["selfservice_until"] = time.time() + valid_for
    session.save()


def signup_and_confirm(client: Client, lab, **overrides) -> Registration:
    response = client.post(f"/leerlabs/{lab.slug}/aanmelden/", signup_data(**overrides))
    assert response.status_code == 302, response.content
    email = overrides.get("contact_email", EMAIL)
    message = OutboxMessage.objects.get(to=email, kind="confirm_request")
    token = re.search(r"/aanmelding/bevestig/([^/\s]+)/", message.body_text).group(1)
    registration_confirm(token=token)
    return Registration.objects.get(contact_email=email, cohort__lab=lab)


def find_everywhere(*needles: str) -> list[str]:
    """Every place in the database that holds one of the needles: each text
    column of every model (JSON included), and every decoded session."""
    hits = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue
        for field in model._meta.concrete_fields:
            if not isinstance(field, (models.CharField, models.TextField, models.JSONField)):
                continue
            for needle in needles:
                if model._default_manager.filter(**{f"{field.name}__icontains": needle}).exists():
                    hits.append(f"{model._meta.label}.{field.name} ~ {needle}")
    for session in Session.objects.all():
        decoded = repr(session.get_decoded()).lower()
        hits.extend(f"session {session.pk} ~ {n}" for n in needles if n.lower() in decoded)
    return hits


@pytest.fixture
def person(client, lab, cohort):
    """Someone who signed up through the form (session, confirmation email),
    got a seat, whose cohort started (their name and address are in the
    advisor's email), and who holds a self-service access link."""
    registration = signup_and_confirm(client, lab)
    for _ in range(2):
        RegistrationFactory(cohort=cohort, confirmed=True)
    cohort.advisors.add(UserFactory(staff=True, email="adviseur@servicepunt.example"))
    cohort_start_now(cohort_id=cohort.pk)
    if apps.is_installed("selfservice"):
        access_link = apps.get_model("selfservice", "AccessLink")
        access_link.objects.create(
            email=EMAIL, token_hash="a" * 64, expires_at=timezone.now() + timedelta(minutes=30)
        )
    registration.refresh_from_db()
    return registration


@pytest.fixture
def other(db):
    return RegistrationFactory(
        contact_name=OTHER_NAME, contact_email=OTHER_EMAIL, confirmed=True, cohort=CohortFactory()
    )


# --- Export -------------------------------------------------------------------


def test_export_holds_all_of_the_persons_data_and_nobody_elses(person, other):
    """Issue #5: the export has every registration field, the moment and
    version of consent, and the emails sent to the address."""
    data = personal_data_export(email=EMAIL.upper())

    assert [r["id"] for r in data["registrations"]] == [person.pk]
    row = data["registrations"][0]
    assert row["contact_name"] == NAME
    assert row["contact_phone"] == PHONE
    assert row["municipality"] == "Haarlem"
    assert row["status"] == RegistrationStatus.CONFIRMED
    assert row["privacy_version"] == settings.LEERLAB_PRIVACY_VERSION
    assert datetime.fromisoformat(row["privacy_consent_at"]) == person.privacy_consent_at
    kinds = {m["kind"] for m in data["messages"]}
    assert {"confirm_request", "seat_confirmed", "lab_started"} <= kinds
    assert all(m["to"] == EMAIL for m in data["messages"])
    assert OTHER_EMAIL not in json.dumps(data) and OTHER_NAME not in json.dumps(data)
    if "events" in data:
        assert data["events"] and {e["registration"] for e in data["events"]} == {person.pk}


def test_export_json_download(client, person, other):
    verify(client, EMAIL)

    response = client.get("/privacy/export.json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="leerlab-mijn-gegevens-')
    assert response["Cache-Control"].startswith("max-age=0")
    data = json.loads(response.content)
    assert data["registrations"][0]["contact_email"] == EMAIL
    assert data["registrations"][0]["privacy_version"] == settings.LEERLAB_PRIVACY_VERSION
    assert OTHER_EMAIL.encode() not in response.content


def test_export_csv_download(client, person, other):
    verify(client, EMAIL)

    response = client.get("/privacy/export.csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].endswith('.csv"')
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["Aanmeldingen"]
    header = rows[1]
    registration = dict(zip(header, rows[2], strict=True))
    assert registration["contact_name"] == NAME
    assert registration["privacy_version"] == settings.LEERLAB_PRIVACY_VERSION
    assert registration["privacy_consent_at"] == person.privacy_consent_at.isoformat()
    assert ["E-mails"] in rows
    assert OTHER_EMAIL.encode() not in response.content


def test_csv_cells_that_look_like_formulas_are_quoted(db):
    RegistrationFactory(contact_email=EMAIL, case_title="=HYPERLINK(1)")

    content = services.personal_data_csv(personal_data_export(email=EMAIL))

    assert "'=HYPERLINK(1)" in content


@pytest.mark.parametrize("path", ["/privacy/export.json", "/privacy/export.csv", "/privacy/vergeet-mij/"])
def test_views_need_a_verified_address(client, person, path):
    """Issue #5: without the self-service session nobody gets the data."""
    response = client.get(path)

    assert response.status_code == 403
    assert EMAIL.encode() not in response.content
    assert NAME.encode() not in response.content


@pytest.mark.parametrize("path", ["/privacy/export.json", "/privacy/vergeet-mij/"])
def test_an_expired_self_service_session_is_not_enough(client, person, path):
    verify(client, EMAIL, valid_for=-1)

    assert client.get(path).status_code == 403
    assert client.post("/privacy/vergeet-mij/").status_code == 403
    assert Registration.objects.get(pk=person.pk).contact_email == EMAIL


# --- Erasure ------------------------------------------------------------------


def assert_forgotten(person: Registration) -> None:
    assert find_everywhere(EMAIL, NAME, PHONE) == []
    registration = Registration.objects.get(pk=person.pk)
    # The municipality-level fact stays for the Servicepunt's reporting.
    assert registration.municipality.name == "Haarlem"
    assert registration.cohort_id == person.cohort_id
    assert registration.status == RegistrationStatus.CONFIRMED
    assert registration.privacy_consent_at == person.privacy_consent_at
    # Advisors see that it happened, not what it was.
    assert Anonymisation.objects.get(registration=registration).reason == AnonymisationReason.REQUEST
    if hasattr(registration, "anonymised_at"):
        assert registration.anonymised_at is not None


def test_erasure_leaves_the_person_nowhere_in_the_database(person, other):
    """Issue #5 done-when: after erasure a search of every table (and every
    session) for the person's email, name and phone finds nothing."""
    assert find_everywhere(EMAIL, NAME, PHONE), "the search must find the person before erasure"
    advisor_mail = OutboxMessage.objects.get(kind="lab_started_advisor")
    assert NAME in advisor_mail.body_text

    assert person_erase(email=EMAIL, actor="test") == 1

    assert_forgotten(person)
    if apps.is_installed("selfservice"):
        assert not apps.get_model("selfservice", "AccessLink").objects.exists()
    advisor_mail.refresh_from_db()
    assert "[verwijderd]" in advisor_mail.body_text
    assert advisor_mail.to == "adviseur@servicepunt.example"
    # Someone else's data is untouched.
    other.refresh_from_db()
    assert (other.contact_name, other.contact_email) == (OTHER_NAME, OTHER_EMAIL)
    assert find_everywhere(OTHER_EMAIL, OTHER_NAME)


def test_erasure_records_an_event_without_contents(person):
    person_erase(email=EMAIL, actor="test")

    if apps.is_installed("selfservice") or hasattr(person, "events"):
        event = person.events.get(action="anonymised")
        assert event.details == {"reason": "request"}


def test_erasure_through_the_page(client, person, other):
    """Issue #5: the "forget me" page warns that the municipality keeps its
    seat, and its POST erases at once and ends the session."""
    verify(client, EMAIL)

    page = client.get("/privacy/vergeet-mij/")
    assert page.status_code == 200
    assert "Uw gemeente blijft deelnemen" in page.content.decode()
    assert "Haarlem" in page.content.decode()

    response = client.post("/privacy/vergeet-mij/")

    assert response.status_code == 302
    assert response.url == "/privacy/vergeet-mij/klaar/"
    assert "selfservice_email" not in client.session
    assert client.get(response.url).status_code == 200
    assert_forgotten(person)
    assert client.get("/privacy/export.json").status_code == 403


def test_erasure_of_a_pending_signup_kills_its_link(db, cohort):
    registration = RegistrationFactory(cohort=cohort, contact_email=EMAIL, contact_name=NAME)

    person_erase(email=EMAIL, actor="test")

    registration.refresh_from_db()
    assert registration.token_expires_at <= timezone.now()
    assert find_everywhere(EMAIL, NAME) == []


def test_erasure_without_an_address_does_nothing(person):
    assert person_erase(email="  ", actor="test") == 0
    assert Registration.objects.get(pk=person.pk).contact_email == EMAIL


# --- Retention ----------------------------------------------------------------


def ended_cohort(*, months_ago: int, status=CohortStatus.COMPLETED) -> Cohort:
    now = timezone.now()
    cohort = CohortFactory()
    Cohort.objects.filter(pk=cohort.pk).update(
        status=status,
        created_at=_shift_months(now, -months_ago - 3),
        started_at=_shift_months(now, -months_ago - 2),
        closed_at=_shift_months(now, -months_ago),
    )
    cohort.refresh_from_db()
    return cohort


def registration_with_mail(cohort: Cohort, **kwargs) -> Registration:
    registration = RegistrationFactory(cohort=cohort, confirmed=True, **kwargs)
    OutboxMessage.objects.create(
        dedupe_key=f"test:{registration.pk}",
        kind="seat_confirmed",
        to=registration.contact_email,
        subject="Plaats bevestigd",
        body_text=f"Beste {registration.contact_name},",
        registration=registration,
        cohort=cohort,
    )
    return registration


def test_retention_anonymises_after_twelve_months_and_not_before(db):
    """Issue #5: a cohort completed 13 months ago loses its personal data,
    one completed 11 months ago keeps it; running again changes nothing."""
    old = registration_with_mail(ended_cohort(months_ago=13), contact_name=NAME, contact_email=EMAIL)
    cancelled = registration_with_mail(ended_cohort(months_ago=14, status=CohortStatus.CANCELLED))
    recent = registration_with_mail(
        ended_cohort(months_ago=11), contact_name=OTHER_NAME, contact_email=OTHER_EMAIL
    )
    running = registration_with_mail(CohortFactory(started=True))
    Cohort.objects.filter(pk=running.cohort_id).update(created_at=timezone.now() - timedelta(days=800))

    assert retention_run() == {"anonymised": 2}

    assert find_everywhere(EMAIL, NAME) == []
    assert Anonymisation.objects.get(registration=old).reason == AnonymisationReason.RETENTION
    assert Anonymisation.objects.filter(registration=cancelled).exists()
    old.refresh_from_db()
    assert old.status == RegistrationStatus.CONFIRMED and old.municipality_id
    for kept in (recent, running):
        kept.refresh_from_db()
        assert "@anoniem.invalid" not in kept.contact_email
    assert OutboxMessage.objects.get(registration=recent).body_text == f"Beste {OTHER_NAME},"
    assert retention_run() == {"anonymised": 0}


def test_retention_period_is_configurable(db, settings):
    settings.LEERLAB_RETENTION_MONTHS = 6
    recent = registration_with_mail(ended_cohort(months_ago=7))

    retention_run()

    assert Anonymisation.objects.filter(registration=recent).exists()


def test_retention_task_runs_daily(db):
    registration_with_mail(ended_cohort(months_ago=13))

    assert run_retention.delay().get() == {"anonymised": 1}
    entry = settings.CELERY_BEAT_SCHEDULE["privacy-retention"]
    assert entry["task"] == "privacy.tasks.run_retention"
    assert entry["schedule"] == 24 * 60 * 60


def test_schedule_lists_what_goes_when(db):
    """Issue #5: advisors see per registration when its data goes."""
    ended = ended_cohort(months_ago=11)
    waiting = registration_with_mail(ended)
    pending = RegistrationFactory(cohort=CohortFactory())
    running = RegistrationFactory(cohort=CohortFactory(started=True), confirmed=True)
    done = registration_with_mail(ended_cohort(months_ago=13))
    retention_run()

    planned = {p.registration.pk: p.planned_at for p in retention_schedule()}

    assert planned[waiting.pk] == _shift_months(ended.closed_at, 12)
    assert planned[pending.pk] == pending.token_expires_at
    assert planned[running.pk] is None
    assert done.pk not in planned


def test_advisor_pages_show_the_schedule_and_the_erasures(client, person):
    person_erase(email=EMAIL, actor="test")
    advisor = UserFactory(staff=True)
    advisor.groups.add(Group.objects.get(name="Servicepunt-adviseurs"))
    client.force_login(advisor)

    schedule = client.get("/admin/privacy/retentionschedule/")
    erasures = client.get("/admin/privacy/anonymisation/")

    assert schedule.status_code == 200
    assert "Bewaartermijnen" in schedule.content.decode()
    assert erasures.status_code == 200
    assert "Haarlem" in erasures.content.decode()
    assert "op verzoek van de contactpersoon" in erasures.content.decode()
    assert client.get(f"/admin/privacy/anonymisation/{person.anonymisation.pk}/delete/").status_code == 403


def test_months_are_calendar_months():
    utc = UTC
    assert _shift_months(datetime(2026, 3, 31, tzinfo=utc), 1) == datetime(2026, 4, 30, tzinfo=utc)
    assert _shift_months(datetime(2028, 2, 29, tzinfo=utc), -12) == datetime(2027, 2, 28, tzinfo=utc)
    assert _shift_months(datetime(2026, 1, 15, tzinfo=utc), -13) == datetime(2024, 12, 15, tzinfo=utc)


# --- The privacy statement ------------------------------------------------------


def test_privacy_statement_says_what_the_portal_does(client, settings):
    settings.LEERLAB_RETENTION_MONTHS = 18

    text = client.get("/privacy/").content.decode()

    assert "18 maanden nadat de groep" in text
    assert "JSON-bestand en als CSV-bestand" in text
    assert "direct anoniem gemaakt" in text
    assert "zien dat uw gegevens zijn verwijderd, niet wat ze waren" in text
    assert "het moment waarop u toestemming gaf en de versie van deze privacyverklaring" in text
