"""The advisors' back office (issue #2, point 8): an advisor in the group
"Servicepunt-adviseurs" (not a superuser) runs cohorts in /admin/ through
the same services as the automatic path."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from leerlab.errors import CohortFull, IllegalTransition
from leerlab.models import Cohort, CohortStatus
from municipalities.models import EmailDomain
from outbox.models import MessageStatus, OutboxMessage
from registrations.models import RegistrationStatus
from tests.factories import (
    CohortFactory,
    LeerLabFactory,
    MunicipalityFactory,
    RegistrationFactory,
    UserFactory,
)

PASSWORD = "een-lang-testwachtwoord"
COHORTS = reverse("admin:leerlab_cohort_changelist")
REGISTRATIONS = reverse("admin:registrations_registration_changelist")
OUTBOX = reverse("admin:outbox_outboxmessage_changelist")


@pytest.fixture
def advisor(db):
    user = UserFactory(staff=True, username="adviseur-test", email="adviseur-test@servicepunt.example")
    user.groups.add(Group.objects.get(name="Servicepunt-adviseurs"))
    return user


@pytest.fixture
def advisor_client(client, advisor):
    client.force_login(advisor)
    return client


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _action(client, url, action, objects):
    return client.post(url, {"action": action, "_selected_action": [o.pk for o in objects]})


def _rows(response) -> set[int]:
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


def _failed_message(**kwargs) -> OutboxMessage:
    defaults = {
        "dedupe_key": f"test:{OutboxMessage.objects.count()}",
        "kind": "seat_confirmed",
        "to": "ambtenaar@example.nl",
        "subject": "Aanmelding geslaagd",
        "body_text": "Tekst",
        "status": MessageStatus.FAILED,
        "attempts": 8,
        "last_error": "SMTPServerDisconnected: Connection unexpectedly closed",
    }
    defaults.update(kwargs)
    return OutboxMessage.objects.create(**defaults)


# --- Access ------------------------------------------------------------------


def test_advisor_logs_in_and_sees_the_back_office(client, advisor):
    response = client.post(
        reverse("admin:login") + "?next=/admin/",
        {"username": advisor.username, "password": PASSWORD, "next": "/admin/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"

    response = client.get("/admin/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Leer Labs – beheer Servicepunt" in content
    for url in (COHORTS, REGISTRATIONS, OUTBOX, reverse("admin:municipalities_municipality_changelist")):
        assert url in content
    assert not advisor.is_superuser


def test_advisor_has_no_user_management(advisor_client):
    assert advisor_client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert advisor_client.get(reverse("admin:auth_group_changelist")).status_code == 403


# --- Cohorts -------------------------------------------------------------------


def test_cohort_changelist_shows_counts_per_state(advisor_client, cohort):
    for _ in range(2):
        RegistrationFactory(cohort=cohort, confirmed=True)
    RegistrationFactory(cohort=cohort, waitlisted=True)
    RegistrationFactory(cohort=cohort)
    RegistrationFactory(cohort=cohort)
    RegistrationFactory(cohort=cohort, expired=True)  # can no longer be confirmed
    RegistrationFactory(cohort=cohort, status=RegistrationStatus.WITHDRAWN)

    response = advisor_client.get(COHORTS)

    assert response.status_code == 200
    rows = {c.pk: c for c in response.context["cl"].result_list}
    assert len(rows) == Cohort.objects.count() == 4
    row = rows[cohort.pk]
    assert (row.confirmed_count, row.waitlisted_count, row.pending_count) == (2, 1, 2)
    assert all(
        (c.confirmed_count, c.waitlisted_count, c.pending_count) == (0, 0, 0)
        for c in rows.values()
        if c != row
    )
    content = response.content.decode()
    assert "open voor aanmelding" in content
    assert f"cohort__id__exact={cohort.pk}&amp;status__exact=confirmed" in content


def test_cohort_changelist_filters_and_search(advisor_client, cohort):
    other = Cohort.objects.exclude(lab=cohort.lab).first()
    municipality = MunicipalityFactory(name="Zoekdorp")
    RegistrationFactory(cohort=cohort, municipality=municipality, confirmed=True, contact_name="Fenna Vinder")
    RegistrationFactory(cohort=cohort, confirmed=True)
    Cohort.objects.filter(pk=other.pk).update(status=CohortStatus.CLOSED)

    assert _rows(advisor_client.get(COHORTS, {"lab__id__exact": cohort.lab_id})) == {cohort.pk}
    assert _rows(advisor_client.get(COHORTS, {"status__exact": "closed"})) == {other.pk}
    response = advisor_client.get(COHORTS, {"q": "Zoekdorp"})
    assert _rows(response) == {cohort.pk}
    # The search joins registrations; the counts must not multiply.
    assert response.context["cl"].result_list[0].confirmed_count == 2
    assert _rows(advisor_client.get(COHORTS, {"q": "Fenna Vinder"})) == {cohort.pk}
    assert _rows(advisor_client.get(COHORTS, {"q": "bestaat-niet"})) == set()


def test_start_now_sends_start_emails_to_participants_and_advisors(
    advisor_client, advisor, cohort, django_capture_on_commit_callbacks
):
    other_advisor = UserFactory(staff=True, email="tweede@servicepunt.example")
    cohort.advisors.add(advisor, other_advisor)
    participants = [
        RegistrationFactory(cohort=cohort, confirmed=True) for _ in range(cohort.lab.min_municipalities - 1)
    ]
    pending = RegistrationFactory(cohort=cohort)

    with django_capture_on_commit_callbacks(execute=True):
        response = _action(advisor_client, COHORTS, "start_now", [cohort])

    assert response.status_code == 302
    assert _messages(response) == ["1 cohort gestart; de startberichten worden verstuurd."]
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED
    assert cohort.started_at is not None
    start_messages = OutboxMessage.objects.filter(cohort=cohort, subject__contains="van start")
    expected = {r.contact_email for r in participants} | {advisor.email, other_advisor.email}
    assert {m.to for m in start_messages} == expected
    assert start_messages.count() == len(expected)
    assert pending.contact_email not in {m.to for m in start_messages}
    # The queued emails went out through the outbox task after commit.
    assert sorted(to for m in mail.outbox if "van start" in m.subject for to in m.to) == sorted(expected)
    assert set(start_messages.values_list("status", flat=True)) == {MessageStatus.SENT}


def test_start_now_on_a_started_cohort_shows_the_service_error(advisor_client):
    started = CohortFactory(started=True)

    response = _action(advisor_client, COHORTS, "start_now", [started])

    assert _messages(response) == [f"{started}: {IllegalTransition.message}"]
    started.refresh_from_db()
    assert started.status == CohortStatus.STARTED
    assert not OutboxMessage.objects.exists()


def test_close_registration_action(advisor_client, cohort, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _action(advisor_client, COHORTS, "close_registration", [cohort])

    assert _messages(response) == ["Aanmelding gesloten voor 1 cohort."]
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED
    assert cohort.closed_at is not None


def test_reopen_of_a_full_cohort_warns_and_changes_nothing(advisor_client, cohort):
    for _ in range(cohort.lab.max_municipalities):
        RegistrationFactory(cohort=cohort, confirmed=True)
    closed_at = timezone.now() - timedelta(days=1)
    Cohort.objects.filter(pk=cohort.pk).update(
        status=CohortStatus.CLOSED, started_at=closed_at, closed_at=closed_at
    )

    response = _action(advisor_client, COHORTS, "reopen", [cohort])

    assert _messages(response) == [f"{cohort}: {CohortFull.message}"]
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED
    assert cohort.closed_at == closed_at


def test_reopen_of_a_cohort_with_room(advisor_client, cohort):
    RegistrationFactory(cohort=cohort, confirmed=True)
    Cohort.objects.filter(pk=cohort.pk).update(status=CohortStatus.CLOSED, closed_at=timezone.now())

    response = _action(advisor_client, COHORTS, "reopen", [cohort])

    assert _messages(response) == ["1 cohort heropend voor aanmelding."]
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.OPEN
    assert cohort.closed_at is None


# The cohort page's other inlines (issue #6), empty: sessions and history.
NO_SESSIONS_OR_EVENTS = {
    f"{prefix}-{name}": "0"
    for prefix in ("sessions", "events")
    for name in ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS")
}


def test_cohort_change_form_edits_start_date_and_advisors_but_not_status(advisor_client, advisor):
    cohort = CohortFactory()
    url = reverse("admin:leerlab_cohort_change", args=[cohort.pk])

    response = advisor_client.get(url)
    assert response.status_code == 200
    form_fields = set(response.context["adminform"].form.fields)
    assert form_fields == {"start_date", "go_no_go_date", "advisors"}

    response = advisor_client.post(
        url,
        {
            "start_date": "2026-03-02",
            "advisors": [advisor.pk],
            "status": CohortStatus.CLOSED,
            "number": 99,
            "registrations-TOTAL_FORMS": "0",
            "registrations-INITIAL_FORMS": "0",
            "registrations-MIN_NUM_FORMS": "0",
            "registrations-MAX_NUM_FORMS": "0",
            **NO_SESSIONS_OR_EVENTS,
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    cohort.refresh_from_db()
    assert str(cohort.start_date) == "2026-03-02"
    assert list(cohort.advisors.all()) == [advisor]
    assert cohort.status == CohortStatus.OPEN
    assert cohort.number != 99


def test_advisor_added_to_a_started_cohort_gets_the_start_email(
    advisor_client, advisor, cohort, django_capture_on_commit_callbacks
):
    """Advisors get the start email also when they join a started cohort
    (issue #2); the lifecycle task does it, not the admin."""
    for _ in range(cohort.lab.min_municipalities):
        RegistrationFactory(cohort=cohort, confirmed=True)
    with django_capture_on_commit_callbacks(execute=True):
        _action(advisor_client, COHORTS, "start_now", [cohort])
    assert not OutboxMessage.objects.filter(to=advisor.email).exists()
    url = reverse("admin:leerlab_cohort_change", args=[cohort.pk])
    inline = advisor_client.get(url).context["inline_admin_formsets"][0].formset

    with django_capture_on_commit_callbacks(execute=True):
        response = advisor_client.post(
            url,
            {
                "start_date": "",
                "advisors": [advisor.pk],
                **{f"registrations-{k}": v for k, v in inline.management_form.initial.items()},
                **{f"registrations-{i}-id": f.instance.pk for i, f in enumerate(inline.forms)},
                **{f"registrations-{i}-cohort": cohort.pk for i, _ in enumerate(inline.forms)},
                **NO_SESSIONS_OR_EVENTS,
            },
        )

    assert response.status_code == 302
    message = OutboxMessage.objects.get(to=advisor.email)
    assert "van start" in message.subject


def test_cohort_change_page_shows_registrations_inline(advisor_client, cohort):
    municipality = MunicipalityFactory(name="Inlinedorp")
    RegistrationFactory(cohort=cohort, municipality=municipality, confirmed=True, case_title="Wijk Noord")

    response = advisor_client.get(reverse("admin:leerlab_cohort_change", args=[cohort.pk]))

    content = response.content.decode()
    assert "Inlinedorp" in content
    assert "Wijk Noord" in content
    # Read-only: no status field, nothing to add or delete through the inline.
    assert 'name="registrations-0-status"' not in content
    inline = response.context["inline_admin_formsets"][0]
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission


def test_advisor_adds_a_new_cohort_with_the_next_number(advisor_client, lab, cohort):
    response = advisor_client.post(
        reverse("admin:leerlab_cohort_add"),
        {
            "lab": lab.pk,
            "start_date": "",
            "registrations-TOTAL_FORMS": "0",
            "registrations-INITIAL_FORMS": "0",
            "registrations-MIN_NUM_FORMS": "0",
            "registrations-MAX_NUM_FORMS": "0",
            **NO_SESSIONS_OR_EVENTS,
        },
    )

    assert response.status_code == 302
    new = lab.cohorts.order_by("-number").first()
    assert new.number == cohort.number + 1
    assert new.status == CohortStatus.OPEN
    # Signups now go to the newest cohort: the advisor is told.
    assert any("Nieuwe aanmeldingen gaan vanaf nu naar cohort 2" in m for m in _messages(response))


# --- Labs ----------------------------------------------------------------------


def _lab_data(lab, **changes):
    data = {
        "title": lab.title,
        "summary": lab.summary,
        "description": lab.description,
        "duration": lab.duration,
        "min_municipalities": lab.min_municipalities,
        "max_municipalities": lab.max_municipalities,
        "position": lab.position,
    }
    data.update(changes)
    return data


def test_lab_slug_is_read_only_and_max_below_min_is_refused(advisor_client, lab):
    url = reverse("admin:leerlab_leerlab_change", args=[lab.pk])
    assert "slug" not in advisor_client.get(url).context["adminform"].form.fields

    response = advisor_client.post(
        url, _lab_data(lab, slug="iets-anders", min_municipalities=4, max_municipalities=3)
    )

    assert response.status_code == 200
    assert "max_municipalities" in response.context["adminform"].form.errors
    lab.refresh_from_db()
    assert (lab.slug, lab.min_municipalities) == ("verhaal-warmtetransitie", 3)


def test_lowering_a_labs_minimum_starts_its_cohort(
    advisor_client, lab, cohort, django_capture_on_commit_callbacks
):
    for _ in range(2):
        RegistrationFactory(cohort=cohort, confirmed=True)

    with django_capture_on_commit_callbacks(execute=True):
        response = advisor_client.post(
            reverse("admin:leerlab_leerlab_change", args=[lab.pk]), _lab_data(lab, min_municipalities=2)
        )

    assert response.status_code == 302
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED
    assert OutboxMessage.objects.filter(cohort=cohort, subject__contains="van start").count() == 2


# --- Registrations ---------------------------------------------------------------


def test_registration_filters_and_search(advisor_client, cohort):
    other_cohort = Cohort.objects.exclude(lab=cohort.lab).first()
    alkmaar = MunicipalityFactory(name="Zoek-Alkmaar")
    confirmed = RegistrationFactory(
        cohort=cohort, municipality=alkmaar, confirmed=True, contact_name="Jet Zoeker"
    )
    pending = RegistrationFactory(cohort=cohort, case_title="Warmtenet Zuid")
    elsewhere = RegistrationFactory(
        cohort=other_cohort, waitlisted=True, contact_email="iemand@elders.example"
    )

    assert _rows(advisor_client.get(REGISTRATIONS)) == {confirmed.pk, pending.pk, elsewhere.pk}
    assert _rows(advisor_client.get(REGISTRATIONS, {"cohort__lab__id__exact": cohort.lab_id})) == {
        confirmed.pk,
        pending.pk,
    }
    assert _rows(advisor_client.get(REGISTRATIONS, {"cohort": other_cohort.pk})) == {elsewhere.pk}
    assert _rows(advisor_client.get(REGISTRATIONS, {"status__exact": "pending"})) == {pending.pk}
    assert _rows(advisor_client.get(REGISTRATIONS, {"municipality__id__exact": alkmaar.pk})) == {confirmed.pk}
    assert _rows(advisor_client.get(REGISTRATIONS, {"q": "Zoek-Alkmaar"})) == {confirmed.pk}
    assert _rows(advisor_client.get(REGISTRATIONS, {"q": "Jet Zoeker"})) == {confirmed.pk}
    assert _rows(advisor_client.get(REGISTRATIONS, {"q": "elders.example"})) == {elsewhere.pk}
    assert _rows(advisor_client.get(REGISTRATIONS, {"q": "Warmtenet"})) == {pending.pk}
    # The links behind the cohort counts.
    link = {"cohort__id__exact": cohort.pk, "status__exact": "confirmed"}
    assert _rows(advisor_client.get(REGISTRATIONS, link)) == {confirmed.pk}


def test_registration_filters_with_bad_values_never_fail(advisor_client, cohort):
    RegistrationFactory(cohort=cohort)

    assert _rows(advisor_client.get(REGISTRATIONS, {"cohort": "abc"})) == set()
    for params in (
        {"municipality__id__exact": "abc"},
        {"status__exact": "x" * 300},
        {"cohort__lab__id__exact": "-"},
    ):
        assert advisor_client.get(REGISTRATIONS, params).status_code in (200, 302)


def test_flagged_registration_is_visible(advisor_client, cohort):
    flagged = RegistrationFactory(
        cohort=cohort, email_domain_flagged=True, contact_email="a@adviesbureau.example"
    )
    RegistrationFactory(cohort=cohort, email_domain_flagged=False)

    response = advisor_client.get(REGISTRATIONS, {"email_domain_flagged__exact": "1"})

    assert _rows(response) == {flagged.pk}
    content = response.content.decode()
    assert "Afwijkend e-maildomein" in content
    assert "icon-yes.svg" in content


def test_registration_page_is_read_only_and_never_shows_the_token_hash(advisor_client, cohort):
    registration = RegistrationFactory(cohort=cohort, confirmed=True)

    response = advisor_client.get(reverse("admin:registrations_registration_change", args=[registration.pk]))

    assert response.status_code == 200
    content = response.content.decode()
    assert registration.token_hash not in content
    # Escaped as the page shows it: Faker's Dutch names include "van 't Riet".
    assert escape(registration.contact_name) in content
    assert 'name="status"' not in content
    assert advisor_client.get(reverse("admin:registrations_registration_add")).status_code == 403
    assert (
        advisor_client.post(
            reverse("admin:registrations_registration_delete", args=[registration.pk]), {"post": "yes"}
        ).status_code
        == 403
    )


def test_resend_email_gives_a_pending_registration_a_fresh_link(
    advisor_client, cohort, django_capture_on_commit_callbacks
):
    registration = RegistrationFactory(cohort=cohort)
    old_hash = registration.token_hash

    with django_capture_on_commit_callbacks(execute=True):
        response = _action(advisor_client, REGISTRATIONS, "resend_email", [registration])

    assert _messages(response) == ["Nieuwe bevestigingslink verstuurd voor 1 aanmelding."]
    registration.refresh_from_db()
    assert registration.token_hash != old_hash
    assert [m.to for m in mail.outbox if "Bevestig" in m.subject] == [[registration.contact_email]]


def test_resend_email_requeues_the_failed_email_of_a_confirmed_registration(
    advisor_client, cohort, django_capture_on_commit_callbacks
):
    registration = RegistrationFactory(cohort=cohort, confirmed=True)
    failed = _failed_message(registration=registration, to=registration.contact_email)
    nothing_to_send = RegistrationFactory(cohort=cohort, waitlisted=True)

    with django_capture_on_commit_callbacks(execute=True):
        response = _action(advisor_client, REGISTRATIONS, "resend_email", [registration, nothing_to_send])

    assert _messages(response) == [
        "1 e-mailbericht opnieuw in de wachtrij gezet.",
        "Voor 1 aanmelding was er niets opnieuw te versturen.",
    ]
    failed.refresh_from_db()
    assert failed.status == MessageStatus.SENT
    assert [m.to for m in mail.outbox] == [[registration.contact_email]]


# --- Outbox --------------------------------------------------------------------


def test_outbox_is_read_only_and_shows_failures(advisor_client):
    failed = _failed_message()
    sent = _failed_message(status=MessageStatus.SENT, last_error="", sent_at=timezone.now())

    response = advisor_client.get(OUTBOX)
    assert _rows(response) == {failed.pk, sent.pk}
    content = response.content.decode()
    assert "SMTPServerDisconnected: Connection unexpectedly closed" in content
    assert "outbox-failed" in content
    assert _rows(advisor_client.get(OUTBOX, {"status__exact": "failed"})) == {failed.pk}

    change_url = reverse("admin:outbox_outboxmessage_change", args=[failed.pk])
    assert advisor_client.get(reverse("admin:outbox_outboxmessage_add")).status_code == 403
    assert advisor_client.get(change_url).status_code == 200  # view only
    assert advisor_client.post(change_url, {"to": "x@example.nl"}).status_code == 403
    assert (
        advisor_client.post(
            reverse("admin:outbox_outboxmessage_delete", args=[failed.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    failed.refresh_from_db()
    assert failed.to == "ambtenaar@example.nl"


def test_outbox_is_read_only_for_superusers_too(db, client):
    client.force_login(UserFactory(superuser=True))
    assert client.get(reverse("admin:outbox_outboxmessage_add")).status_code == 403


def test_outbox_resend_action_requeues_a_failed_message(advisor_client, django_capture_on_commit_callbacks):
    failed = _failed_message()
    sent = _failed_message(status=MessageStatus.SENT, last_error="", attempts=1)

    with django_capture_on_commit_callbacks(execute=True):
        response = _action(advisor_client, OUTBOX, "resend", [failed, sent])

    assert _messages(response) == [
        "1 e-mailbericht opnieuw in de wachtrij gezet.",
        "1 bericht was al verstuurd en is niet opnieuw verstuurd.",
    ]
    failed.refresh_from_db()
    assert failed.status == MessageStatus.SENT
    assert failed.attempts == 1
    assert len(mail.outbox) == 1


def test_outbox_resend_without_executing_leaves_the_message_queued(
    advisor_client, django_capture_on_commit_callbacks
):
    failed = _failed_message()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _action(advisor_client, OUTBOX, "resend", [failed])

    failed.refresh_from_db()
    assert failed.status == MessageStatus.QUEUED
    assert failed.attempts == 0
    assert len(callbacks) == 1


# --- Municipalities -----------------------------------------------------------


def _domain_post(**extra):
    return {
        "website": "",
        "email_domains-TOTAL_FORMS": "1",
        "email_domains-INITIAL_FORMS": "0",
        "email_domains-MIN_NUM_FORMS": "0",
        "email_domains-MAX_NUM_FORMS": "1000",
        **extra,
    }


def test_advisor_adds_an_email_domain_inline(advisor_client):
    municipality = MunicipalityFactory(name="Domeindorp")
    url = reverse("admin:municipalities_municipality_change", args=[municipality.pk])
    assert advisor_client.get(url).status_code == 200

    response = advisor_client.post(
        url, _domain_post(**{"email_domains-0-domain": " @Domeindorp.NL ", "name": "Andere naam"})
    )

    assert response.status_code == 302
    assert list(EmailDomain.objects.filter(municipality=municipality).values_list("domain", flat=True)) == [
        "domeindorp.nl"
    ]
    municipality.refresh_from_db()
    assert municipality.name == "Domeindorp"  # reference data is read-only


def test_invalid_email_domain_is_refused(advisor_client):
    municipality = MunicipalityFactory()
    url = reverse("admin:municipalities_municipality_change", args=[municipality.pk])

    response = advisor_client.post(url, _domain_post(**{"email_domains-0-domain": "geen domein"}))

    assert response.status_code == 200
    assert "Vul een geldig domein in" in response.content.decode()
    assert not EmailDomain.objects.filter(municipality=municipality).exists()


def test_municipality_list_filters_and_search(advisor_client):
    url = reverse("admin:municipalities_municipality_changelist")
    response = advisor_client.get(url, {"q": "GM0363"})
    assert [m.name for m in response.context["cl"].result_list] == ["Amsterdam"]
    response = advisor_client.get(url, {"province__exact": "Noord-Holland", "is_active__exact": "1"})
    assert response.context["cl"].result_count == 44
    assert advisor_client.get(reverse("admin:municipalities_municipality_add")).status_code == 403


# --- Query counts ------------------------------------------------------------------


def _make_registrations(count: int):
    cohorts = list(Cohort.objects.all())
    kinds = [{}, {"confirmed": True}, {"waitlisted": True}, {"email_domain_flagged": True}]
    for i in range(count):
        RegistrationFactory(cohort=cohorts[i % len(cohorts)], **kinds[i % len(kinds)])


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as context:
        assert client.get(url).status_code == 200
    return len(context.captured_queries)


@pytest.mark.parametrize("url", [COHORTS, REGISTRATIONS])
def test_changelist_query_count_does_not_grow_with_registrations(advisor_client, url):
    _make_registrations(5)
    advisor_client.get(url)  # warm up per-process caches (content types)
    few = _queries(advisor_client, url)

    _make_registrations(45)
    many = _queries(advisor_client, url)

    assert few == many


def test_cohort_change_page_query_count_does_not_grow_with_registrations(advisor_client, cohort):
    url = reverse("admin:leerlab_cohort_change", args=[cohort.pk])
    for _ in range(3):
        RegistrationFactory(cohort=cohort)
    advisor_client.get(url)
    few = _queries(advisor_client, url)

    for _ in range(20):
        RegistrationFactory(cohort=cohort)
    many = _queries(advisor_client, url)

    assert few == many


def test_lab_list_is_reachable(advisor_client):
    LeerLabFactory()
    response = advisor_client.get(reverse("admin:leerlab_leerlab_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count == 5


def test_every_admin_page_renders_for_a_superuser(client, cohort):
    """Superusers keep the same guard rails: statuses read-only, no token."""
    client.force_login(UserFactory(superuser=True))
    registration = RegistrationFactory(cohort=cohort, confirmed=True)
    message = _failed_message(registration=registration, cohort=cohort)
    municipality = registration.municipality
    pages = [
        "/admin/",
        COHORTS,
        reverse("admin:leerlab_cohort_add"),
        reverse("admin:leerlab_cohort_change", args=[cohort.pk]),
        reverse("admin:leerlab_leerlab_changelist"),
        reverse("admin:leerlab_leerlab_add"),
        reverse("admin:leerlab_leerlab_change", args=[cohort.lab_id]),
        REGISTRATIONS,
        reverse("admin:registrations_registration_change", args=[registration.pk]),
        OUTBOX,
        reverse("admin:outbox_outboxmessage_change", args=[message.pk]),
        reverse("admin:municipalities_municipality_changelist"),
        reverse("admin:municipalities_municipality_change", args=[municipality.pk]),
    ]
    for page in pages:
        assert client.get(page).status_code == 200, page

    response = client.get(reverse("admin:registrations_registration_change", args=[registration.pk]))
    form_fields = set(response.context["adminform"].form.fields)
    assert "status" not in form_fields and "token_hash" not in form_fields and "cohort" not in form_fields
    assert registration.token_hash not in response.content.decode()
    response = client.get(reverse("admin:leerlab_cohort_change", args=[cohort.pk]))
    assert "status" not in response.context["adminform"].form.fields
    actions = [name for name, _ in client.get(OUTBOX).context["action_form"].fields["action"].choices]
    assert "resend" in actions and "delete_selected" not in actions
