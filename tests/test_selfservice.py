"""Mijn aanmeldingen (issue #5): officers manage their registrations without
an account, through a single-use emailed link and a short session."""

import html
import re
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from registrations.models import RegistrationEvent, RegistrationStatus
from registrations.services import registration_confirm, registration_submit
from registrations.views import SESSION_CONTACT
from selfservice.models import AccessLink, HandoverRequest
from selfservice.views import SESSION_UNTIL
from tests.factories import CohortFactory, LeerLabFactory, MunicipalityFactory, RegistrationFactory

pytestmark = pytest.mark.django_db

EMAIL = "officer@haarlem.nl"
REQUEST_URL = "/mijn-aanmeldingen/"


def text(response) -> str:
    return html.unescape(response.content.decode())


def without_csrf(page: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page)


def link_from(message, prefix="/mijn-aanmeldingen/") -> str:
    match = re.search(r"https?://[^\s/]+(" + re.escape(prefix) + r"[^\s\"<]+)", message.body)
    assert match, message.body
    return match.group(1)


def request_link(client, email, capture):
    with capture(execute=True):
        return client.post(REQUEST_URL, {"email": email})


@pytest.fixture
def registration(cohort):
    RegistrationFactory(cohort=cohort, confirmed=True)
    return RegistrationFactory(cohort=cohort, confirmed=True, contact_email=EMAIL)


@pytest.fixture
def logged_in(client, registration, django_capture_on_commit_callbacks, mailoutbox):
    request_link(client, EMAIL, django_capture_on_commit_callbacks)
    client.post(link_from(mailoutbox[-1]))
    mailoutbox.clear()
    return client


def test_same_answer_for_known_and_unknown_address(
    client, registration, django_capture_on_commit_callbacks, mailoutbox
):
    """Issue #5: no enumeration. Known and unknown addresses get the same
    redirect and the same page; only the known one gets an email."""
    unknown = request_link(client, "nobody@example.nl", django_capture_on_commit_callbacks)
    unknown_page = text(client.get(unknown["Location"]))
    assert mailoutbox == []
    known = request_link(client, EMAIL.upper(), django_capture_on_commit_callbacks)
    known_page = text(client.get(known["Location"]))

    assert (
        (unknown.status_code, unknown["Location"])
        == (known.status_code, known["Location"])
        == (302, "/mijn-aanmeldingen/verzonden/")
    )
    assert without_csrf(known_page) == without_csrf(unknown_page)
    assert len(mailoutbox) == 1
    assert "aanmeldingen" in mailoutbox[0].subject
    assert link_from(mailoutbox[0]).startswith("/mijn-aanmeldingen/")
    # Only a hash of the token is kept.
    token = link_from(mailoutbox[0]).rstrip("/").rsplit("/", 1)[1]
    assert not AccessLink.objects.filter(token_hash=token).exists()


def test_link_opens_once_and_shows_state_in_words(
    client, cohort, registration, django_capture_on_commit_callbacks, mailoutbox
):
    """Issue #5: the link is single use; the overview says the cohort's
    state and the seat in words."""
    waiting_cohort = CohortFactory(closed=True, lab=LeerLabFactory())
    RegistrationFactory(
        cohort=waiting_cohort, waitlisted=True, confirmed_at=timezone.now() - timedelta(hours=1)
    )
    RegistrationFactory(cohort=waiting_cohort, waitlisted=True, contact_email=EMAIL)
    request_link(client, EMAIL, django_capture_on_commit_callbacks)
    link = link_from(mailoutbox[0])

    # A GET (a mail scanner) changes nothing.
    assert client.get(link).status_code == 200
    assert AccessLink.objects.get().used_at is None
    response = client.post(link)
    assert response["Location"] == "/mijn-aanmeldingen/overzicht/"
    page = text(client.get(response["Location"]))
    assert "2 van de 3 gemeenten; nog 1 nodig om te starten" in page
    assert "u heeft een plaats" in page
    assert "u staat op plaats 2 van de wachtlijst" in page
    assert registration.case_title in page

    # Reused: refused, on GET and POST, even from a fresh browser.
    client.logout()
    assert client.post(link).status_code == 410
    assert client.get(link).status_code == 410
    assert client.get("/mijn-aanmeldingen/overzicht/")["Location"] == REQUEST_URL


def test_expired_link_is_refused(client, registration, django_capture_on_commit_callbacks, mailoutbox):
    """Issue #5: an expired link opens nothing."""
    request_link(client, EMAIL, django_capture_on_commit_callbacks)
    AccessLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.post(link_from(mailoutbox[0]))
    assert response.status_code == 410
    assert "ongeldig, verlopen of al gebruikt" in text(response)
    assert client.get("/mijn-aanmeldingen/overzicht/").status_code == 302


