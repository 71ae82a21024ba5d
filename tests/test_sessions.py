"""A cohort's sessions (issue #6): invitations with .ics after the start and
exactly once, changes, cancellations, reminders, and the inline on the
cohort page as an advisor."""

from datetime import datetime, time, timedelta

import icalendar
import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leerlab import services, sessions
from leerlab.models import Cohort, CohortEvent, CohortEventAction, CohortSession, CohortStatus
from leerlab.tasks import send_session_reminders
from outbox.models import OutboxMessage
from outbox.services import message_send
from registrations.models import RegistrationStatus
from tests.factories import CohortFactory, RegistrationFactory, UserFactory

pytestmark = pytest.mark.django_db

ADVISOR_EMAIL = "adviseur-sessies@servicepunt.example"


def today():
    return timezone.localdate()


def session_data(**fields) -> dict:
    values = {
        "topic": "Kennismaking en cases",
        "date": today() + timedelta(days=10),
        "start_time": time(14, 0),
        "end_time": time(16, 0),
        "location": "Provinciehuis, Haarlem",
        "online_url": "",
        "notes": "",
    }
    values.update(fields)
    return values


def plan(cohort, **fields) -> CohortSession:
    return sessions.session_plan(cohort_id=cohort.pk, actor="adviseur", **session_data(**fields)).session


def mails(kind: str) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(kind=kind).order_by("pk"))


def recipients(kind: str) -> list[str]:
    return sorted(m.to for m in mails(kind))


def parse_ics(message: OutboxMessage) -> icalendar.Calendar:
    (attachment,) = message.attachments
    return icalendar.Calendar.from_ical(attachment["content"])


# Subjects of the invitations: Dutch, or English for who signed up in English.
INVITATION = ("Uitnodiging: ", "Invitation: ")
CHANGED = ("Gewijzigd: ", "Changed: ")


@pytest.fixture
def advisor(db):
    user = UserFactory(staff=True, username="adviseur-sessies", email=ADVISOR_EMAIL)
    user.groups.add(Group.objects.get(name="Servicepunt-adviseurs"))
    return user


@pytest.fixture
def participants(cohort, advisor):
    """Two confirmed municipalities: one short of the seeded lab's minimum."""
    cohort.advisors.add(advisor)
    return [
        RegistrationFactory(cohort=cohort, confirmed=True),
        RegistrationFactory(cohort=cohort, confirmed=True, language="en"),
    ]


def start(cohort):
    """The third municipality confirms and the lifecycle task runs."""
    third = RegistrationFactory(cohort=cohort, confirmed=True)
    services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED
    return third


@pytest.fixture
def started(cohort, participants):
    third = start(cohort)
    return [*participants, third]


def everyone(registrations) -> list[str]:
    return sorted([r.contact_email for r in registrations] + [ADVISOR_EMAIL])


# --- Invitations ---------------------------------------------------------------


def test_nothing_is_sent_before_the_cohort_starts(cohort, participants):
    session = plan(cohort)

    assert mails(sessions.TEMPLATE_INVITATION) == []
    event = CohortEvent.objects.get(cohort=cohort, action=CohortEventAction.SESSION_PLANNED)
    assert event.actor == "adviseur"
    assert event.details["session"] == session.pk
    assert event.details["emails"] == 0
    assert "topic" in event.details["fields"] and "date" in event.details["fields"]


def test_start_sends_each_upcoming_session_once_also_when_evaluated_again(
    cohort, participants, django_capture_on_commit_callbacks
):
    first = plan(cohort)
    second = plan(cohort, topic="Tweede", date=today() + timedelta(days=20))
    with django_capture_on_commit_callbacks(execute=True):
        third = start(cohort)

    expected = everyone([*participants, third])
    for session in (first, second):
        sent = OutboxMessage.objects.filter(dedupe_key__startswith=f"session:{session.pk}:invitation:0:")
        assert sorted(sent.values_list("to", flat=True)) == expected
    # Evaluating again (the sweep, a second task) sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        services.cohort_evaluate(cohort_id=cohort.pk)
        services.cohort_evaluate(cohort_id=cohort.pk)
    assert len(mails(sessions.TEMPLATE_INVITATION)) == 2 * len(expected)
    invitations = [m for m in mail.outbox if m.subject.startswith(INVITATION)]
    assert len(invitations) == 2 * len(expected)
    # The officer who signed up in English gets the English subject.
    english = [m for m in invitations if participants[1].contact_email in m.to]
    assert len(english) == 2 and all(m.subject.startswith("Invitation: ") for m in english)


