"""Lifecycle rules of ../shared/DESIGN.md, one test per rule (issue #2)."""

import pytest

from leerlab import services
from leerlab.errors import CohortFull, IllegalTransition
from leerlab.models import CohortStatus
from outbox.models import OutboxMessage
from registrations.models import RegistrationStatus
from tests.factories import CohortFactory, MunicipalityFactory, RegistrationFactory, UserFactory


def start_subjects():
    return list(OutboxMessage.objects.filter(subject__contains="van start").values_list("to", flat=True))


@pytest.fixture
def advisor(db):
    return UserFactory(staff=True, email="adviseur@servicepunt.example")


def confirm_n(cohort, n):
    return [RegistrationFactory(cohort=cohort, confirmed=True) for _ in range(n)]


def test_below_minimum_stays_open(cohort, django_capture_on_commit_callbacks):
    confirm_n(cohort, 2)
    with django_capture_on_commit_callbacks(execute=True):
        services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.OPEN
    assert cohort.started_at is None
    assert start_subjects() == []


def test_minimum_starts_and_mails_everyone_once(
    cohort, advisor, django_capture_on_commit_callbacks, mailoutbox
):
    cohort.advisors.add(advisor)
    registrations = confirm_n(cohort, 3)
    with django_capture_on_commit_callbacks(execute=True):
        services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED
    assert cohort.started_at is not None
    expected = sorted([r.contact_email for r in registrations] + [advisor.email])
    assert sorted(start_subjects()) == expected
    assert sorted(m.to[0] for m in mailoutbox if "van start" in m.subject) == expected


def test_evaluate_twice_changes_and_sends_nothing_more(
    cohort, advisor, django_capture_on_commit_callbacks, mailoutbox
):
    cohort.advisors.add(advisor)
    confirm_n(cohort, 3)
    with django_capture_on_commit_callbacks(execute=True):
        services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    started_at = cohort.started_at
    sent = len(mailoutbox)
    with django_capture_on_commit_callbacks(execute=True):
        services.cohort_evaluate(cohort_id=cohort.pk)
        services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.started_at == started_at
    assert len(mailoutbox) == sent
    assert OutboxMessage.objects.filter(subject__contains="van start").count() == 4


def test_late_joiner_gets_start_email_when_joining(cohort, django_capture_on_commit_callbacks):
    confirm_n(cohort, 3)
    services.cohort_evaluate(cohort_id=cohort.pk)
    late = RegistrationFactory(cohort=cohort, confirmed=True)
    services.cohort_evaluate(cohort_id=cohort.pk)
    assert start_subjects().count(late.contact_email) == 1
    assert len(start_subjects()) == 4


def test_maximum_closes(cohort):
    confirm_n(cohort, 5)
    services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED
    assert cohort.closed_at is not None


def test_open_to_closed_in_one_step_still_sends_start_emails(cohort):
    """Five confirmations before any evaluation: open -> closed directly."""
    confirm_n(cohort, 5)
    services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED
    assert cohort.started_at is not None
    assert len(start_subjects()) == 5


def test_pending_do_not_count(cohort):
    confirm_n(cohort, 2)
    RegistrationFactory(cohort=cohort)
    RegistrationFactory(cohort=cohort, expired=True)
    services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.OPEN


def test_waitlisted_do_not_count_in_closed_cohort(cohort):
    confirm_n(cohort, 2)
    services.cohort_close_registration(cohort_id=cohort.pk)
    RegistrationFactory(cohort=cohort, waitlisted=True)
    services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.started_at is None
    assert services.cohort_seats_taken(cohort=cohort) == 2


def test_seats_count_municipalities_not_people(cohort):
    municipality = MunicipalityFactory()
    RegistrationFactory(cohort=cohort, municipality=municipality, confirmed=True)
    # A second person of the same municipality can only be pending or withdrawn.
    RegistrationFactory(cohort=cohort, municipality=municipality, status=RegistrationStatus.WITHDRAWN)
    assert services.cohort_seats_taken(cohort=cohort) == 1


def test_minimum_is_per_lab(db):
    cohort = CohortFactory(lab__min_municipalities=2, lab__max_municipalities=2)
    confirm_n(cohort, 2)
    services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED
    assert cohort.started_at is not None


def test_finished_cohorts_are_left_alone(db):
    cohort = CohortFactory(status=CohortStatus.CANCELLED)
    confirm_n(cohort, 3)
    services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CANCELLED
    assert start_subjects() == []


