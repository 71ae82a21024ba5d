"""Withdrawals and confirmations fired at the same moment at the real
PostgreSQL (issue #5): the lab lock then the cohort lock keep the seat
count and the waitlist order right, and every freed seat is mailed once."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from leerlab.celery import app as celery_app
from leerlab.models import CohortStatus
from leerlab.services import cohort_seats_taken
from municipalities.models import Municipality
from outbox.models import OutboxMessage
from registrations.models import RegistrationStatus
from registrations.services import ACTOR_SELFSERVICE, registration_confirm, registration_withdraw
from tests.factories import RegistrationFactory

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(120),
]


@pytest.fixture(autouse=True)
def _postgres(require_postgres):
    pass


@pytest.fixture(autouse=True)
def _eager_tasks():
    saved = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = saved


def _all_at_once(calls) -> list[BaseException]:
    barrier = threading.Barrier(len(calls))
    raised = []
    lock = threading.Lock()

    def run(call) -> None:
        try:
            barrier.wait(timeout=30)
            call()
        except BaseException as exc:  # noqa: BLE001 - the test reports every one
            with lock:
                raised.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads), "a call hung"
    return raised


def test_simultaneous_withdrawals_and_confirmations(cohort):
    """Issue #5: three seat holders withdraw while two new signups confirm,
    all at once, in a full closed cohort with three on the waitlist. The
    three waitlisted move in (one "plaats" email each), the newcomers wait,
    the cohort is full and closed, nobody gets an error."""
    municipalities = iter(
        Municipality.objects.filter(province="Noord-Holland", is_active=True).order_by("cbs_code")[:10]
    )
    cohort.status = CohortStatus.CLOSED
    cohort.started_at = cohort.closed_at = timezone.now()
    cohort.save()
    holders = [
        RegistrationFactory(cohort=cohort, municipality=next(municipalities), confirmed=True)
        for _ in range(5)
    ]
    base = timezone.now() - timedelta(hours=1)
    waiting = [
        RegistrationFactory(
            cohort=cohort,
            municipality=next(municipalities),
            waitlisted=True,
            confirmed_at=base + timedelta(minutes=i),
        )
        for i in range(3)
    ]
    newcomers = [RegistrationFactory(cohort=cohort, municipality=next(municipalities)) for _ in range(2)]

    calls = [
        (lambda pk=r.pk: registration_withdraw(registration_id=pk, actor=ACTOR_SELFSERVICE))
        for r in holders[:3]
    ] + [(lambda token=r.token: registration_confirm(token=token)) for r in newcomers]
    raised = _all_at_once(calls)

    assert raised == []
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED
    assert cohort_seats_taken(cohort=cohort) == 5
    for registration in waiting:
        registration.refresh_from_db()
        assert registration.status == RegistrationStatus.CONFIRMED
    for registration in newcomers:
        registration.refresh_from_db()
        assert registration.status == RegistrationStatus.WAITLISTED
    promoted = OutboxMessage.objects.filter(kind="waitlist_promoted")
    assert sorted(promoted.values_list("to", flat=True)) == sorted(r.contact_email for r in waiting)
    assert all("plaats" in subject for subject in promoted.values_list("subject", flat=True))
