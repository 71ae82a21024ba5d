"""The session plan on "mijn aanmeldingen" (issue #6): shown to confirmed
participants of a started cohort, with .ics downloads of their own plan
only; the cohort's state in words also when it was cancelled or completed."""

import html
import time
from datetime import time as clock
from datetime import timedelta

import icalendar
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leerlab.models import CohortSession, CohortStatus
from selfservice.views import SESSION_EMAIL, SESSION_UNTIL
from tests.factories import CohortFactory, LeerLabFactory, RegistrationFactory

pytestmark = pytest.mark.django_db

EMAIL = "officer@zaanstad.nl"
OVERVIEW = "/mijn-aanmeldingen/overzicht/"


def text(response) -> str:
    return html.unescape(response.content.decode())


def make_session(cohort, days=10, **fields) -> CohortSession:
    values = {
        "topic": "Kennismaking",
        "date": timezone.localdate() + timedelta(days=days),
        "start_time": clock(14, 0),
        "end_time": clock(16, 0),
        "location": "Provinciehuis, Haarlem",
    }
    values.update(fields)
    return CohortSession.objects.create(cohort=cohort, **values)


@pytest.fixture
def started_cohort():
    return CohortFactory(lab=LeerLabFactory(title="Startplan voor de wijk"), started=True)


@pytest.fixture
def registration(started_cohort):
    return RegistrationFactory(cohort=started_cohort, confirmed=True, contact_email=EMAIL)


@pytest.fixture
def officer(client):
    """A self-service session for EMAIL, as the emailed link opens it."""
    session = client.session
    session[SESSION_EMAIL] = EMAIL
    session[SESSION_UNTIL] = time.time() + 600
    session.save()
    return client


def test_plan_is_shown_with_places_links_and_called_off_sessions(officer, registration, started_cohort):
    first = make_session(
        started_cohort, topic="Kennismaking en cases", online_url="https://meet.example.nl/a"
    )
    called_off = make_session(
        started_cohort, days=20, topic="Excursie warmtenet", cancelled_at=timezone.now()
    )
    past = make_session(started_cohort, days=-5, topic="Voorgesprek")

    page = text(officer.get(OVERVIEW))

    assert "Bijeenkomsten" in page
    for session in (first, called_off, past):
        assert session.topic in page
        assert f"{session.date:%Y}" in page
    assert "14:00–16:00" in page
    assert "Provinciehuis, Haarlem" in page
    assert 'href="https://meet.example.nl/a"' in page
    assert "– <strong>afgelast</strong>" in page
    # Downloads: the whole plan, and each upcoming session that goes ahead.
    assert f"/mijn-aanmeldingen/{registration.pk}/bijeenkomsten.ics" in page
    assert f"/mijn-aanmeldingen/{registration.pk}/bijeenkomsten/{first.pk}.ics" in page
    assert f"/bijeenkomsten/{called_off.pk}.ics" not in page
    assert f"/bijeenkomsten/{past.pk}.ics" not in page
    # In date order.
    assert page.index("Voorgesprek") < page.index("Kennismaking en cases") < page.index("Excursie warmtenet")


def test_started_cohort_without_sessions_says_so(officer, registration):
    page = text(officer.get(OVERVIEW))

    assert "Er zijn nog geen bijeenkomsten gepland." in page
    assert "bijeenkomsten.ics" not in page


@pytest.mark.parametrize(
    "kind",
    ["waitlisted", "not-started", "withdrawn", "cancelled-cohort"],
)
def test_no_plan_for_who_has_no_seat_in_a_running_cohort(officer, kind):
    if kind == "not-started":
        cohort = CohortFactory()
        registration = RegistrationFactory(cohort=cohort, confirmed=True, contact_email=EMAIL)
    elif kind == "cancelled-cohort":
        cohort = CohortFactory(status=CohortStatus.CANCELLED, started_at=timezone.now())
        registration = RegistrationFactory(cohort=cohort, confirmed=True, contact_email=EMAIL)
    else:
        cohort = CohortFactory(closed=True)
        registration = RegistrationFactory(
            cohort=cohort, contact_email=EMAIL, **{kind: True} if kind == "waitlisted" else {}
        )
        if kind == "withdrawn":
            registration.status = "withdrawn"
            registration.save()
    session = make_session(cohort, topic="Geheime bijeenkomst")

    page = text(officer.get(OVERVIEW))

    assert "Geheime bijeenkomst" not in page
    assert officer.get(f"/mijn-aanmeldingen/{registration.pk}/bijeenkomsten.ics").status_code == 404
    url = f"/mijn-aanmeldingen/{registration.pk}/bijeenkomsten/{session.pk}.ics"
    assert officer.get(url).status_code == 404