def test_start_now_starts_below_minimum(cohort, advisor):
    cohort.advisors.add(advisor)
    registration = RegistrationFactory(cohort=cohort, confirmed=True)
    services.cohort_start_now(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED
    assert sorted(start_subjects()) == sorted([registration.contact_email, advisor.email])


def test_start_now_refuses_when_not_open(db):
    cohort = CohortFactory(started=True)
    with pytest.raises(IllegalTransition):
        services.cohort_start_now(cohort_id=cohort.pk)


def test_close_registration_before_start_sends_nothing(cohort):
    confirm_n(cohort, 1)
    services.cohort_close_registration(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED
    assert cohort.started_at is None
    assert start_subjects() == []


def test_closed_cohort_that_reaches_minimum_starts_and_stays_closed(cohort):
    services.cohort_close_registration(cohort_id=cohort.pk)
    confirm_n(cohort, 3)
    services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED
    assert cohort.started_at is not None
    assert len(start_subjects()) == 3


def test_reopen_returns_to_started_or_open(cohort):
    services.cohort_close_registration(cohort_id=cohort.pk)
    services.cohort_reopen(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.OPEN
    assert cohort.closed_at is None

    confirm_n(cohort, 3)
    services.cohort_evaluate(cohort_id=cohort.pk)
    services.cohort_close_registration(cohort_id=cohort.pk)
    services.cohort_reopen(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED


def test_reopen_refuses_full_cohort(cohort):
    confirm_n(cohort, 5)
    services.cohort_evaluate(cohort_id=cohort.pk)
    with pytest.raises(CohortFull):
        services.cohort_reopen(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED


def test_reopen_refuses_open_cohort(cohort):
    with pytest.raises(IllegalTransition):
        services.cohort_reopen(cohort_id=cohort.pk)


def test_advisor_without_email_is_skipped(cohort):
    cohort.advisors.add(UserFactory(email=""))
    confirm_n(cohort, 3)
    services.cohort_evaluate(cohort_id=cohort.pk)
    assert len(start_subjects()) == 3


def test_sweep_evaluates_current_cohorts(cohort, mailoutbox, django_capture_on_commit_callbacks):
    """A lost evaluate task (e.g. broker down at commit) is repaired by the sweep."""
    confirm_n(cohort, 3)
    with django_capture_on_commit_callbacks(execute=True):
        result = services.sweep()
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED
    assert result["cohorts"] >= 4
    assert len([m for m in mailoutbox if "van start" in m.subject]) == 3


def test_reopen_after_raising_maximum_gives_free_seats_to_waitlist_in_order(
    cohort, mailoutbox, django_capture_on_commit_callbacks
):
    """Seats freed by reopening go to the waitlist first, first confirmed first."""
    from datetime import timedelta

    from django.utils import timezone

    confirm_n(cohort, 5)
    services.cohort_evaluate(cohort_id=cohort.pk)
    now = timezone.now()
    second = RegistrationFactory(cohort=cohort, waitlisted=True, confirmed_at=now)
    first = RegistrationFactory(cohort=cohort, waitlisted=True, confirmed_at=now - timedelta(hours=1))
    third = RegistrationFactory(cohort=cohort, waitlisted=True, confirmed_at=now + timedelta(hours=1))
    cohort.lab.max_municipalities = 7
    cohort.lab.save()
    with django_capture_on_commit_callbacks(execute=True):
        services.cohort_reopen(cohort_id=cohort.pk)
    for registration in (first, second, third):
        registration.refresh_from_db()
    assert (first.status, second.status, third.status) == (
        RegistrationStatus.CONFIRMED,
        RegistrationStatus.CONFIRMED,
        RegistrationStatus.WAITLISTED,
    )
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED  # full again at 7
    promoted = [m.to[0] for m in mailoutbox if "plaats" in m.subject]
    assert sorted(promoted) == sorted([first.contact_email, second.contact_email])
    # The promoted municipalities join a started cohort: their start email.
    assert start_subjects().count(first.contact_email) == 1
    # Nothing more on a second evaluation.
    count = len(mailoutbox)
    with django_capture_on_commit_callbacks(execute=True):
        services.cohort_evaluate(cohort_id=cohort.pk)
    assert len(mailoutbox) == count