def test_session_expires_when_idle(logged_in):
    assert logged_in.get("/mijn-aanmeldingen/overzicht/").status_code == 200
    session = logged_in.session
    session[SESSION_UNTIL] = time.time() - 1
    session.save()
    assert logged_in.get("/mijn-aanmeldingen/overzicht/")["Location"] == REQUEST_URL


def test_someone_elses_registration_is_not_found(logged_in, cohort):
    other = RegistrationFactory(cohort=cohort, confirmed=True)
    for path in ("case", "overdragen", "afmelden"):
        assert logged_in.get(f"/mijn-aanmeldingen/{other.pk}/{path}/").status_code == 404
    assert logged_in.post(f"/mijn-aanmeldingen/{other.pk}/afmelden/").status_code == 404
    other.refresh_from_db()
    assert other.status == RegistrationStatus.CONFIRMED


def test_edit_case_records_field_names_only(logged_in, registration):
    url = f"/mijn-aanmeldingen/{registration.pk}/case/"
    response = logged_in.post(
        url,
        {
            "case_title": "Nieuwe titel",
            "case_description": registration.case_description,
            "learning_needs": "",
        },
    )
    assert response.status_code == 302
    registration.refresh_from_db()
    assert (registration.case_title, registration.learning_needs) == ("Nieuwe titel", "")
    event = registration.events.get(action="case_changed")
    assert event.details == {"fields": ["case_title", "learning_needs"]}
    assert "Nieuwe titel" not in str(event.details)
    # Bad input: the form again with an error summary, never a 5xx.
    response = logged_in.post(url, {"case_title": "", "case_description": "x" * 5000})
    assert response.status_code == 200
    assert "error-summary" in text(response)


def test_handover_waits_for_the_colleague(
    logged_in, registration, django_capture_on_commit_callbacks, mailoutbox, client
):
    """Issue #5: the colleague takes over only after confirming by email."""
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post(
            f"/mijn-aanmeldingen/{registration.pk}/overdragen/",
            {"contact_name": "Els Collega", "contact_email": "els@haarlem.nl"},
        )
    assert response.status_code == 302
    registration.refresh_from_db()
    assert registration.contact_email == EMAIL
    assert [m.to for m in mailoutbox] == [["els@haarlem.nl"]]
    link = link_from(mailoutbox[0])

    assert logged_in.get(link).status_code == 200
    registration.refresh_from_db()
    assert registration.contact_email == EMAIL
    assert logged_in.post(link).status_code == 200
    registration.refresh_from_db()
    assert (registration.contact_name, registration.contact_email) == ("Els Collega", "els@haarlem.nl")
    assert HandoverRequest.objects.get().confirmed_at is not None
    assert list(registration.events.values_list("action", flat=True)) == ["handover_requested", "handed_over"]
    # Single use; and the previous contact has lost access.
    assert logged_in.post(link).status_code == 410
    assert logged_in.get(f"/mijn-aanmeldingen/{registration.pk}/case/").status_code == 404


def test_handover_to_self_is_refused(logged_in, registration):
    response = logged_in.post(
        f"/mijn-aanmeldingen/{registration.pk}/overdragen/",
        {"contact_name": "Ik", "contact_email": EMAIL.upper()},
    )
    assert response.status_code == 200
    assert "niet uw eigen e-mailadres" in text(response)
    assert not HandoverRequest.objects.exists()


def test_withdraw_asks_then_withdraws(logged_in, registration):
    url = f"/mijn-aanmeldingen/{registration.pk}/afmelden/"
    page = text(logged_in.get(url))
    assert re.search(r'<form method="post" action="[^"]*afmelden[^"]*"', page)
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.CONFIRMED
    assert logged_in.post(url)["Location"] == "/mijn-aanmeldingen/overzicht/"
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.WITHDRAWN
    assert "afgemeld" in text(logged_in.get("/mijn-aanmeldingen/overzicht/"))
    # Twice: a friendly refusal, not a 5xx.
    assert logged_in.post(url).status_code == 409


def test_sign_up_for_another_lab_prefilled(logged_in, registration):
    response = logged_in.post(f"/mijn-aanmeldingen/{registration.pk}/ander-lab/")
    assert response.status_code == 302
    assert logged_in.session[SESSION_CONTACT]["contact_email"] == EMAIL
    other = LeerLabFactory()
    CohortFactory(lab=other)
    page = text(logged_in.get(reverse("registrations:signup", kwargs={"slug": other.slug})))
    assert f'value="{EMAIL}"' in page