def test_invitation_email_carries_the_ics(cohort, participants):
    session = plan(cohort, online_url="https://meet.example.nl/lab")
    start(cohort)

    message = OutboxMessage.objects.get(to=participants[0].contact_email, kind=sessions.TEMPLATE_INVITATION)
    assert message.subject.startswith(INVITATION)
    assert "Kennismaking en cases" in message.subject
    assert message.registration == participants[0]
    assert "Provinciehuis, Haarlem" in message.body_text
    assert "https://meet.example.nl/lab" in message.body_text
    assert "/mijn-aanmeldingen/" in message.body_text
    (attachment,) = message.attachments
    assert attachment["filename"] == f"leerlab-bijeenkomst-{session.date:%Y-%m-%d}.ics"
    assert attachment["mimetype"] == "text/calendar; charset=utf-8; method=PUBLISH"
    event = parse_ics(message).walk("VEVENT")[0]
    assert str(event["UID"]) == session.uid and event.decoded("SEQUENCE") == 0
    # The advisor's version points to the back office instead.
    advisor_message = OutboxMessage.objects.get(to=ADVISOR_EMAIL, kind=sessions.TEMPLATE_INVITATION)
    assert "/admin/" in advisor_message.body_text
    assert advisor_message.registration is None


def test_sent_email_has_the_calendar_attached(cohort, participants, mailoutbox):
    """The outbox sends its stored attachments (locmem email)."""
    session = plan(cohort)
    start(cohort)
    message = OutboxMessage.objects.get(to=participants[0].contact_email, kind=sessions.TEMPLATE_INVITATION)
    mailoutbox.clear()
    OutboxMessage.objects.filter(pk=message.pk).update(status="queued")

    message_send(message_id=message.pk)

    (sent,) = mailoutbox
    (part,) = sent.attachments
    assert part.get_content_type() == "text/calendar"
    assert part.get_param("method") == "PUBLISH"
    assert part.get_content_charset() == "utf-8"
    assert part.get_filename() == f"leerlab-bijeenkomst-{session.date:%Y-%m-%d}.ics"
    calendar = icalendar.Calendar.from_ical(part.get_payload(decode=True))
    assert str(calendar.walk("VEVENT")[0]["UID"]) == session.uid
    # One charset parameter, in the header as it goes over the wire.
    wire = sent.message().as_string()
    header = wire[wire.index("Content-Type: text/calendar") :].split("\n\n", 1)[0]
    assert header.count("charset") == 1 and "method" in header
    # Text and HTML are still there.
    assert sent.body and sent.alternatives[0].mimetype == "text/html"


def test_plain_attachment_without_parameters_is_sent_too(cohort, mailoutbox):
    from outbox.services import message_queue

    registration = RegistrationFactory(cohort=cohort)
    message = message_queue(
        key="test:attachment",
        template="waitlisted",
        to=registration.contact_email,
        context={"registration": registration, "lab": cohort.lab, "cohort": cohort},
        attachments=[{"filename": "notitie.txt", "mimetype": "text/plain", "content": "Hallo"}],
    )

    message_send(message_id=message.pk)

    (sent,) = mailoutbox
    assert [tuple(a) for a in sent.attachments] == [("notitie.txt", "Hallo", "text/plain")]


def test_past_and_cancelled_sessions_are_not_sent_at_start(cohort, participants):
    past = CohortSession.objects.create(
        cohort=cohort, **session_data(topic="Al geweest", date=today() - timedelta(days=3))
    )
    called_off = plan(cohort, topic="Gaat niet door")
    sessions.session_cancel(session_id=called_off.pk, actor="adviseur")
    upcoming = plan(cohort)

    start(cohort)

    invited = {m.dedupe_key.split(":")[1] for m in mails(sessions.TEMPLATE_INVITATION)}
    assert invited == {str(upcoming.pk)}
    assert past.pk and not mails(sessions.TEMPLATE_CANCELLATION)


