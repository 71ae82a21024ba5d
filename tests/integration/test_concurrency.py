"""Confirmations fired at the same moment at the real PostgreSQL (#2).

Each thread has its own database connection, so the cohort row lock is
what keeps the seat count right. Tasks enqueued on commit run eagerly in
the confirming thread (as settings_test configures)."""

import functools
from collections import Counter

import pytest

from leerlab.models import CohortStatus, LeerLab
from municipalities.models import Municipality
from outbox.models import MessageStatus, OutboxMessage
from registrations import errors
from registrations.models import Registration, RegistrationStatus
from registrations.services import registration_confirm, waitlist_position
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


def _confirm_all_at_once(tokens: list[str]) -> tuple[list, list[BaseException]]:
    """registration_confirm for every token, all at the same moment."""
    return all_at_once([functools.partial(registration_confirm, token=token) for token in tokens])


def test_twenty_four_simultaneous_confirmations_fill_exactly_five_seats(cohort):
    """#2: 24 confirmations at the same moment at one 5-seat cohort end in
    exactly 5 seats and 19 on the waitlist, with no error."""
    assert cohort.lab.max_municipalities == 5
    # The waitlist stays on this cohort: the automatic next cohort (issue #6,
    # tests/integration/test_journey_worker.py) would move it on.
    LeerLab.objects.filter(pk=cohort.lab_id).update(auto_next_cohort=False)
    municipalities = list(
        Municipality.objects.filter(province="Noord-Holland", is_active=True).order_by("cbs_code")[:24]
    )
    assert len(municipalities) == 24
    registrations = [RegistrationFactory(cohort=cohort, municipality=m) for m in municipalities]

    results, raised = _confirm_all_at_once([r.token for r in registrations])

    assert raised == []
    assert len(results) == 24
    assert all(result.newly_confirmed for result in results)
    assert sum(result.has_seat for result in results) == 5
    statuses = Counter(Registration.objects.filter(cohort=cohort).values_list("status", flat=True))
    assert statuses == {RegistrationStatus.CONFIRMED: 5, RegistrationStatus.WAITLISTED: 19}
    waitlisted = Registration.objects.filter(cohort=cohort, status=RegistrationStatus.WAITLISTED)
    assert sorted(waitlist_position(registration=r) for r in waitlisted) == list(range(1, 20))
    # Who got a seat was decided in order of confirmation.
    confirmed_last = max(
        Registration.objects.filter(cohort=cohort, status=RegistrationStatus.CONFIRMED).values_list(
            "confirmed_at", flat=True
        )
    )
    assert all(r.confirmed_at > confirmed_last for r in waitlisted)

    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED
    assert cohort.started_at is not None
    kinds = Counter(OutboxMessage.objects.values_list("kind", flat=True))
    assert kinds == {"seat_confirmed": 5, "waitlisted": 19, "lab_started": 5}
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {MessageStatus.SENT}


def test_the_same_link_confirmed_ten_times_at_once_takes_one_seat(cohort):
    """#2: ten simultaneous confirmations of one link confirm once; the
    others see the same outcome (or "link used"), never a server error."""
    registration = RegistrationFactory(cohort=cohort)

    results, raised = _confirm_all_at_once([registration.token] * 10)

    assert all(isinstance(exc, errors.TokenUsed) for exc in raised), raised
    assert len(results) + len(raised) == 10
    assert sum(result.newly_confirmed for result in results) == 1
    assert all(result.registration.pk == registration.pk and result.has_seat for result in results)
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.CONFIRMED
    assert cohort.registrations.filter(status=RegistrationStatus.CONFIRMED).count() == 1
    assert OutboxMessage.objects.filter(kind="seat_confirmed", registration=registration).count() == 1
    assert OutboxMessage.objects.filter(kind="waitlisted").count() == 0


def test_one_municipality_confirming_several_signups_at_once_gets_one_place(cohort):
    """#2: pending signups of one municipality confirmed at the same moment
    give that municipality one place; the rest are told it is registered
    already, and the database constraint never surfaces as an error."""
    municipality = (
        Municipality.objects.filter(province="Noord-Holland", is_active=True).order_by("cbs_code").first()
    )
    registrations = [RegistrationFactory(cohort=cohort, municipality=municipality) for _ in range(6)]

    results, raised = _confirm_all_at_once([r.token for r in registrations])

    assert len(results) == 1 and results[0].has_seat
    assert len(raised) == 5
    assert all(isinstance(exc, errors.AlreadyRegistered) for exc in raised), raised
    statuses = Counter(Registration.objects.filter(cohort=cohort).values_list("status", flat=True))
    assert statuses == {RegistrationStatus.CONFIRMED: 1, RegistrationStatus.PENDING: 5}


def test_twenty_four_at_once_with_the_automatic_next_cohort_end_in_five_full_runs(cohort):
    """Issue #6 under concurrency: 24 confirmations at once at a 5-seat lab
    with the automatic next cohort on. Evaluations run in every confirming
    thread at the same time; in the end every municipality has a seat, no
    cohort has more than 5, each cohort got at most one next cohort, and
    the waitlist moved in order."""
    from leerlab.models import Cohort
    from leerlab.services import sweep

    municipalities = list(
        Municipality.objects.filter(province="Noord-Holland", is_active=True).order_by("cbs_code")[:24]
    )
    registrations = [RegistrationFactory(cohort=cohort, municipality=m) for m in municipalities]

    results, raised = _confirm_all_at_once([r.token for r in registrations])
    assert raised == []
    for _ in range(5):  # the safety net settles whatever a busy lock left over
        sweep()

    cohorts = list(Cohort.objects.filter(lab=cohort.lab).order_by("number"))
    seats = [c.registrations.filter(status=RegistrationStatus.CONFIRMED).count() for c in cohorts]
    assert seats == [5, 5, 5, 5, 4]
    assert not Registration.objects.filter(status=RegistrationStatus.WAITLISTED).exists()
    assert Registration.objects.filter(cohort__lab=cohort.lab).count() == 24
    assert [c.previous_cohort_id for c in cohorts] == [None, *[c.pk for c in cohorts[:-1]]]
    assert [c.status for c in cohorts] == [CohortStatus.CLOSED] * 4 + [CohortStatus.STARTED]
    # In order: every seat in an earlier cohort was confirmed before any in a later one.
    for earlier, later in zip(cohorts, cohorts[1:], strict=False):
        last = max(earlier.registrations.values_list("confirmed_at", flat=True))
        first = min(later.registrations.values_list("confirmed_at", flat=True))
        assert last <= first
    # One start email per municipality, whichever cohort it ended up in.
    started = Counter(
        OutboxMessage.objects.filter(kind="lab_started").values_list("registration_id", flat=True)
    )
    assert started == {r.pk: 1 for r in registrations}
