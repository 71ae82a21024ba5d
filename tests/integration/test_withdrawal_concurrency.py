"""Withdrawals and confirmations fired at the same moment at the real
PostgreSQL (issue #5): the lab lock then the cohort lock keep the seat
count and the waitlist order right, and every freed seat is mailed once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from leerlab.models import CohortStatus
from leerlab.services import cohort_seats_taken
from municipalities.models import Municipality
from outbox.models import OutboxMessage
from registrations.models import RegistrationStatus
from registrations.services import ACTOR_SELFSERVICE, registration_confirm, registration_withdraw
from tests.factories import RegistrationFactory

from .conftest import all_at_once

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(120),
]


@pytest.fixture(autouse=True)
def _postgres(require_postgres):
    pass


@pytest.fixture(autouse=True)
def _eager(eager_tasks):
    pass


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
    _, raised = all_at_once(calls)

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