def test_late_joiner_gets_the_upcoming_sessions(cohort, started):
    first = plan(cohort)
    second = plan(cohort, topic="Tweede", date=today() + timedelta(days=20))
    before = len(mails(sessions.TEMPLATE_INVITATION))
    assert before == 2 * len(everyone(started))

    late = RegistrationFactory(cohort=cohort, confirmed=True)
    services.cohort_evaluate(cohort_id=cohort.pk)

    new = mails(sessions.TEMPLATE_INVITATION)[before:]
    assert [m.to for m in new] == [late.contact_email] * 2
    assert {m.dedupe_key.split(":")[1] for m in new} == {str(first.pk), str(second.pk)}
    assert all(m.subject.startswith(INVITATION) for m in new)


def test_withdrawn_anonymised_and_waitlisted_get_nothing(cohort, started):
    withdrawn, anonymised, _ = started
    withdrawn.status = RegistrationStatus.WITHDRAWN
    withdrawn.save()
    anonymised.anonymised_at = timezone.now()
    anonymised.save()
    waiting = RegistrationFactory(cohort=cohort, waitlisted=True)

    plan(cohort)

    sent_to = set(recipients(sessions.TEMPLATE_INVITATION))
    assert not {withdrawn.contact_email, anonymised.contact_email, waiting.contact_email} & sent_to
    assert sent_to == {started[2].contact_email, ADVISOR_EMAIL}


def test_invitations_are_found_with_one_query(cohort, started, django_assert_max_num_queries):
    for days in range(10, 16):
        plan(cohort, date=today() + timedelta(days=days))
    cohort = Cohort.objects.select_related("lab").get(pk=cohort.pk)
    # All sent: sessions, participants, advisors, sent keys. Nothing per pair.
    with django_assert_max_num_queries(4):
        assert sessions.sessions_invite_participants(cohort=cohort) == 0


# --- Changes -------------------------------------------------------------------


def test_change_raises_sequence_and_sends_one_updated_invitation(cohort, started):
    session = plan(cohort)
    count = len(everyone(started))

    outcome = sessions.session_update(
        session_id=session.pk, actor="adviseur", **session_data(start_time=time(15, 0), end_time=time(17, 0))
    )

    session.refresh_from_db()
    assert session.sequence == 1
    assert outcome.fields == ("start_time", "end_time")
    changed = mails(sessions.TEMPLATE_INVITATION)[count:]
    assert sorted(m.to for m in changed) == everyone(started)
    assert all(m.subject.startswith(CHANGED) for m in changed)
    event = parse_ics(changed[0]).walk("VEVENT")[0]
    assert event.decoded("SEQUENCE") == 1
    assert str(event["UID"]) == session.uid
    assert event.decoded("DTSTART").hour == 15
    history = CohortEvent.objects.get(cohort=cohort, action=CohortEventAction.SESSION_CHANGED)
    assert history.details == {"session": session.pk, "fields": ["start_time", "end_time"], "emails": count}
    # Nothing more on the next evaluation, nor for an unchanged save.
    services.cohort_evaluate(cohort_id=cohort.pk)
    sessions.session_update(
        session_id=session.pk, actor="adviseur", **session_data(start_time=time(15, 0), end_time=time(17, 0))
    )
    assert len(mails(sessions.TEMPLATE_INVITATION)) == 2 * count


def test_notes_only_change_is_saved_without_email(cohort, started):
    session = plan(cohort)
    before = OutboxMessage.objects.count()

    sessions.session_update(
        session_id=session.pk, actor="adviseur", **session_data(notes="Lunch is geregeld.")
    )

    session.refresh_from_db()
    assert session.notes == "Lunch is geregeld." and session.sequence == 0
    assert OutboxMessage.objects.count() == before
    history = CohortEvent.objects.get(cohort=cohort, action=CohortEventAction.SESSION_CHANGED)
    assert history.details["fields"] == ["notes"] and history.details["emails"] == 0


def test_session_changed_before_the_start_is_a_plain_invitation_at_start(cohort, participants):
    session = plan(cohort)
    sessions.session_update(session_id=session.pk, actor="adviseur", **session_data(topic="Nieuw onderwerp"))

    start(cohort)

    messages = mails(sessions.TEMPLATE_INVITATION)
    assert messages and all(m.subject.startswith(INVITATION) for m in messages)
    assert all(":invitation:1:" in m.dedupe_key for m in messages)
    assert parse_ics(messages[0]).walk("VEVENT")[0].decoded("SEQUENCE") == 1


# --- Cancellations -------------------------------------------------------------


