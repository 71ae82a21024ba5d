"""Calendar files for a cohort's sessions (issue #6): parsed back with
icalendar, field by field."""

from datetime import UTC, date, time

import icalendar
import pytest
from django.utils import timezone, translation

from leerlab.ics import (
    calendar_mimetype,
    session_attachment,
    session_filename,
    sessions_calendar,
)
from leerlab.models import CohortSession
from tests.factories import CohortFactory, LeerLabFactory, RegistrationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def cohort():
    lab = LeerLabFactory(title="Verhaal van de wijk", title_en="Story of the district")
    return CohortFactory(lab=lab, started=True)


def make_session(cohort, **fields) -> CohortSession:
    values = {
        "topic": "Eerste bijeenkomst",
        "date": date(2027, 1, 14),
        "start_time": time(14, 0),
        "end_time": time(16, 30),
        "location": "Provinciehuis, Haarlem",
        "online_url": "https://meet.example.nl/leerlab?id=1&x=2",
        "notes": "Neem uw case mee.",
    }
    values.update(fields)
    return CohortSession.objects.create(cohort=cohort, **values)


def parse(content: bytes) -> tuple[icalendar.Calendar, icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(content)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    return calendar, events[0]


def test_invitation_holds_every_field(cohort):
    session = make_session(cohort, sequence=3)

    calendar, event = parse(sessions_calendar([session]))

    assert str(calendar["VERSION"]) == "2.0"
    assert "Leer Lab" in str(calendar["PRODID"])
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert str(event["UID"]) == session.uid
    assert event.decoded("SEQUENCE") == 3
    stamp = event.decoded("DTSTAMP")
    assert stamp.utcoffset().total_seconds() == 0
    assert abs((timezone.now() - stamp).total_seconds()) < 60
    assert str(event["SUMMARY"]) == "Verhaal van de wijk: Eerste bijeenkomst"
    assert str(event["LOCATION"]) == "Provinciehuis, Haarlem, https://meet.example.nl/leerlab?id=1&x=2"
    assert str(event["URL"]) == "https://meet.example.nl/leerlab?id=1&x=2"
    description = str(event["DESCRIPTION"])
    assert "Neem uw case mee." in description
    assert "https://meet.example.nl/leerlab?id=1&x=2" in description
    assert str(event["STATUS"]) == "CONFIRMED"
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert str(start.tzinfo) == "Europe/Amsterdam"
    assert (start.hour, start.minute, end.hour, end.minute) == (14, 0, 16, 30)
    assert start.date() == date(2027, 1, 14)
    # The time zone travels with the file.
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/Amsterdam"]


def test_no_personal_data_in_the_file(cohort):
    registration = RegistrationFactory(cohort=cohort, confirmed=True, contact_email="anna@haarlem.nl")
    session = make_session(cohort)

    content = sessions_calendar([session]).decode()

    assert "ATTENDEE" not in content
    assert registration.contact_email not in content
    assert registration.contact_name not in content


@pytest.mark.parametrize(
    ("day", "utc_hour"),
    [(date(2027, 1, 14), 13), (date(2027, 7, 15), 12)],
    ids=["winter-CET", "summer-CEST"],
)
def test_local_time_is_right_in_utc(cohort, day, utc_hour):
    session = make_session(cohort, date=day, start_time=time(14, 0), end_time=time(15, 0))

    _, event = parse(sessions_calendar([session]))

    start = event.decoded("DTSTART").astimezone(UTC)
    assert (start.date(), start.hour, start.minute) == (day, utc_hour, 0)
    assert event.decoded("DTEND").astimezone(UTC).hour == utc_hour + 1


def test_commas_semicolons_and_newlines_are_escaped(cohort):
    topic = "Wijken, warmte; en\nbewoners"
    session = make_session(cohort, topic=topic, location="Zaal 1; 2e verdieping, Haarlem", notes="a\nb")

    content = sessions_calendar([session])

    raw = content.decode().replace("\r\n ", "")  # unfold
    assert "Wijken\\, warmte\\; en\\nbewoners" in raw
    assert "Zaal 1\\; 2e verdieping\\, Haarlem" in raw
    _, event = parse(content)
    assert str(event["SUMMARY"]) == f"Verhaal van de wijk: {topic}"
    assert str(event["LOCATION"]).startswith("Zaal 1; 2e verdieping, Haarlem")
    # Lines are folded at 75 octets (RFC 5545, 3.1).
    assert all(len(line) <= 75 for line in content.split(b"\r\n"))


def test_place_only_and_link_only(cohort):
    place = make_session(cohort, online_url="", notes="")
    online = make_session(cohort, location="", notes="")

    _, place_event = parse(sessions_calendar([place]))
    _, online_event = parse(sessions_calendar([online]))

    assert str(place_event["LOCATION"]) == "Provinciehuis, Haarlem"
    assert "URL" not in place_event and "DESCRIPTION" not in place_event
    assert str(online_event["LOCATION"]) == "https://meet.example.nl/leerlab?id=1&x=2"
    assert str(online_event["URL"]) == "https://meet.example.nl/leerlab?id=1&x=2"


def test_cancellation_has_method_cancel_and_status_cancelled(cohort):
    session = make_session(cohort, cancelled_at=timezone.now(), sequence=2)

    attachment = session_attachment(session, cancel=True)

    assert attachment["filename"] == "leerlab-bijeenkomst-2027-01-14.ics"
    assert attachment["mimetype"] == "text/calendar; charset=utf-8; method=CANCEL"
    calendar, event = parse(attachment["content"].encode())
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == session.uid
    assert event.decoded("SEQUENCE") == 2


def test_invitation_attachment(cohort):
    session = make_session(cohort)

    attachment = session_attachment(session)

    assert attachment["filename"] == session_filename(session) == "leerlab-bijeenkomst-2027-01-14.ics"
    assert attachment["mimetype"] == calendar_mimetype() == "text/calendar; charset=utf-8; method=PUBLISH"
    calendar, _ = parse(attachment["content"].encode())
    assert str(calendar["METHOD"]) == "PUBLISH"


def test_summary_in_the_active_language(cohort):
    session = make_session(cohort)

    with translation.override("en"):
        _, event = parse(sessions_calendar([session]))

    assert str(event["SUMMARY"]) == "Story of the district: Eerste bijeenkomst"


def test_plan_of_several_sessions_in_one_file(cohort):
    first = make_session(cohort, date=date(2027, 1, 14))
    second = make_session(cohort, date=date(2027, 6, 10), cancelled_at=timezone.now())

    calendar = icalendar.Calendar.from_ical(sessions_calendar([first, second], name="Verhaal, cohort 1"))

    events = calendar.walk("VEVENT")
    assert [str(e["UID"]) for e in events] == [first.uid, second.uid]
    assert [str(e["STATUS"]) for e in events] == ["CONFIRMED", "CANCELLED"]
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert str(calendar["X-WR-CALNAME"]) == "Verhaal, cohort 1"
    assert len(calendar.walk("VTIMEZONE")) == 1