def test_download_whole_plan(officer, registration, started_cohort):
    first = make_session(started_cohort)
    second = make_session(started_cohort, days=30, topic="Terugkomdag", cancelled_at=timezone.now())
    make_session(CohortFactory(started=True), topic="Ander cohort")

    response = officer.get(f"/mijn-aanmeldingen/{registration.pk}/bijeenkomsten.ics")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    filename = f"leerlab-{started_cohort.lab.slug}-cohort-{started_cohort.number}.ics"
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    calendar = icalendar.Calendar.from_ical(response.content)
    events = calendar.walk("VEVENT")
    assert [str(e["UID"]) for e in events] == [first.uid, second.uid]
    assert [str(e["STATUS"]) for e in events] == ["CONFIRMED", "CANCELLED"]
    assert str(events[0]["SUMMARY"]) == "Startplan voor de wijk: Kennismaking"
    assert EMAIL not in response.content.decode()


def test_download_one_session(officer, registration, started_cohort):
    session = make_session(started_cohort)

    response = officer.get(f"/mijn-aanmeldingen/{registration.pk}/bijeenkomsten/{session.pk}.ics")

    assert response.status_code == 200
    assert f'filename="leerlab-bijeenkomst-{session.date:%Y-%m-%d}.ics"' in response["Content-Disposition"]
    (event,) = icalendar.Calendar.from_ical(response.content).walk("VEVENT")
    assert str(event["UID"]) == session.uid


def test_downloads_of_someone_else_are_not_found(officer, registration, started_cohort):
    other = RegistrationFactory(cohort=started_cohort, confirmed=True)
    session = make_session(started_cohort)
    foreign_session = make_session(CohortFactory(started=True))

    assert officer.get(f"/mijn-aanmeldingen/{other.pk}/bijeenkomsten.ics").status_code == 404
    assert officer.get(f"/mijn-aanmeldingen/{other.pk}/bijeenkomsten/{session.pk}.ics").status_code == 404
    # A session of another cohort through one's own registration: not found.
    url = f"/mijn-aanmeldingen/{registration.pk}/bijeenkomsten/{foreign_session.pk}.ics"
    assert officer.get(url).status_code == 404
    assert officer.get("/mijn-aanmeldingen/999999/bijeenkomsten.ics").status_code == 404


def test_downloads_need_the_self_service_session(client, registration, started_cohort):
    session = make_session(started_cohort)

    for url in (
        f"/mijn-aanmeldingen/{registration.pk}/bijeenkomsten.ics",
        f"/mijn-aanmeldingen/{registration.pk}/bijeenkomsten/{session.pk}.ics",
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == "/mijn-aanmeldingen/"


def test_english_download_uses_the_english_title(officer, started_cohort):
    started_cohort.lab.title_en = "Neighbourhood plan"
    started_cohort.lab.save()
    registration = RegistrationFactory(
        cohort=started_cohort, confirmed=True, contact_email=EMAIL, language="en"
    )
    make_session(started_cohort)

    response = officer.get(f"/en/mijn-aanmeldingen/{registration.pk}/bijeenkomsten.ics")

    assert response.status_code == 200
    (event,) = icalendar.Calendar.from_ical(response.content).walk("VEVENT")
    assert str(event["SUMMARY"]) == "Neighbourhood plan: Kennismaking"


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (CohortStatus.CANCELLED, "Dit cohort is geannuleerd"),
        (CohortStatus.COMPLETED, "Dit Leer Lab is afgerond"),
    ],
)
def test_ended_cohorts_are_named_in_words(officer, status, words):
    cohort = CohortFactory(status=status, started_at=timezone.now(), ended_at=timezone.now())
    RegistrationFactory(cohort=cohort, confirmed=True, contact_email=EMAIL)

    page = text(officer.get(OVERVIEW))

    assert words in page
    if status == CohortStatus.CANCELLED:
        assert "u heeft een plaats" not in page
        assert "vervallen, want het cohort gaat niet door" in page
    else:
        assert "u heeft een plaats" in page


def test_overview_query_count_does_not_grow_with_sessions(officer, registration, started_cohort):
    make_session(started_cohort)
    officer.get(OVERVIEW)
    with CaptureQueriesContext(connection) as few:
        officer.get(OVERVIEW)

    for days in range(12):
        make_session(started_cohort, days=11 + days)
    for _ in range(3):
        cohort = CohortFactory(started=True)
        RegistrationFactory(cohort=cohort, confirmed=True, contact_email=EMAIL)
        for days in range(4):
            make_session(cohort, days=5 + days)
    with CaptureQueriesContext(connection) as many:
        page = text(officer.get(OVERVIEW))

    assert page.count("In mijn agenda zetten") == 13 + 12
    assert len(many) == len(few)