def test_cancel_sends_a_cancel_ics_to_those_invited(cohort, started):
    session = plan(cohort)

    outcome = sessions.session_cancel(session_id=session.pk, actor="adviseur", notes="Wegens ziekte.")

    session.refresh_from_db()
    assert session.cancelled_at is not None and session.sequence == 1 and session.notes == "Wegens ziekte."
    cancelled = mails(sessions.TEMPLATE_CANCELLATION)
    assert sorted(m.to for m in cancelled) == everyone(started) and outcome.emails == len(cancelled)
    message = cancelled[0]
    assert message.subject.startswith("Afgelast: ")
    assert "Wegens ziekte." in message.body_text
    assert message.attachments[0]["mimetype"] == "text/calendar; charset=utf-8; method=CANCEL"
    calendar = parse_ics(message)
    assert str(calendar["METHOD"]) == "CANCEL"
    event = calendar.walk("VEVENT")[0]
    assert str(event["STATUS"]) == "CANCELLED" and str(event["UID"]) == session.uid
    assert event.decoded("SEQUENCE") == 1
    history = CohortEvent.objects.get(cohort=cohort, action=CohortEventAction.SESSION_CANCELLED)
    assert history.details["fields"] == ["cancelled_at", "notes"]
    # Once: again changes nothing; a late joiner gets neither.
    assert sessions.session_cancel(session_id=session.pk, actor="adviseur").emails == 0
    RegistrationFactory(cohort=cohort, confirmed=True)
    services.cohort_evaluate(cohort_id=cohort.pk)
    assert len(mails(sessions.TEMPLATE_CANCELLATION)) == len(cancelled)
    assert (
        OutboxMessage.objects.filter(dedupe_key__startswith=f"session:{session.pk}:invitation:1").count() == 0
    )


def test_cancel_before_the_start_sends_nothing(cohort, participants):
    session = plan(cohort)

    sessions.session_cancel(session_id=session.pk, actor="adviseur")

    assert OutboxMessage.objects.filter(dedupe_key__startswith="session:").count() == 0


def test_cancelling_a_cohort_can_call_off_its_sessions(cohort, started):
    upcoming = plan(cohort)
    locked = Cohort.objects.select_related("lab").get(pk=cohort.pk)
    emails = sessions.sessions_call_off_for_cohort(cohort=locked, actor="adviseur")

    upcoming.refresh_from_db()
    assert upcoming.cancelled_at is not None
    assert emails == len(everyone(started)) == len(mails(sessions.TEMPLATE_CANCELLATION))


# --- Rules ---------------------------------------------------------------------


def _refusal(**kwargs) -> dict:
    with pytest.raises(ValidationError) as info:
        sessions.session_check(**kwargs)
    error = info.value
    return error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}


def test_rules_refuse_the_past_and_changes_to_what_is_over(cohort):
    yesterday = session_data(date=today() - timedelta(days=1))
    assert "verleden" in _refusal(cohort=cohort, session=None, data=yesterday)["date"][0]
    now = timezone.localtime()
    if now.hour >= 1:
        earlier_today = session_data(date=now.date(), start_time=time(0, 0), end_time=time(0, 30))
        assert "al voorbij" in _refusal(cohort=cohort, session=None, data=earlier_today)["start_time"][0]
    past = CohortSession.objects.create(cohort=cohort, **yesterday)
    assert (
        "alleen de toelichting"
        in _refusal(cohort=cohort, session=past, data={"topic": "Anders"})["__all__"][0]
    )
    sessions.session_check(cohort=cohort, session=past, data={**yesterday, "notes": "Verslag volgt."})
    assert "niet meer aflassen" in _refusal(cohort=cohort, session=past, data={}, cancel=True)["__all__"][0]

    upcoming = CohortSession.objects.create(cohort=cohort, **session_data())
    moved = session_data(date=today() + timedelta(days=11))
    assert "niet tegelijk" in _refusal(cohort=cohort, session=upcoming, data=moved, cancel=True)["__all__"][0]
    assert (
        "niet meteen" in _refusal(cohort=cohort, session=None, data=session_data(), cancel=True)["__all__"][0]
    )
    upcoming.cancelled_at = timezone.now()
    assert "afgelast" in _refusal(cohort=cohort, session=upcoming, data=moved)["__all__"][0]
    ended = CohortFactory(status=CohortStatus.CANCELLED)
    assert "geannuleerd" in _refusal(cohort=ended, session=None, data=session_data())["__all__"][0]

    with pytest.raises(ValidationError):
        plan(cohort, date=today() - timedelta(days=1))
    assert (
        not CohortSession.objects.filter(topic="Kennismaking en cases", date__lt=today())
        .exclude(pk=past.pk)
        .exists()
    )