def test_request_is_rate_limited(client, settings, registration, django_capture_on_commit_callbacks):
    settings.RATELIMIT_ENABLE = True
    settings.LEERLAB_RATELIMIT_SELFSERVICE = "2/10m"
    cache.clear()
    try:
        codes = [
            request_link(client, "x@example.nl", django_capture_on_commit_callbacks).status_code
            for _ in range(3)
        ]
    finally:
        cache.clear()
    assert codes == [302, 302, 429]


def test_links_per_address_are_capped(client, registration, django_capture_on_commit_callbacks, mailoutbox):
    for _ in range(5):
        request_link(client, EMAIL, django_capture_on_commit_callbacks)
    assert len(mailoutbox) == 3


def test_invalid_email_shows_error_summary(client):
    response = client.post(REQUEST_URL, {"email": "geen-adres"})
    assert response.status_code == 200
    assert "error-summary" in text(response)


def test_submit_and_confirm_are_recorded(cohort):
    """Issue #5: every change is recorded, also from the existing services."""
    registration = registration_submit(
        cohort=cohort,
        municipality=MunicipalityFactory(),
        contact_name="Jan",
        contact_email="jan@example.nl",
        case_title="Case",
        case_description="Beschrijving",
        privacy_consent=True,
    )
    assert list(registration.events.values_list("action", "actor")) == [
        ("submitted", "officer (signup form)")
    ]
    pending = RegistrationFactory(cohort=cohort)
    registration_confirm(token=pending.token)
    assert RegistrationEvent.objects.filter(registration=pending, action="confirmed").count() == 1


def test_english_pages_work(client, registration):
    assert client.get("/en/mijn-aanmeldingen/").status_code == 200


def test_used_link_is_removed_from_the_sent_email(
    client, registration, django_capture_on_commit_callbacks, mailoutbox
):
    """Issue #5: like confirmation links, a spent access link is kept
    nowhere, not even in the outbox copy of the sent email."""
    from outbox.models import OutboxMessage

    request_link(client, EMAIL, django_capture_on_commit_callbacks)
    link = link_from(mailoutbox[0])
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert OutboxMessage.objects.get(kind="selfservice_link").status == "sent"
    client.post(link)
    message = OutboxMessage.objects.get(kind="selfservice_link")
    assert token not in message.body_text and token not in message.body_html


def test_overview_costs_a_fixed_number_of_queries(logged_in, cohort):
    """Issue #5: the overview reads with annotations, not one query per
    registration."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        logged_in.get("/mijn-aanmeldingen/overzicht/")
    for _ in range(4):
        RegistrationFactory(cohort=CohortFactory(closed=True), waitlisted=True, contact_email=EMAIL)
    with CaptureQueriesContext(connection) as many:
        page = text(logged_in.get("/mijn-aanmeldingen/overzicht/"))
    assert page.count("u staat op plaats 1 van de wachtlijst") == 4
    assert len(many) == len(few)


def test_english_pages_hold_no_dutch(client, registration, django_capture_on_commit_callbacks, mailoutbox):
    """Issue #5 with #4: the self-service pages are translated."""
    from tests.test_i18n import dutch_words_in

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/en" + REQUEST_URL, {"email": EMAIL})
    assert mailoutbox[0].subject == "Your registrations for the Leer Labs"
    link = link_from(mailoutbox[0], prefix="/en/mijn-aanmeldingen/")
    pages = ["/en/mijn-aanmeldingen/verzonden/", link, "/en/mijn-aanmeldingen/toegang/no-such-token/"]
    for path in pages:
        response = client.get(path)
        assert not dutch_words_in(response.content.decode()), (
            path,
            dutch_words_in(response.content.decode()),
        )
    client.post(link)
    for path in (
        "/en/mijn-aanmeldingen/overzicht/",
        f"/en/mijn-aanmeldingen/{registration.pk}/case/",
        f"/en/mijn-aanmeldingen/{registration.pk}/overdragen/",
        f"/en/mijn-aanmeldingen/{registration.pk}/afmelden/",
    ):
        body = client.get(path).content.decode()
        # The case itself is the officer's own (Dutch) text.
        body = body.replace(registration.case_title, "").replace(registration.case_description, "")
        body = body.replace(registration.learning_needs, "").replace(registration.municipality.name, "")
        assert not dutch_words_in(body), (path, dutch_words_in(body))
