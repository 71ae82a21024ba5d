"""The start of a lab end to end (#2): PostgreSQL, Redis, a real Celery
worker (two processes) and a real SMTP server. Nothing here is mocked: the
emails counted are the ones the SMTP server received."""

import re
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leerlab.models import CohortStatus
from leerlab.tasks import evaluate_cohort, sweep
from municipalities.models import Municipality
from outbox.models import MessageStatus, OutboxMessage
from registrations.models import Registration, RegistrationStatus
from registrations.services import registration_confirm, registration_submit
from tests.factories import RegistrationFactory, UserFactory

from .conftest import wait_until

pytestmark = [
    pytest.mark.integration,
    # Committed rows, so the worker sees them; the seeded municipalities and
    # labs are restored before each test after the flush of the one before.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(120),
]

# Subjects as fixed in DESIGN.md.
CONFIRM_REQUEST = "Bevestig"
STARTED = "van start"
WAITLIST = "wachtlijst"
SEAT = "Aanmelding geslaagd"

CONFIRM_PATH = re.compile(r"/aanmelding/bevestig/([A-Za-z0-9_-]+)/")


@pytest.fixture
def municipalities(db) -> list[Municipality]:
    """Active Noord-Holland municipalities from the reference data."""
    found = list(
        Municipality.objects.filter(province="Noord-Holland", is_active=True).order_by("cbs_code")[:8]
    )
    assert len(found) == 8, "the data migration should have loaded the Noord-Holland municipalities"
    return found


def _contact_email(municipality: Municipality) -> str:
    return f"ambtenaar.{municipality.cbs_code.lower()}@example.nl"


def _confirmed_registration(cohort, municipality) -> Registration:
    """A pending signup confirmed through the service, in this process."""
    registration = RegistrationFactory(
        cohort=cohort, municipality=municipality, contact_email=_contact_email(municipality)
    )
    result = registration_confirm(token=registration.token)
    assert result.newly_confirmed
    return result.registration


def _start_counts(smtp) -> Counter:
    return Counter(r for m in smtp.with_subject(STARTED) for r in m.recipients)


def _outbox_snapshot() -> dict:
    return dict(Counter(OutboxMessage.objects.values_list("kind", flat=True)))


def _wait_until_worker_received(worker, task_name: str, at_least: int) -> None:
    wait_until(
        lambda: worker.received(task_name) >= at_least,
        timeout=20,
        message=f"the worker to receive {at_least} x {task_name}",
    )


def test_three_confirmations_send_one_start_email_per_recipient(
    client, cohort, smtp, celery_worker, municipalities
):
    """#2: three confirmations lead to exactly one "van start" email per
    participant contact and per advisor; running the task again, or twice at
    once, sends nothing more."""
    advisors = [UserFactory(staff=True), UserFactory(staff=True)]
    cohort.advisors.add(*advisors)
    signups = [
        registration_submit(
            cohort=cohort,
            municipality=municipality,
            contact_name=f"Contactpersoon {index}",
            contact_email=_contact_email(municipality),
            case_title=f"Wijkaanpak {municipality.name}",
            case_description="Een wijk die aardgasvrij wordt.",
            privacy_consent=True,
        )
        for index, municipality in enumerate(municipalities[:3])
    ]
    contacts = [signup.contact_email for signup in signups]

    # The double opt-in: each officer gets one confirmation link by email.
    wait_until(lambda: len(smtp.with_subject(CONFIRM_REQUEST)) >= 3, message="3 confirmation emails")
    links = {}
    for contact in contacts:
        (request_email,) = smtp.to(contact, CONFIRM_REQUEST)
        match = CONFIRM_PATH.search(request_email.text)
        assert match, "the confirmation email carries the confirmation link"
        links[contact] = reverse("registrations:confirm", kwargs={"token": match.group(1)})

    # Each officer confirms through the real view. Right after the third,
    # two more evaluations race the one the confirmation enqueued.
    for contact in contacts:
        response = client.post(links[contact])
        assert response.status_code in (200, 302), response.status_code
    evaluate_cohort.delay(cohort.pk)
    evaluate_cohort.delay(cohort.pk)

    assert (
        sorted(Registration.objects.filter(cohort=cohort).values_list("status", flat=True))
        == [RegistrationStatus.CONFIRMED] * 3
    )

    recipients = [*contacts, *(advisor.email for advisor in advisors)]
    wait_until(
        lambda: set(recipients) <= set(_start_counts(smtp)),
        message="a start email to every participant and advisor",
    )
    celery_worker.wait_idle()
    # The worker did the work: 3 evaluations from the confirmations + 2 extra.
    assert celery_worker.received("leerlab.tasks.evaluate_cohort") >= 5

    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED
    assert cohort.started_at is not None
    assert _start_counts(smtp) == Counter({recipient: 1 for recipient in recipients})
    for contact in contacts:
        assert len(smtp.to(contact, CONFIRM_REQUEST)) == 1
        assert len(smtp.to(contact, SEAT)) == 1
    expected_outbox = {"confirm_request": 3, "seat_confirmed": 3, "lab_started": 3, "lab_started_advisor": 2}
    assert _outbox_snapshot() == expected_outbox
    assert len(smtp.messages) == sum(expected_outbox.values())

    # Again, and twice at once, and the sweep on top: nothing more.
    started_at = cohort.started_at
    evaluated = celery_worker.received("leerlab.tasks.evaluate_cohort")
    evaluate_cohort.delay(cohort.pk)
    evaluate_cohort.delay(cohort.pk)
    evaluate_cohort.delay(cohort.pk)
    sweep.delay()
    sweep.delay()
    _wait_until_worker_received(celery_worker, "leerlab.tasks.evaluate_cohort", evaluated + 3)
    _wait_until_worker_received(celery_worker, "leerlab.tasks.sweep", 2)
    celery_worker.wait_idle()
    time.sleep(1)  # a straggler would arrive within this
    celery_worker.wait_idle()

    assert len(smtp.messages) == sum(expected_outbox.values())
    assert _start_counts(smtp) == Counter({recipient: 1 for recipient in recipients})
    assert _outbox_snapshot() == expected_outbox
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {MessageStatus.SENT}
    assert set(OutboxMessage.objects.values_list("attempts", flat=True)) == {1}
    cohort.refresh_from_db()
    assert cohort.started_at == started_at
    assert cohort.status == CohortStatus.STARTED
    # Every email carried its own stable Message-ID.
    message_ids = [m.message_id for m in smtp.messages]
    assert all(message_ids) and len(set(message_ids)) == len(message_ids)