def test_model_rules_hold_in_the_service(cohort):
    with pytest.raises(ValidationError) as info:
        plan(cohort, location="", online_url="")
    assert "plaats of een online link" in str(info.value)
    with pytest.raises(ValidationError):
        plan(cohort, start_time=time(16, 0), end_time=time(15, 0))
    assert not CohortSession.objects.exists()


# --- Reminders -----------------------------------------------------------------


@pytest.fixture
def soon(cohort, started):
    """A session tomorrow at 10:00: within the default two days."""
    return plan(cohort, date=today() + timedelta(days=1), start_time=time(10, 0), end_time=time(12, 0))


def test_reminders_within_the_window_once(cohort, started, soon, settings):
    settings.LEERLAB_SESSION_REMINDER_DAYS = 2
    plan(cohort, topic="Later", date=today() + timedelta(days=5))
    called_off = plan(cohort, topic="Afgelast", date=today() + timedelta(days=1), start_time=time(13, 0))
    sessions.session_cancel(session_id=called_off.pk, actor="adviseur")
    CohortSession.objects.create(cohort=cohort, **session_data(date=today() - timedelta(days=1)))
    not_started = CohortFactory()
    RegistrationFactory(cohort=not_started, confirmed=True)
    CohortSession.objects.create(cohort=not_started, **session_data(date=today() + timedelta(days=1)))

    count = sessions.sessions_send_reminders()

    reminders = mails(sessions.TEMPLATE_REMINDER)
    assert count == len(reminders) == len(everyone(started))
    assert sorted(m.to for m in reminders) == everyone(started)
    assert {m.dedupe_key.split(":")[1] for m in reminders} == {str(soon.pk)}
    assert reminders[0].subject.startswith("Herinnering: ")
    assert "Provinciehuis, Haarlem" in reminders[0].body_text
    # Running again sends nothing more.
    assert sessions.sessions_send_reminders() == 0
    assert send_session_reminders() == 0
    assert len(mails(sessions.TEMPLATE_REMINDER)) == count


def test_session_entering_the_window_later_is_reminded(cohort, started, settings):
    settings.LEERLAB_SESSION_REMINDER_DAYS = 2
    session = plan(cohort, date=today() + timedelta(days=4), start_time=time(10, 0), end_time=time(11, 0))
    assert sessions.sessions_send_reminders() == 0

    later = timezone.make_aware(datetime.combine(today() + timedelta(days=3), time(9, 0)))
    assert sessions.sessions_send_reminders(now=later) == len(everyone(started))
    assert sessions.sessions_send_reminders(now=later + timedelta(hours=1)) == 0
    # Once it has started, no reminder (it is not in the future any more).
    session_started = timezone.make_aware(datetime.combine(session.date, time(10, 30)))
    CohortSession.objects.filter(pk=session.pk).update(start_time=time(10, 5))
    OutboxMessage.objects.filter(kind=sessions.TEMPLATE_REMINDER).delete()
    assert sessions.sessions_send_reminders(now=session_started) == 0


def test_moved_session_is_reminded_again(cohort, started, soon, settings):
    settings.LEERLAB_SESSION_REMINDER_DAYS = 2
    first = sessions.sessions_send_reminders()

    sessions.session_update(
        session_id=soon.pk,
        actor="adviseur",
        **session_data(date=soon.date, start_time=time(11, 0), end_time=time(12, 30)),
    )

    assert sessions.sessions_send_reminders() == first
    assert sessions.sessions_send_reminders() == 0
    assert len(mails(sessions.TEMPLATE_REMINDER)) == 2 * first


def test_zero_days_means_no_reminders(cohort, started, soon, settings):
    settings.LEERLAB_SESSION_REMINDER_DAYS = 0

    assert sessions.sessions_send_reminders() == 0
    assert send_session_reminders() == 0
    assert mails(sessions.TEMPLATE_REMINDER) == []


