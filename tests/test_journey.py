"""The cohort journey (issue #6): go/no-go cancellation, the automatic next
cohort for a closed cohort's waitlist, completing and cancelling by hand,
and the history of both cohorts and registrations. The same on PostgreSQL
with the real worker: tests/integration/test_journey_worker.py."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leerlab import services
from leerlab.errors import IllegalTransition
from leerlab.models import Cohort, CohortEvent, CohortEventAction, CohortStatus, LeerLab
from leerlab.selectors import lab_state
from outbox.models import OutboxMessage
from privacy.services import planned_removal
from registrations import errors
from registrations.models import RegistrationEvent, RegistrationEventAction, RegistrationStatus
from registrations.services import registration_confirm
from tests.factories import MunicipalityFactory, RegistrationFactory, UserFactory

YESTERDAY = timedelta(days=-1)


def _today():
    return timezone.localdate()


def _kinds(**filters) -> list[str]:
    return sorted(OutboxMessage.objects.filter(**filters).values_list("kind", flat=True))


def _events(cohort) -> list[str]:
    return list(CohortEvent.objects.filter(cohort=cohort).values_list("action", flat=True))


# --- Go/no-go ------------------------------------------------------------------


@pytest.fixture
def advisor(db):
    return UserFactory(staff=True, first_name="Anna", last_name="Adviseur")


def _below_minimum_at_go_no_go(cohort, advisor, *, days=-1):
    cohort.advisors.add(advisor)
    confirmed = [RegistrationFactory(cohort=cohort, confirmed=True) for _ in range(2)]
    pending = RegistrationFactory(cohort=cohort)
    Cohort.objects.filter(pk=cohort.pk).update(go_no_go_date=_today() + timedelta(days=days))
    return confirmed, pending


def test_go_no_go_passed_below_minimum_cancels_and_tells_everyone_once(cohort, advisor):
    confirmed, pending = _below_minimum_at_go_no_go(cohort, advisor)

    services.cohort_evaluate(cohort_id=cohort.pk)
    services.cohort_evaluate(cohort_id=cohort.pk)
    services.sweep()

    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CANCELLED
    assert cohort.ended_at is not None
    assert cohort.started_at is None
    # Each confirmed registrant once, the advisor once; the unconfirmed
    # address gets nothing (it never proved to be the officer's).
    for registration in confirmed:
        assert _kinds(to=registration.contact_email) == ["cohort_cancelled"]
    assert not OutboxMessage.objects.filter(to=pending.contact_email, kind="cohort_cancelled").exists()
    assert _kinds(to=advisor.email) == ["cohort_cancelled_advisor"]
    assert _events(cohort).count(CohortEventAction.CANCELLED) == 1
    event = CohortEvent.objects.get(cohort=cohort, action=CohortEventAction.CANCELLED)
    assert event.actor == "system"
    assert event.details == {"reason": "go_no_go", "seats": 2}
    for registration in confirmed:
        assert registration.events.filter(action=RegistrationEventAction.COHORT_CANCELLED).count() == 1


def test_the_cancellation_email_names_the_alternatives(cohort, advisor):
    confirmed, _ = _below_minimum_at_go_no_go(cohort, advisor)

    services.cohort_evaluate(cohort_id=cohort.pk)

    message = OutboxMessage.objects.get(to=confirmed[0].contact_email)
    assert "gaat niet door" in message.subject
    assert "go/no-go-datum" in message.body_text
    # The three other labs, each with its state and signup link.
    for other in LeerLab.objects.exclude(pk=cohort.lab_id):
        assert other.title in message.body_text
        assert reverse("registrations:signup", kwargs={"slug": other.slug}) in message.body_text
    # No cohort of this lab takes signups any more: no link to it.
    assert reverse("registrations:signup", kwargs={"slug": cohort.lab.slug}) not in message.body_text
    advisor_mail = OutboxMessage.objects.get(to=advisor.email)
    assert confirmed[0].municipality.name in advisor_mail.body_text
    assert "geen cohort dat aanmeldingen aanneemt" in advisor_mail.body_text


def test_a_later_cohort_of_the_same_lab_is_offered(cohort, advisor):
    confirmed, _ = _below_minimum_at_go_no_go(cohort, advisor)
    services.cohort_create(lab_id=cohort.lab_id)

    services.cohort_evaluate(cohort_id=cohort.pk)

    message = OutboxMessage.objects.get(to=confirmed[0].contact_email)
    assert reverse("registrations:signup", kwargs={"slug": cohort.lab.slug}) in message.body_text
    assert "volgend cohort" in message.body_text


def test_english_registrant_is_told_in_english(cohort, advisor):
    confirmed, _ = _below_minimum_at_go_no_go(cohort, advisor)
    confirmed[0].language = "en"
    confirmed[0].save(update_fields=["language"])

    services.cohort_evaluate(cohort_id=cohort.pk)

    message = OutboxMessage.objects.get(to=confirmed[0].contact_email)
    assert "will not go ahead" in message.subject
    assert "/en/leerlabs/" in message.body_text


def test_the_go_no_go_day_itself_is_still_go(cohort, advisor):
    _below_minimum_at_go_no_go(cohort, advisor, days=0)

    services.cohort_evaluate(cohort_id=cohort.pk)

    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.OPEN
    assert not OutboxMessage.objects.exists()


def test_enough_municipalities_by_go_no_go_starts_instead(cohort, advisor):
    cohort.advisors.add(advisor)
    for _ in range(cohort.lab.min_municipalities):
        RegistrationFactory(cohort=cohort, confirmed=True)
    Cohort.objects.filter(pk=cohort.pk).update(go_no_go_date=_today() + YESTERDAY)

    services.cohort_evaluate(cohort_id=cohort.pk)

    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED
    assert not OutboxMessage.objects.filter(kind__startswith="cohort_cancelled").exists()


def test_a_started_cohort_is_never_cancelled_by_go_no_go(cohort, advisor):
    cohort.advisors.add(advisor)
    RegistrationFactory(cohort=cohort, confirmed=True)
    services.cohort_start_now(cohort_id=cohort.pk)
    Cohort.objects.filter(pk=cohort.pk).update(go_no_go_date=_today() + YESTERDAY)

    services.cohort_evaluate(cohort_id=cohort.pk)

    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED


def test_confirming_into_a_cancelled_cohort_is_refused(cohort, advisor):
    _, pending = _below_minimum_at_go_no_go(cohort, advisor)
    services.cohort_evaluate(cohort_id=cohort.pk)

    with pytest.raises(errors.SignupClosed):
        registration_confirm(token=pending.token)


def test_after_cancellation_the_municipality_may_sign_up_again(cohort, advisor):
    confirmed, _ = _below_minimum_at_go_no_go(cohort, advisor)
    services.cohort_evaluate(cohort_id=cohort.pk)
    newer = services.cohort_create(lab_id=cohort.lab_id)
    again = RegistrationFactory(cohort=newer, municipality=confirmed[0].municipality)

    result = registration_confirm(token=again.token)

    assert result.registration.status == RegistrationStatus.CONFIRMED


# --- The automatic next cohort ---------------------------------------------------


def _closed_with_waitlist(cohort, advisor, waiting: int):
    cohort.advisors.add(advisor)
    for _ in range(cohort.lab.max_municipalities):
        RegistrationFactory(cohort=cohort, confirmed=True)
    services.cohort_evaluate(cohort_id=cohort.pk)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED
    base = timezone.now()
    return [
        RegistrationFactory(cohort=cohort, waitlisted=True, confirmed_at=base + timedelta(seconds=i))
        for i in range(waiting)
    ]


def test_waitlist_below_minimum_opens_nothing(cohort, advisor):
    _closed_with_waitlist(cohort, advisor, waiting=cohort.lab.min_municipalities - 1)

    services.cohort_evaluate(cohort_id=cohort.pk)

    assert cohort.lab.cohorts.count() == 1


def test_waitlist_at_minimum_opens_the_next_cohort_once_and_it_starts(cohort, advisor):
    waiting = _closed_with_waitlist(cohort, advisor, waiting=cohort.lab.min_municipalities)

    services.cohort_evaluate(cohort_id=cohort.pk)  # eager: evaluates the new one too
    services.cohort_evaluate(cohort_id=cohort.pk)
    services.sweep()

    following = Cohort.objects.get(previous_cohort=cohort)
    assert following.number == cohort.number + 1
    assert list(cohort.lab.cohorts.order_by("number").values_list("number", flat=True)) == [1, 2]
    assert list(following.advisors.all()) == [advisor]
    assert following.status == CohortStatus.STARTED
    for registration in waiting:
        registration.refresh_from_db()
        assert registration.cohort_id == following.pk
        assert registration.status == RegistrationStatus.CONFIRMED
        assert _kinds(to=registration.contact_email, cohort=following) == ["lab_started"]
        (event,) = registration.events.filter(action=RegistrationEventAction.MOVED_TO_NEXT_COHORT)
        assert event.details["from_cohort"] == cohort.pk and event.details["to_cohort"] == following.pk
    assert _kinds(to=advisor.email, cohort=following) == ["lab_started_advisor", "next_cohort_opened_advisor"]
    assert _events(cohort).count(CohortEventAction.NEXT_COHORT_OPENED) == 1
    assert _events(following)[:2] == [CohortEventAction.OPENED_FROM_WAITLIST, CohortEventAction.STARTED]
    # New signups for the lab now go to the new cohort.
    assert lab_state(slug=cohort.lab.slug).cohort == following


def test_the_waitlist_moves_in_order_and_the_rest_waits_in_the_new_cohort(
    cohort, advisor, django_capture_on_commit_callbacks
):
    lab = cohort.lab
    waiting = _closed_with_waitlist(cohort, advisor, waiting=lab.max_municipalities + 2)
    # Out of creation order: the waitlist order is the confirmation order.
    first = waiting[-1]
    first.confirmed_at = timezone.now() - timedelta(days=1)
    first.save(update_fields=["confirmed_at"])

    with django_capture_on_commit_callbacks(execute=True):
        services.cohort_evaluate(cohort_id=cohort.pk)

    following = Cohort.objects.get(previous_cohort=cohort)
    following.refresh_from_db()
    order = sorted(waiting, key=lambda r: (r.confirmed_at if r.pk != first.pk else first.confirmed_at, r.pk))
    statuses = {r.pk: r.status for r in following.registrations.all()}
    assert [statuses[r.pk] for r in order] == (
        [RegistrationStatus.CONFIRMED] * lab.max_municipalities + [RegistrationStatus.WAITLISTED] * 2
    )
    assert statuses[first.pk] == RegistrationStatus.CONFIRMED
    assert following.status == CohortStatus.CLOSED
    # Two left waiting is below the minimum: no third cohort.
    assert lab.cohorts.count() == 2


def test_the_switch_off_keeps_the_waitlist_where_it_is(cohort, advisor):
    LeerLab.objects.filter(pk=cohort.lab_id).update(auto_next_cohort=False)
    waiting = _closed_with_waitlist(cohort, advisor, waiting=4)

    services.cohort_evaluate(cohort_id=cohort.pk)

    assert cohort.lab.cohorts.count() == 1
    assert {r.cohort_id for r in waiting} == {cohort.pk}
    assert not OutboxMessage.objects.filter(kind="next_cohort_opened_advisor").exists()


def test_a_cohort_an_advisor_opened_gives_its_seats_to_the_waitlist_first(
    cohort, advisor, django_capture_on_commit_callbacks
):
    waiting = _closed_with_waitlist(cohort, advisor, waiting=7)

    with django_capture_on_commit_callbacks(execute=True):
        newer = services.cohort_create(lab_id=cohort.lab_id, actor="anna")

    # No extra cohort: the advisor's one takes the first five, in order.
    assert not Cohort.objects.filter(previous_cohort=cohort).exists()
    assert cohort.lab.cohorts.count() == 2
    for index, registration in enumerate(waiting):
        registration.refresh_from_db()
        if index < 5:
            assert (registration.cohort_id, registration.status) == (newer.pk, RegistrationStatus.CONFIRMED)
            assert _kinds(to=registration.contact_email, cohort=newer) == ["lab_started", "waitlist_promoted"]
        else:
            assert (registration.cohort_id, registration.status) == (cohort.pk, RegistrationStatus.WAITLISTED)
    newer.refresh_from_db()
    assert newer.status == CohortStatus.CLOSED
    assert _events(cohort).count(CohortEventAction.WAITLIST_MOVED) == 1
    assert CohortEvent.objects.get(cohort=newer, action=CohortEventAction.WAITLIST_MOVED).details == {
        "moved": 5,
        "previous_cohort": cohort.pk,
    }


def test_a_waitlist_below_the_minimum_also_moves_into_free_seats(cohort, advisor):
    waiting = _closed_with_waitlist(cohort, advisor, waiting=1)
    newer = services.cohort_create(lab_id=cohort.lab_id)

    services.sweep()

    waiting[0].refresh_from_db()
    assert (waiting[0].cohort_id, waiting[0].status) == (newer.pk, RegistrationStatus.CONFIRMED)


def test_the_third_confirmation_on_the_waitlist_triggers_it(
    cohort, advisor, django_capture_on_commit_callbacks
):
    _closed_with_waitlist(cohort, advisor, waiting=2)
    third = RegistrationFactory(cohort=cohort, municipality=MunicipalityFactory())

    with django_capture_on_commit_callbacks(execute=True):
        result = registration_confirm(token=third.token)

    assert result.registration.status == RegistrationStatus.WAITLISTED
    following = Cohort.objects.get(previous_cohort=cohort)
    third.refresh_from_db()
    assert third.cohort_id == following.pk
    assert following.status == CohortStatus.STARTED


# --- Completing and cancelling by hand, ended_at and retention --------------------


def test_complete_sets_ended_at_and_retention_counts_from_it(cohort, advisor):
    registrations = [RegistrationFactory(cohort=cohort, confirmed=True) for _ in range(3)]
    services.cohort_evaluate(cohort_id=cohort.pk)

    services.cohort_complete(cohort_id=cohort.pk, actor="anna")

    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.COMPLETED
    assert cohort.ended_at >= cohort.started_at
    event = CohortEvent.objects.get(cohort=cohort, action=CohortEventAction.COMPLETED)
    assert event.actor == "anna"
    registration = registrations[0]
    registration.refresh_from_db()
    planned = planned_removal(registration)
    assert planned.planned_at.date() == (cohort.ended_at + timedelta(days=365)).date()


def test_only_a_started_cohort_can_be_completed(cohort):
    with pytest.raises(IllegalTransition):
        services.cohort_complete(cohort_id=cohort.pk)


def test_cancel_by_hand_tells_registrants(cohort, advisor):
    cohort.advisors.add(advisor)
    registration = RegistrationFactory(cohort=cohort, confirmed=True)

    services.cohort_cancel(cohort_id=cohort.pk, actor="anna")
    with pytest.raises(IllegalTransition):
        services.cohort_cancel(cohort_id=cohort.pk, actor="anna")

    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CANCELLED
    message = OutboxMessage.objects.get(to=registration.contact_email)
    assert "geannuleerd" in message.body_text
    assert _kinds(to=advisor.email) == ["cohort_cancelled_advisor"]
    event = CohortEvent.objects.get(cohort=cohort, action=CohortEventAction.CANCELLED)
    assert (event.actor, event.details["reason"]) == ("anna", "advisor")


# --- History of transitions --------------------------------------------------------


def test_every_transition_is_in_the_history_with_who_did_it(cohort):
    for _ in range(2):
        RegistrationFactory(cohort=cohort, confirmed=True)
    services.cohort_start_now(cohort_id=cohort.pk, actor="anna")
    services.cohort_close_registration(cohort_id=cohort.pk, actor="bert")
    services.cohort_reopen(cohort_id=cohort.pk, actor="anna")

    rows = list(CohortEvent.objects.filter(cohort=cohort).values_list("action", "actor"))

    assert rows == [
        (CohortEventAction.STARTED, "anna"),
        (CohortEventAction.CLOSED, "bert"),
        (CohortEventAction.REOPENED, "anna"),
    ]


def test_automatic_start_and_close_are_recorded_as_system(cohort):
    for _ in range(cohort.lab.max_municipalities):
        RegistrationFactory(cohort=cohort, confirmed=True)

    services.cohort_evaluate(cohort_id=cohort.pk)

    assert list(CohortEvent.objects.filter(cohort=cohort).values_list("action", "actor", "details")) == [
        (CohortEventAction.STARTED, "system", {"seats": 5}),
        (CohortEventAction.CLOSED, "system", {"seats": 5}),
    ]


def test_history_holds_no_personal_data(cohort, advisor):
    confirmed, _ = _below_minimum_at_go_no_go(cohort, advisor)
    services.cohort_evaluate(cohort_id=cohort.pk)

    texts = [
        str(value) for row in CohortEvent.objects.values("actor", "details") for value in row.values()
    ] + [str(row) for row in RegistrationEvent.objects.values_list("actor", "details")]
    for registration in confirmed:
        assert not any(registration.contact_email in t or registration.contact_name in t for t in texts)


# --- In the admin, as an advisor ------------------------------------------------------


@pytest.fixture
def advisor_client(client, advisor):
    from django.contrib.auth.models import Group

    advisor.username = "anna"
    advisor.save(update_fields=["username"])
    advisor.groups.add(Group.objects.get(name="Servicepunt-adviseurs"))
    client.force_login(advisor)
    return client


EMPTY_INLINES = {
    f"{prefix}-{name}": "0"
    for prefix in ("registrations", "sessions", "events")
    for name in ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS")
}


def _change(client, cohort, **data):
    return client.post(
        reverse("admin:leerlab_cohort_change", args=[cohort.pk]),
        {"start_date": "", "go_no_go_date": "", "advisors": [], **EMPTY_INLINES, **data},
    )


def test_a_go_no_go_date_in_the_past_is_refused_with_a_message(advisor_client, cohort):
    response = _change(advisor_client, cohort, go_no_go_date=str(_today() + YESTERDAY))

    assert response.status_code == 200
    assert "Kies een go/no-go-datum van vandaag of later." in response.content.decode()
    cohort.refresh_from_db()
    assert cohort.go_no_go_date is None


def test_a_go_no_go_date_after_the_start_date_is_refused(advisor_client, cohort):
    response = _change(
        advisor_client,
        cohort,
        go_no_go_date=str(_today() + timedelta(days=20)),
        start_date=str(_today() + timedelta(days=10)),
    )

    assert "De go/no-go-datum moet op of vóór de startdatum liggen." in response.content.decode()


def test_changes_in_the_admin_are_in_the_history_with_the_advisor(advisor_client, advisor, cohort):
    go_no_go = _today() + timedelta(days=14)

    response = _change(advisor_client, cohort, go_no_go_date=str(go_no_go), advisors=[advisor.pk])

    assert response.status_code == 302
    cohort.refresh_from_db()
    assert cohort.go_no_go_date == go_no_go
    rows = list(CohortEvent.objects.filter(cohort=cohort).values_list("action", "actor", "details"))
    assert rows == [
        (CohortEventAction.CHANGED, "anna", {"fields": ["go_no_go_date"]}),
        (CohortEventAction.CHANGED, "anna", {"fields": ["advisors"], "added": [advisor.pk], "removed": []}),
    ]
    page = advisor_client.get(reverse("admin:leerlab_cohort_change", args=[cohort.pk])).content.decode()
    assert "geschiedenis van dit cohort" in page.lower()
    assert "gewijzigd: go/no-go-datum" in page


def test_complete_and_cancel_actions_as_an_advisor(advisor_client, cohort, lab):
    for _ in range(3):
        RegistrationFactory(cohort=cohort, confirmed=True)
    services.cohort_evaluate(cohort_id=cohort.pk)
    other = services.cohort_create(lab_id=lab.pk)
    url = reverse("admin:leerlab_cohort_changelist")

    advisor_client.post(url, {"action": "complete", "_selected_action": [cohort.pk]})
    advisor_client.post(url, {"action": "cancel", "_selected_action": [other.pk]})

    cohort.refresh_from_db()
    other.refresh_from_db()
    assert (cohort.status, other.status) == (CohortStatus.COMPLETED, CohortStatus.CANCELLED)
    assert CohortEvent.objects.get(cohort=cohort, action=CohortEventAction.COMPLETED).actor == "anna"
    assert CohortEvent.objects.get(cohort=other, action=CohortEventAction.CANCELLED).actor == "anna"


def test_a_new_cohort_from_the_admin_records_who_created_it(advisor_client, lab):
    go_no_go = _today() + timedelta(days=30)

    response = advisor_client.post(
        reverse("admin:leerlab_cohort_add"),
        {"lab": lab.pk, "start_date": "", "go_no_go_date": str(go_no_go), **EMPTY_INLINES},
    )

    assert response.status_code == 302
    new = lab.cohorts.order_by("-number").first()
    assert new.go_no_go_date == go_no_go
    assert list(new.events.values_list("action", "actor")) == [(CohortEventAction.CREATED, "anna")]


def test_the_lab_switch_for_the_next_cohort_is_in_the_admin(advisor_client, lab):
    page = advisor_client.get(reverse("admin:leerlab_leerlab_change", args=[lab.pk])).content.decode()

    assert 'name="auto_next_cohort"' in page


def test_cancelling_a_started_cohort_calls_off_its_sessions(cohort, advisor):
    from leerlab.models import CohortSession

    cohort.advisors.add(advisor)
    participants = [RegistrationFactory(cohort=cohort, confirmed=True) for _ in range(3)]
    services.cohort_evaluate(cohort_id=cohort.pk)
    session = CohortSession.objects.create(
        cohort=cohort,
        topic="Aftrap",
        date=_today() + timedelta(days=10),
        start_time="14:00",
        end_time="16:00",
        location="Haarlem",
    )
    services.cohort_evaluate(cohort_id=cohort.pk)  # the invitations go out
    assert OutboxMessage.objects.filter(kind="session_invitation").count() == 4

    services.cohort_cancel(cohort_id=cohort.pk, actor="anna")

    session.refresh_from_db()
    assert session.cancelled_at is not None
    for registration in participants:
        assert _kinds(to=registration.contact_email, kind="session_cancelled") == ["session_cancelled"]


def test_the_cohort_page_links_previous_and_next_cohort(advisor_client, cohort, advisor):
    _closed_with_waitlist(cohort, advisor, waiting=3)
    services.cohort_evaluate(cohort_id=cohort.pk)
    following = Cohort.objects.get(previous_cohort=cohort)

    first = advisor_client.get(reverse("admin:leerlab_cohort_change", args=[cohort.pk])).content.decode()
    second = advisor_client.get(reverse("admin:leerlab_cohort_change", args=[following.pk])).content.decode()

    assert reverse("admin:leerlab_cohort_change", args=[following.pk]) in first
    assert "volgend cohort" in first.lower()
    assert reverse("admin:leerlab_cohort_change", args=[cohort.pk]) in second
    assert "geopend met de wachtlijst van het vorige cohort" in second