def test_later_confirmations_join_and_the_sixth_is_waitlisted(cohort, smtp, celery_worker, municipalities):
    """#2: the 4th and 5th municipality get the start email when they join
    (once each), the cohort closes at 5, and the 6th lands on the waitlist."""
    advisor = UserFactory(staff=True)
    cohort.advisors.add(advisor)

    first_three = [_confirmed_registration(cohort, m) for m in municipalities[:3]]
    wait_until(
        lambda: {r.contact_email for r in first_three} | {advisor.email} <= set(_start_counts(smtp)),
        message="start emails for the first three and the advisor",
    )
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED

    fourth, fifth = (_confirmed_registration(cohort, m) for m in municipalities[3:5])
    assert fourth.status == fifth.status == RegistrationStatus.CONFIRMED
    wait_until(
        lambda: {fourth.contact_email, fifth.contact_email} <= set(_start_counts(smtp)),
        message="start emails for the 4th and 5th",
    )

    sixth = RegistrationFactory(
        cohort=cohort, municipality=municipalities[5], contact_email=_contact_email(municipalities[5])
    )
    result = registration_confirm(token=sixth.token)
    assert result.newly_confirmed and not result.has_seat
    assert result.registration.status == RegistrationStatus.WAITLISTED
    wait_until(lambda: smtp.to(sixth.contact_email, WAITLIST), message="the waitlist email")
    sweep.delay()
    _wait_until_worker_received(celery_worker, "leerlab.tasks.sweep", 1)
    celery_worker.wait_idle()

    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED
    assert cohort.closed_at is not None and cohort.started_at is not None
    assert cohort.registrations.filter(status=RegistrationStatus.CONFIRMED).count() == 5
    participants = [*first_three, fourth, fifth]
    assert _start_counts(smtp) == Counter({r.contact_email: 1 for r in participants} | {advisor.email: 1})
    assert smtp.to(sixth.contact_email, STARTED) == []
    assert len(smtp.to(sixth.contact_email, WAITLIST)) == 1
    assert len(smtp.to(sixth.contact_email)) == 1
    for registration in participants:
        assert len(smtp.to(registration.contact_email, SEAT)) == 1
        assert smtp.to(registration.contact_email, WAITLIST) == []
    assert _outbox_snapshot() == {
        "seat_confirmed": 5,
        "lab_started": 5,
        "lab_started_advisor": 1,
        "waitlisted": 1,
    }
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {MessageStatus.SENT}


def test_email_waits_while_smtp_is_down_and_goes_out_once_when_it_is_back(
    cohort, smtp, celery_worker, municipalities
):
    """#2: with the SMTP server down the start emails stay queued with the
    error noted; once it is back the sweep sends each of them exactly once,
    even when two sweeps run at the same time."""
    advisor = UserFactory(staff=True)
    cohort.advisors.add(advisor)
    smtp.stop()

    participants = [_confirmed_registration(cohort, m) for m in municipalities[:3]]
    expected = {"seat_confirmed": 3, "lab_started": 3, "lab_started_advisor": 1}

    def all_tried():
        messages = list(OutboxMessage.objects.all())
        return len(messages) == sum(expected.values()) and all(m.attempts >= 1 for m in messages)

    wait_until(all_tried, message="every email to be tried once against the dead SMTP server")
    celery_worker.wait_idle()
    assert _outbox_snapshot() == expected
    for message in OutboxMessage.objects.all():
        assert message.status == MessageStatus.QUEUED
        assert message.attempts == 1
        assert message.last_error
        assert message.next_attempt_at is not None and message.next_attempt_at > timezone.now()
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED  # the lab starts whether or not mail works

    smtp.start()
    assert smtp.messages == []
    # Skip the backoff instead of waiting for it.
    OutboxMessage.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    swept = celery_worker.received("leerlab.tasks.sweep")
    sweep.delay()
    sweep.delay()
    _wait_until_worker_received(celery_worker, "leerlab.tasks.sweep", swept + 2)
    wait_until(
        lambda: len(smtp.messages) >= sum(expected.values()),
        message="the queued emails to go out after SMTP is back",
    )
    celery_worker.wait_idle()
    time.sleep(1)

    assert len(smtp.messages) == sum(expected.values())
    recipients = [*(r.contact_email for r in participants), advisor.email]
    assert _start_counts(smtp) == Counter({recipient: 1 for recipient in recipients})
    for registration in participants:
        assert len(smtp.to(registration.contact_email, SEAT)) == 1
    for message in OutboxMessage.objects.all():
        assert message.status == MessageStatus.SENT
        assert message.attempts == 2
        assert message.sent_at is not None