def test_reminder_task_is_registered_under_its_beat_name(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["session-reminders"]
    assert schedule["task"] == send_session_reminders.name == "leerlab.tasks.send_session_reminders"


# --- The inline on the cohort page ----------------------------------------------


def _form_data(form) -> dict:
    data = {}
    for bound in form:
        if bound.field.disabled:
            continue
        value = bound.value()
        if value is None or value is False:
            continue
        if value is True:
            data[bound.html_name] = "on"
        elif isinstance(value, (list, tuple)):
            data[bound.html_name] = [str(v) for v in value]
        else:
            data[bound.html_name] = str(value)
    return data


def change_page_data(response) -> dict:
    """What the browser would post back unchanged: the cohort's own fields
    and every inline with its management form."""
    assert response.status_code == 200
    data = _form_data(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update(_form_data(formset.management_form))
        for form in formset.forms:
            data.update(_form_data(form))
    return data


def session_prefix(response) -> tuple[str, int]:
    for inline in response.context["inline_admin_formsets"]:
        if inline.formset.model is CohortSession:
            return inline.formset.prefix, inline.formset.total_form_count()
    raise AssertionError("no sessions inline")


def add_session(data: dict, prefix: str, index: int, **fields) -> dict:
    values = session_data(**fields)
    data = dict(data)
    data[f"{prefix}-TOTAL_FORMS"] = str(index + 1)
    for name, value in values.items():
        data[f"{prefix}-{index}-{name}"] = "" if value is None else str(value)
    return data


@pytest.fixture
def advisor_client(client, advisor):
    client.force_login(advisor)
    return client


def change_url(cohort) -> str:
    return reverse("admin:leerlab_cohort_change", args=[cohort.pk])


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_advisor_plans_a_session_in_the_inline(advisor_client, advisor, cohort, started):
    page = advisor_client.get(change_url(cohort))
    prefix, total = session_prefix(page)
    data = add_session(change_page_data(page), prefix, total, online_url="meet.example.nl/lab")

    response = advisor_client.post(change_url(cohort), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    session = CohortSession.objects.get(cohort=cohort)
    assert session.online_url == "https://meet.example.nl/lab"
    assert recipients(sessions.TEMPLATE_INVITATION) == everyone(started)
    event = CohortEvent.objects.get(cohort=cohort, action=CohortEventAction.SESSION_PLANNED)
    assert event.actor == advisor.username
    assert any("Bijeenkomst gepland" in m and "e-mails worden verstuurd" in m for m in _messages(response))


def test_inline_refuses_a_date_in_the_past_with_a_message(advisor_client, cohort, started):
    page = advisor_client.get(change_url(cohort))
    prefix, total = session_prefix(page)
    data = add_session(change_page_data(page), prefix, total, date=today() - timedelta(days=1))

    response = advisor_client.post(change_url(cohort), data)

    assert response.status_code == 200
    assert "Deze datum ligt in het verleden" in response.content.decode()
    assert not CohortSession.objects.exists()
    assert OutboxMessage.objects.filter(kind=sessions.TEMPLATE_INVITATION).count() == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start_time": time(16, 0), "end_time": time(15, 0)}, "De eindtijd moet na de begintijd liggen."),
        ({"location": "", "online_url": ""}, "Vul een plaats of een online link in"),
        ({"online_url": "niet een link"}, "geldige URL"),
    ],
    ids=["end-before-start", "no-place-or-link", "bad-link"],
)
def test_inline_shows_the_model_rules(advisor_client, cohort, fields, message):
    page = advisor_client.get(change_url(cohort))
    prefix, total = session_prefix(page)

    response = advisor_client.post(
        change_url(cohort), add_session(change_page_data(page), prefix, total, **fields)
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not CohortSession.objects.exists()


def test_inline_change_sends_an_updated_invitation(advisor_client, cohort, started):
    session = plan(cohort)
    count = len(mails(sessions.TEMPLATE_INVITATION))
    page = advisor_client.get(change_url(cohort))
    prefix, _ = session_prefix(page)
    data = change_page_data(page)
    data[f"{prefix}-0-location"] = "Gemeentehuis, Alkmaar"

    response = advisor_client.post(change_url(cohort), data)

    assert response.status_code == 302
    session.refresh_from_db()
    assert session.location == "Gemeentehuis, Alkmaar" and session.sequence == 1
    changed = mails(sessions.TEMPLATE_INVITATION)[count:]
    assert len(changed) == count and all(m.subject.startswith(CHANGED) for m in changed)
    assert CohortEvent.objects.get(action=CohortEventAction.SESSION_CHANGED).details["fields"] == ["location"]


def test_inline_notes_change_tells_the_advisor_no_email_goes_out(advisor_client, cohort, started):
    plan(cohort)
    before = OutboxMessage.objects.count()
    page = advisor_client.get(change_url(cohort))
    prefix, _ = session_prefix(page)
    data = change_page_data(page)
    data[f"{prefix}-0-notes"] = "Koffie staat klaar."

    response = advisor_client.post(change_url(cohort), data)

    assert response.status_code == 302
    assert OutboxMessage.objects.count() == before
    assert any("geen e-mail" in m for m in _messages(response))


def test_inline_calls_a_session_off(advisor_client, advisor, cohort, started):
    session = plan(cohort)
    page = advisor_client.get(change_url(cohort))
    prefix, _ = session_prefix(page)
    content = page.content.decode()
    # No delete box: sessions are called off, not deleted.
    assert f'name="{prefix}-0-DELETE"' not in content
    data = change_page_data(page)
    data[f"{prefix}-0-called_off"] = "on"
    data[f"{prefix}-0-notes"] = "De zaal is niet beschikbaar."

    response = advisor_client.post(change_url(cohort), data)

    assert response.status_code == 302
    session.refresh_from_db()
    assert session.cancelled_at is not None and session.notes == "De zaal is niet beschikbaar."
    assert recipients(sessions.TEMPLATE_CANCELLATION) == everyone(started)
    event = CohortEvent.objects.get(action=CohortEventAction.SESSION_CANCELLED)
    assert event.actor == advisor.username and event.details["session"] == session.pk

    # Afterwards the session is read-only in the inline and a save sends nothing.
    page = advisor_client.get(change_url(cohort))
    form = next(
        i for i in page.context["inline_admin_formsets"] if i.formset.model is CohortSession
    ).formset.forms[0]
    assert all(form.fields[name].disabled for name in (*sessions.EDITABLE_FIELDS, "called_off"))
    before = OutboxMessage.objects.count()
    assert advisor_client.post(change_url(cohort), change_page_data(page)).status_code == 302
    assert OutboxMessage.objects.count() == before


def test_inline_refuses_calling_off_and_moving_at_once(advisor_client, cohort, started):
    session = plan(cohort)
    page = advisor_client.get(change_url(cohort))
    prefix, _ = session_prefix(page)
    data = change_page_data(page)
    data[f"{prefix}-0-called_off"] = "on"
    data[f"{prefix}-0-date"] = str(session.date + timedelta(days=1))

    response = advisor_client.post(change_url(cohort), data)

    assert response.status_code == 200
    assert "niet tegelijk aflassen en verplaatsen" in response.content.decode()
    session.refresh_from_db()
    assert session.cancelled_at is None and session.sequence == 0


def test_a_non_staff_user_cannot_reach_the_inline(client, cohort):
    client.force_login(UserFactory(username="geen-adviseur"))

    response = client.get(change_url(cohort))

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_cohort_page_query_count_does_not_grow_with_sessions(advisor_client, cohort):
    url = change_url(cohort)
    for days in range(2):
        plan(cohort, date=today() + timedelta(days=10 + days))
    advisor_client.get(url)
    with CaptureQueriesContext(connection) as few:
        advisor_client.get(url)

    for days in range(10):
        plan(cohort, date=today() + timedelta(days=20 + days))
    with CaptureQueriesContext(connection) as many:
        response = advisor_client.get(url)

    assert response.status_code == 200
    assert len(many) == len(few)


def test_new_cohort_with_a_session_in_the_same_form(advisor_client, advisor, lab, cohort):
    """Planned on the add page: saved, nothing sent (the cohort is new)."""
    page = advisor_client.get(reverse("admin:leerlab_cohort_add"))
    prefix, total = session_prefix(page)
    data = add_session(change_page_data(page), prefix, total)
    data["lab"] = str(lab.pk)

    response = advisor_client.post(reverse("admin:leerlab_cohort_add"), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    new = lab.cohorts.order_by("-number").first()
    assert new.pk != cohort.pk
    session = CohortSession.objects.get(cohort=new)
    assert session.topic == "Kennismaking en cases"
    assert CohortEvent.objects.filter(cohort=new, action=CohortEventAction.SESSION_PLANNED).count() == 1
    assert not OutboxMessage.objects.filter(dedupe_key__startswith="session:").exists()
