"""Withdrawal frees the seat (issue #5): the waitlist moves up with exactly
one "plaats" email, a closed cohort reopens unless the waitlist fills it
again, a started cohort never un-starts and advisors are told."""

from datetime import timedelta

import pytest
from django.utils import timezone

from leerlab.models import CohortStatus
from outbox.models import OutboxMessage
from registrations import errors
from registrations.models import RegistrationEvent, RegistrationStatus
from registrations.services import ACTOR_SELFSERVICE, registration_withdraw
from tests.factories import CohortFactory, RegistrationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def advisor(db):
    return UserFactory(staff=True, email="adviseur@servicepunt.example")


def seats(cohort, n):
    return [RegistrationFactory(cohort=cohort, confirmed=True) for _ in range(n)]


def waitlist(cohort, n):
    base = timezone.now() - timedelta(hours=1)
    return [
        RegistrationFactory(cohort=cohort, waitlisted=True, confirmed_at=base + timedelta(minutes=i))
        for i in range(n)
    ]


def withdraw(registration, capture):
    with capture(execute=True):
        return registration_withdraw(registration_id=registration.pk, actor=ACTOR_SELFSERVICE)


def test_withdrawal_promotes_first_on_waitlist_with_exactly_one_email(
    advisor, django_capture_on_commit_callbacks, mailoutbox
):
    """Issue #5: the first waitlisted municipality moves in, gets one email
    whose subject contains "plaats"; the second stays waiting; advisors get
    one email about the withdrawal."""
    cohort = CohortFactory(closed=True, advisors=[advisor])
    holders = seats(cohort, 5)
    first, second = waitlist(cohort, 2)

    result = withdraw(holders[0], django_capture_on_commit_callbacks)

    first.refresh_from_db()
    second.refresh_from_db()
    cohort.refresh_from_db()
    assert result.freed_seat and [r.pk for r in result.promoted] == [first.pk]
    assert first.status == RegistrationStatus.CONFIRMED
    assert second.status == RegistrationStatus.WAITLISTED
    # Full again: stays closed.
    assert cohort.status == CohortStatus.CLOSED
    assert cohort.closed_at is not None
    plaats = [m for m in mailoutbox if "plaats" in m.subject]
    assert [m.to for m in plaats] == [[first.contact_email]]
    advisor_mail = [m for m in mailoutbox if m.to == [advisor.email] and "Afmelding" in m.subject]
    assert len(advisor_mail) == 1
    assert first.municipality.name in advisor_mail[0].body
    holders[0].refresh_from_db()
    assert holders[0].status == RegistrationStatus.WITHDRAWN
    assert holders[0].withdrawn_at is not None
    assert list(holders[0].events.values_list("action", "actor")) == [("withdrawn", ACTOR_SELFSERVICE)]
    assert first.events.filter(action="promoted", actor="system").count() == 1


def test_closed_cohort_not_full_again_reopens(advisor, django_capture_on_commit_callbacks):
    """Issue #5: a closed cohort with no waitlist to fill the seat reopens
    (started stays started)."""
    cohort = CohortFactory(closed=True, advisors=[advisor])
    holders = seats(cohort, 5)

    result = withdraw(holders[0], django_capture_on_commit_callbacks)

    cohort.refresh_from_db()
    assert result.reopened
    assert cohort.status == CohortStatus.STARTED
    assert cohort.closed_at is None
    assert cohort.started_at is not None


def test_closed_cohort_not_yet_started_reopens_as_open(django_capture_on_commit_callbacks):
    cohort = CohortFactory(status=CohortStatus.CLOSED, closed_at=timezone.now())
    holders = seats(cohort, 2)
    withdraw(holders[0], django_capture_on_commit_callbacks)
    cohort.refresh_from_db()
    assert (cohort.status, cohort.closed_at, cohort.started_at) == (CohortStatus.OPEN, None, None)


def test_started_cohort_below_minimum_stays_started_and_advisors_are_told(
    advisor, django_capture_on_commit_callbacks, mailoutbox
):
    """Issue #5: withdrawal never un-starts a cohort; advisors get one
    "below minimum" email."""
    cohort = CohortFactory(started=True, advisors=[advisor])
    holders = seats(cohort, 3)

    result = withdraw(holders[0], django_capture_on_commit_callbacks)

    cohort.refresh_from_db()
    assert result.below_minimum
    assert cohort.status == CohortStatus.STARTED
    assert cohort.started_at is not None
    below = [m for m in mailoutbox if "minimum" in m.subject]
    assert [m.to for m in below] == [[advisor.email]]
    assert OutboxMessage.objects.filter(kind="cohort_below_minimum_advisor").count() == 1


def test_started_cohort_refilled_from_waitlist_is_not_below_minimum(
    advisor, django_capture_on_commit_callbacks, mailoutbox
):
    cohort = CohortFactory(started=True, advisors=[advisor])
    holders = seats(cohort, 3)
    waitlist(cohort, 1)
    result = withdraw(holders[0], django_capture_on_commit_callbacks)
    assert not result.below_minimum
    assert not [m for m in mailoutbox if "minimum" in m.subject]


def test_waitlisted_withdrawal_frees_no_seat(advisor, django_capture_on_commit_callbacks, mailoutbox):
    cohort = CohortFactory(closed=True, advisors=[advisor])
    seats(cohort, 5)
    first, second = waitlist(cohort, 2)

    result = withdraw(first, django_capture_on_commit_callbacks)

    second.refresh_from_db()
    cohort.refresh_from_db()
    assert not result.freed_seat
    assert second.status == RegistrationStatus.WAITLISTED
    assert cohort.status == CohortStatus.CLOSED
    assert not [m for m in mailoutbox if "plaats" in m.subject]


def test_pending_withdrawal_and_twice(django_capture_on_commit_callbacks, mailoutbox):
    registration = RegistrationFactory()
    withdraw(registration, django_capture_on_commit_callbacks)
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.WITHDRAWN
    with pytest.raises(errors.AlreadyWithdrawn):
        withdraw(registration, django_capture_on_commit_callbacks)
    assert RegistrationEvent.objects.filter(registration=registration, action="withdrawn").count() == 1
    # A pending signup held nothing: no email to anyone.
    assert mailoutbox == []
