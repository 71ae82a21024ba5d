"""The cohort journey of issue #6 end to end: PostgreSQL, Redis, a real
Celery worker (two processes, so evaluations really run at the same time)
and a real SMTP server. The go/no-go cancellation and the automatic next
cohort each happen exactly once, however often the lifecycle task and the
sweep run; the emails counted are the ones the SMTP server received."""

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from leerlab.models import Cohort, CohortEvent, CohortEventAction, CohortStatus
from leerlab.tasks import evaluate_cohort, sweep
from municipalities.models import Municipality
from outbox.models import MessageStatus, OutboxMessage
from registrations.models import Registration, RegistrationStatus
from registrations.services import registration_confirm
from tests.factories import RegistrationFactory, UserFactory

from .conftest import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(180),
]

STARTED = "van start"
CANCELLED = "gaat niet door"
CANCELLED_ADVISOR = "Geannuleerd"
NEXT_OPENED = "Nieuw cohort geopend"


@pytest.fixture
def municipalities(db) -> list[Municipality]:
    found = list(
        Municipality.objects.filter(province="Noord-Holland", is_active=True).order_by("cbs_code")[:10]
    )
    assert len(found) == 10
    return found


def _email(municipality: Municipality) -> str:
    return f"ambtenaar.{municipality.cbs_code.lower()}@example.nl"


def _confirm(cohort, municipality, **kwargs) -> Registration:
    registration = RegistrationFactory(
        cohort=cohort, municipality=municipality, contact_email=_email(municipality)
    )
    return registration_confirm(token=registration.token, **kwargs).registration


def _received(smtp, subject: str) -> Counter:
    return Counter(r for m in smtp.with_subject(subject) for r in m.recipients)


def _hammer(cohort_ids, worker) -> None:
    """The lifecycle task several times for each cohort, and the sweep
    twice, all at once on the worker's two processes; then wait until the
    worker has run them all."""
    evaluated = worker.received("leerlab.tasks.evaluate_cohort")
    swept = worker.received("leerlab.tasks.sweep")
    for _ in range(3):
        for cohort_id in cohort_ids:
            evaluate_cohort.delay(cohort_id)
    sweep.delay()
    sweep.delay()
    wait_until(
        lambda: (
            worker.received("leerlab.tasks.evaluate_cohort") >= evaluated + 3 * len(cohort_ids)
            and worker.received("leerlab.tasks.sweep") >= swept + 2
        ),
        timeout=30,
        message="the worker to receive the extra evaluations and sweeps",
    )
    worker.wait_idle()
    time.sleep(1)  # a straggler would arrive within this
    worker.wait_idle()


def test_go_no_go_cancellation_happens_exactly_once(cohort, smtp, celery_worker, municipalities):
    advisor = UserFactory(staff=True)
    cohort.advisors.add(advisor)
    Cohort.objects.filter(pk=cohort.pk).update(go_no_go_date=timezone.localdate() + timedelta(days=7))
    participants = [_confirm(cohort, m) for m in municipalities[:2]]
    wait_until(lambda: len(smtp.with_subject("Aanmelding geslaagd")) >= 2, message="2 seat emails")
    celery_worker.wait_idle()
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.OPEN

    # The go/no-go day passes with 2 of the 3 needed.
    Cohort.objects.filter(pk=cohort.pk).update(go_no_go_date=timezone.localdate() - timedelta(days=1))
    _hammer([cohort.pk], celery_worker)

    recipients = {p.contact_email for p in participants}
    wait_until(
        lambda: recipients <= set(_received(smtp, CANCELLED)) and _received(smtp, CANCELLED_ADVISOR),
        message="the cancellation emails",
    )
    _hammer([cohort.pk], celery_worker)

    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CANCELLED
    assert cohort.ended_at is not None
    assert _received(smtp, CANCELLED) == Counter({email: 1 for email in recipients})
    assert _received(smtp, CANCELLED_ADVISOR) == Counter({advisor.email: 1})
    assert CohortEvent.objects.filter(cohort=cohort, action=CohortEventAction.CANCELLED).count() == 1
    assert not smtp.with_subject(STARTED)
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {MessageStatus.SENT}
    # The email told each of them where else to go.
    (mail,) = smtp.to(participants[0].contact_email, CANCELLED)
    assert "/leerlabs/startplan-wijkaanpak-aardgasvrij/aanmelden/" in mail.text


def test_automatic_next_cohort_opens_exactly_once_and_starts(cohort, smtp, celery_worker, municipalities):
    advisor = UserFactory(staff=True)
    cohort.advisors.add(advisor)
    lab = cohort.lab
    seated = [_confirm(cohort, m) for m in municipalities[: lab.max_municipalities]]
    wait_until(lambda: len(_received(smtp, STARTED)) >= len(seated) + 1, message="start emails of cohort 1")
    celery_worker.wait_idle()
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED

    # Three more confirm: the waitlist reaches the minimum with the third.
    waiting = [
        _confirm(cohort, m) for m in municipalities[lab.max_municipalities : lab.max_municipalities + 3]
    ]
    assert all(r.status == RegistrationStatus.WAITLISTED for r in waiting)
    wait_until(lambda: Cohort.objects.filter(previous_cohort=cohort).exists(), message="the next cohort")
    _hammer([cohort.pk, Cohort.objects.get(previous_cohort=cohort).pk], celery_worker)

    following = Cohort.objects.get(previous_cohort=cohort)
    moved = {r.contact_email for r in waiting}
    wait_until(
        lambda: moved <= set(_received(smtp, STARTED)) and _received(smtp, NEXT_OPENED),
        message="start emails of the next cohort",
    )
    _hammer([cohort.pk, following.pk], celery_worker)

    assert lab.cohorts.count() == 2
    following.refresh_from_db()
    assert following.number == 2
    assert following.status == CohortStatus.STARTED
    assert following.started_at is not None
    assert (
        sorted(following.registrations.values_list("status", flat=True)) == [RegistrationStatus.CONFIRMED] * 3
    )
    # In order: the same order as they confirmed.
    assert list(following.registrations.order_by("confirmed_at", "pk").values_list("pk", flat=True)) == [
        r.pk for r in waiting
    ]
    started = _received(smtp, STARTED)
    for registration in [*seated, *waiting]:
        assert started[registration.contact_email] == 1
    # The advisor: one start email per cohort, one "next cohort" email.
    assert started[advisor.email] == 2
    assert _received(smtp, NEXT_OPENED) == Counter({advisor.email: 1})
    assert CohortEvent.objects.filter(cohort=cohort, action=CohortEventAction.NEXT_COHORT_OPENED).count() == 1
    assert CohortEvent.objects.filter(cohort=following, action=CohortEventAction.STARTED).count() == 1
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {MessageStatus.SENT}
