"""The public pages of issue #2: home, lab page, signup, confirmation,
privacy, and the layout around them."""

import html
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone, translation

from leerlab.errors import CohortBusy
from leerlab.models import CohortStatus, LeerLab
from municipalities.models import Municipality
from outbox.models import OutboxMessage
from registrations.models import Registration, RegistrationStatus
from tests.factories import RegistrationFactory

SLUGS = [
    "startplan-wijkaanpak-aardgasvrij",
    "doelgroepgerichte-aanpak-aardgasvrij-ready",
    "organisatie-inrichting-warmtetransitie",
    "verhaal-warmtetransitie",
]


@pytest.fixture(autouse=True)
def dutch():
    """Requests under /en/ activate English in the test thread; every test
    starts in Dutch so reverse() gives the Dutch URLs."""
    with translation.override("nl"):
        yield


def text(response) -> str:
    """The response body with HTML entities decoded, for plain-text asserts."""
    return html.unescape(response.content.decode())


def signup_data(**overrides) -> dict:
    data = {
        "municipality": "GM0392",  # Haarlem
        "contact_name": "Jan de Vries",
        "contact_email": "j.devries@haarlem.nl",
        "contact_role": "Beleidsmedewerker warmtetransitie",
        "contact_phone": "023 511 5115",
        "case_title": "Wijkaanpak Schalkwijk",
        "case_description": "Wij willen de wijk Schalkwijk stap voor stap aardgasvrij maken.",
        "learning_needs": "Hoe betrekken we huurders?",
        "privacy_consent": "on",
    }
    data.update(overrides)
    return data


def signup_url(slug="verhaal-warmtetransitie") -> str:
    return reverse("registrations:signup", kwargs={"slug": slug})


def confirm_url(token: str) -> str:
    return reverse("registrations:confirm", kwargs={"token": token})


def fill(cohort, count: int, **traits) -> list[Registration]:
    """`count` registrations of distinct new municipalities in `cohort`."""
    return [RegistrationFactory(cohort=cohort, **traits) for _ in range(count)]


def cohort_of(slug):
    return LeerLab.objects.get(slug=slug).cohorts.get(number=1)


# --- home ----------------------------------------------------------------


def test_home_shows_the_four_labs_with_their_state_in_words(client, db):
    needs = cohort_of("startplan-wijkaanpak-aardgasvrij")
    fill(needs, 1, confirmed=True)
    started = cohort_of("doelgroepgerichte-aanpak-aardgasvrij-ready")
    started.status, started.started_at = CohortStatus.STARTED, timezone.now()
    started.save()
    fill(started, 3, confirmed=True)
    full = cohort_of("organisatie-inrichting-warmtetransitie")
    full.status, full.started_at, full.closed_at = CohortStatus.CLOSED, timezone.now(), timezone.now()
    full.save()
    fill(full, 5, confirmed=True)

    response = client.get(reverse("home"))

    assert response.status_code == 200
    body = text(response)
    for lab in LeerLab.objects.all():
        assert lab.title in body
        assert lab.summary in body
        assert reverse("leerlab:lab_detail", kwargs={"slug": lab.slug}) in body
    assert "Nog 2 gemeenten nodig om te starten" in body
    assert "Gestart, nog 2 plaatsen" in body
    assert "Vol, aanmelden voor de wachtlijst" in body
    # The untouched lab still needs all three.
    assert "Nog 3 gemeenten nodig om te starten" in body


def test_home_has_the_intro_insights_and_conditions(client, db):
    body = text(client.get(reverse("home")))
    assert "3 tot 5 gemeenten" in body
    assert "2 tot 6 maanden" in body
    assert "Samen slim leren" in body
    assert "Inzichten uit de ronde langs gemeenten" in body
    assert "Randvoorwaarden" in body
    assert "Adviseurs van het Servicepunt" in body


# --- layout ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["home", "privacy"])
def test_layout_is_accessible_and_self_hosted(client, db, name):
    response = client.get(reverse(name))
    body = response.content.decode()
    assert '<html lang="nl">' in body
    assert 'href="#main"' in body and 'id="main"' in body
    assert "Leer Labs warmtetransitie" in body
    assert f'action="{reverse("set_language")}"' in body
    assert 'name="language" value="en"' in body
    assert f'href="{reverse("privacy")}"' in body
    assert "/static/vendor/bootstrap/bootstrap.min.css" in body
    # No inline scripts (a strict CSP follows) and nothing from other hosts.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", body)


def test_english_under_the_en_prefix(client, db):
    for url in [
        "/en/",
        "/en/leerlabs/verhaal-warmtetransitie/",
        "/en/leerlabs/verhaal-warmtetransitie/aanmelden/",
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert '<html lang="en">' in response.content.decode()


def test_language_switch_keeps_the_page(client, db):
    response = client.post(
        reverse("set_language"), {"language": "en", "next": "/leerlabs/verhaal-warmtetransitie/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/en/leerlabs/verhaal-warmtetransitie/"


# --- lab page --------------------------------------------------------------


def test_lab_page_shows_texts_state_and_signup_button(client, cohort, lab):
    fill(cohort, 1, confirmed=True)

    response = client.get(reverse("leerlab:lab_detail", kwargs={"slug": lab.slug}))

    assert response.status_code == 200
    body = text(response)
    assert lab.title in body
    assert lab.summary in body
    assert lab.description in body
    assert "Randvoorwaarden" in body
    assert "1 van maximaal 5" in body
    assert "Nog 2 gemeenten nodig om te starten" in body
    assert "Aanmelden voor dit Leer Lab" in body
    assert signup_url(lab.slug) in body
    assert "Aanmelden voor de wachtlijst" not in body


def test_lab_page_of_a_full_lab_offers_the_waitlist(client, cohort, lab):
    fill(cohort, 5, confirmed=True)

    body = text(client.get(reverse("leerlab:lab_detail", kwargs={"slug": lab.slug})))

    assert "5 van maximaal 5" in body
    assert "Aanmelden voor de wachtlijst" in body
    assert "Aanmelden voor dit Leer Lab" not in body


@pytest.mark.parametrize(
    "url",
    [
        "/leerlabs/bestaat-niet/",
        "/leerlabs/bestaat-niet/aanmelden/",
        "/leerlabs/bestaat-niet/aanmelden/verzonden/",
        "/en/leerlabs/bestaat-niet/",
    ],
)
def test_unknown_lab_is_404(client, db, url):
    assert client.get(url).status_code == 404


def test_post_to_unknown_lab_is_404(client, db):
    assert client.post("/leerlabs/bestaat-niet/aanmelden/", signup_data()).status_code == 404
    assert Registration.objects.count() == 0


# --- signup ----------------------------------------------------------------


def test_signup_creates_a_pending_registration_and_one_confirmation_email(
    client, cohort, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(signup_url(), signup_data())

    assert response.status_code == 302
    registration = Registration.objects.get()
    assert registration.cohort == cohort
    assert registration.municipality.cbs_code == "GM0392"
    assert registration.status == RegistrationStatus.PENDING
    assert registration.contact_email == "j.devries@haarlem.nl"
    assert registration.case_title == "Wijkaanpak Schalkwijk"
    assert registration.language == "nl"
    assert registration.email_domain_flagged is False
    message = OutboxMessage.objects.get()
    assert "Bevestig" in message.subject
    assert message.to == "j.devries@haarlem.nl"
    assert len(mail.outbox) == 1


def test_signup_redirects_to_the_sent_page_post_redirect_get(client, cohort, settings):
    settings.LEERLAB_CONFIRMATION_DAYS = 3

    response = client.post(signup_url(), signup_data(), follow=True)

    assert response.redirect_chain == [
        (reverse("registrations:signup_sent", kwargs={"slug": "verhaal-warmtetransitie"}), 302)
    ]
    body = text(response)
    assert "Controleer uw e-mail" in body
    assert "j.devries@haarlem.nl" in body
    assert "3 dagen geldig" in body
    assert "Wat gebeurt er daarna?" in body
    assert "Meld u ook aan voor een ander Leer Lab" in body
    for slug in SLUGS[:3]:
        assert signup_url(slug) in body
    # Reloading the sent page stores nothing new.
    client.get(response.request["PATH_INFO"])
    assert Registration.objects.count() == 1


def test_signup_in_english_stores_the_language(client, cohort):
    response = client.post("/en" + signup_url(), signup_data())
    assert response.status_code == 302
    assert response["Location"].startswith("/en/")
    assert Registration.objects.get().language == "en"


def test_second_signup_is_prefilled_with_the_contact_details_not_the_case(client, cohort):
    client.post(signup_url(), signup_data())

    response = client.get(signup_url("startplan-wijkaanpak-aardgasvrij"))

    form = response.context["form"]
    assert form.initial == {
        "municipality": "GM0392",
        "contact_name": "Jan de Vries",
        "contact_email": "j.devries@haarlem.nl",
        "contact_role": "Beleidsmedewerker warmtetransitie",
        "contact_phone": "023 511 5115",
    }
    body = response.content.decode()
    assert '<option value="GM0392" selected>Haarlem</option>' in body
    assert 'value="Jan de Vries"' in body
    assert "Wijkaanpak Schalkwijk" not in body


def test_fresh_visitor_gets_an_empty_form(client, cohort):
    response = client.get(signup_url())
    assert response.status_code == 200
    assert response.context["form"].initial == {}
    body = response.content.decode()
    assert body.count(" selected>") == 1
    assert '<option value="" selected>' in body


def test_signup_form_lists_only_participating_municipalities_alphabetically(client, cohort):
    response = client.get(signup_url())
    choices = response.context["form"].fields["municipality"].widget.choices
    codes = [code for code, _ in choices if code]
    names = [name for code, name in choices if code]
    assert "GM0392" in codes
    assert "GM0457" not in codes  # Weesp, merged into Amsterdam
    assert "GM0344" not in codes  # Utrecht
    assert len(codes) == Municipality.objects.filter(province="Noord-Holland", is_active=True).count()
    assert names == list(
        Municipality.objects.filter(province="Noord-Holland", is_active=True)
        .order_by("name")
        .values_list("name", flat=True)
    )
    assert names.index("Aalsmeer") < names.index("Haarlem") < names.index("Zandvoort")


def test_signup_form_fields_and_accessibility(client, cohort):
    body = client.get(signup_url()).content.decode()
    for name in [
        "municipality",
        "contact_name",
        "contact_email",
        "contact_role",
        "contact_phone",
        "case_title",
        "case_description",
        "learning_needs",
        "privacy_consent",
    ]:
        assert f'name="{name}"' in body
        assert f'for="id_{name}"' in body
    assert 'type="email" name="contact_email"' in body
    assert 'type="tel" name="contact_phone"' in body
    assert 'autocomplete="name"' in body
    assert 'autocomplete="email"' in body
    assert 'autocomplete="tel"' in body
    assert 'autocomplete="organization-title"' in body
    assert 'type="checkbox" name="privacy_consent"' in body
    assert f'<a href="{reverse("privacy")}"' in body
    assert body.count('name="csrfmiddlewaretoken"') == 2  # the form and the language switch


def test_signup_errors_are_summarised_with_links_to_the_fields(client, cohort):
    response = client.post(signup_url(), signup_data(contact_name="", contact_email="geen-adres"))

    assert response.status_code == 200
    body = text(response)
    assert "Er zijn 2 problemen met uw aanmelding" in body
    assert '<a href="#id_contact_name">' in body
    assert '<a href="#id_contact_email">' in body
    assert 'aria-describedby="id_contact_name_error"' in body
    assert 'id="id_contact_name_error"' in body
    assert Registration.objects.count() == 0


def test_signup_for_a_full_lab_says_waitlist(client, cohort):
    fill(cohort, 5, confirmed=True)

    body = text(client.get(signup_url()))

    assert "Dit Leer Lab is vol." in body
    assert "wachtlijst" in body
    assert "Aanmelden voor de wachtlijst" in body


def test_signup_without_a_current_cohort_shows_a_friendly_page(client, cohort):
    cohort.status = CohortStatus.COMPLETED
    cohort.save()

    get = client.get(signup_url())
    post = client.post(signup_url(), signup_data())

    for response in (get, post):
        assert response.status_code == 200
        assert "Voor dit Leer Lab is aanmelden op dit moment niet mogelijk." in text(response)
        assert "form" not in response.context
    assert Registration.objects.count() == 0


def test_signup_when_the_cohort_is_busy_is_a_form_error_not_a_5xx(client, cohort, monkeypatch):
    def busy(**kwargs):
        raise CohortBusy()

    monkeypatch.setattr("registrations.views.registration_submit", busy)

    response = client.post(signup_url(), signup_data())

    assert response.status_code == 200
    assert str(CohortBusy.message) in text(response)
    assert Registration.objects.count() == 0


# --- confirmation ----------------------------------------------------------


def test_get_confirm_shows_a_button_and_changes_nothing(client, cohort):
    registration = RegistrationFactory(
        cohort=cohort, municipality=Municipality.objects.get(cbs_code="GM0392")
    )

    response = client.get(confirm_url(registration.token))

    assert response.status_code == 200
    body = text(response)
    assert cohort.lab.title in body
    assert "Haarlem" in body
    assert registration.case_title in body
    assert "Aanmelding bevestigen" in body
    assert 'method="post"' in body
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.PENDING
    assert registration.token_used_at is None
    assert OutboxMessage.objects.count() == 0


def test_head_confirm_changes_nothing(client, cohort):
    registration = RegistrationFactory(cohort=cohort)
    assert client.head(confirm_url(registration.token)).status_code == 200
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.PENDING


def test_post_confirm_gives_a_seat(client, cohort, django_capture_on_commit_callbacks):
    registration = RegistrationFactory(cohort=cohort)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(confirm_url(registration.token))

    assert response.status_code == 200
    body = text(response)
    assert "Uw gemeente heeft een plaats" in body
    assert "3 gemeenten hun aanmelding hebben bevestigd" in body
    assert "Er zijn nog 2 gemeenten nodig" in body
    assert "adviseur" in body
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.CONFIRMED


def test_post_confirm_of_the_third_municipality_says_the_lab_starts(
    client, cohort, django_capture_on_commit_callbacks
):
    fill(cohort, 2, confirmed=True)
    registration = RegistrationFactory(cohort=cohort)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(confirm_url(registration.token))

    body = text(response)
    assert "Uw gemeente heeft een plaats" in body
    assert "van start" in body
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED


def test_post_confirm_when_full_gives_the_waitlist_with_position(client, cohort):
    fill(cohort, 5, confirmed=True)
    first = RegistrationFactory(cohort=cohort)
    second = RegistrationFactory(cohort=cohort)

    response = client.post(confirm_url(first.token))

    assert response.status_code == 200
    body = text(response)
    assert "wachtlijst" in body
    assert "Uw plaats op de wachtlijst: <strong>1</strong>" in body
    assert "Uw gemeente heeft een plaats" not in body
    first.refresh_from_db()
    assert first.status == RegistrationStatus.WAITLISTED

    body = text(client.post(confirm_url(second.token)))
    assert "Uw plaats op de wachtlijst: <strong>2</strong>" in body


def test_seat_then_waitlist(client, cohort):
    """Issue #2: the fifth municipality gets a seat, the sixth the waitlist."""
    fill(cohort, 4, confirmed=True)
    fifth = RegistrationFactory(cohort=cohort)
    sixth = RegistrationFactory(cohort=cohort)

    assert "Uw gemeente heeft een plaats" in text(client.post(confirm_url(fifth.token)))
    assert "Uw plaats op de wachtlijst: <strong>1</strong>" in text(client.post(confirm_url(sixth.token)))


def test_repost_of_a_used_link_shows_the_same_outcome(client, cohort):
    registration = RegistrationFactory(cohort=cohort)
    client.post(confirm_url(registration.token))
    messages = OutboxMessage.objects.count()

    again = client.post(confirm_url(registration.token))

    assert again.status_code == 200
    assert "Uw gemeente heeft een plaats" in text(again)
    assert "al eerder bevestigd" in text(again)
    assert OutboxMessage.objects.count() == messages


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("token", ["bestaat-niet", "x" * 300, "%00", "%E2%80%AE", "' OR 1=1 --"])
def test_invalid_token_is_a_friendly_404(client, db, method, token):
    response = getattr(client, method)(f"/aanmelding/bevestig/{token}/")
    assert response.status_code == 404
    assert "Deze bevestigingslink is ongeldig" in text(response)


@pytest.mark.parametrize("method", ["get", "post"])
def test_expired_token_is_a_friendly_410(client, cohort, method):
    registration = RegistrationFactory(cohort=cohort, expired=True)

    response = getattr(client, method)(confirm_url(registration.token))

    assert response.status_code == 410
    body = text(response)
    assert "verlopen" in body
    assert "Meld u opnieuw aan" in body
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.PENDING


def test_used_link_of_a_withdrawn_registration_is_a_friendly_error(client, cohort):
    registration = RegistrationFactory(
        cohort=cohort, status=RegistrationStatus.WITHDRAWN, token_used_at=timezone.now()
    )
    response = client.post(confirm_url(registration.token))
    assert response.status_code == 410
    assert "al gebruikt" in text(response)


def test_confirm_of_a_municipality_that_already_has_a_seat(client, cohort):
    haarlem = Municipality.objects.get(cbs_code="GM0392")
    RegistrationFactory(cohort=cohort, municipality=haarlem, confirmed=True, contact_name="Piet Geheim")
    duplicate = RegistrationFactory(cohort=cohort, municipality=haarlem)

    response = client.post(confirm_url(duplicate.token))

    assert response.status_code == 409
    body = text(response)
    assert "al aangemeld" in body
    assert "Piet Geheim" not in body


def test_confirm_when_the_cohort_is_busy_is_not_a_5xx(client, cohort, monkeypatch):
    registration = RegistrationFactory(cohort=cohort)

    def busy(**kwargs):
        raise CohortBusy()

    monkeypatch.setattr("registrations.views.registration_confirm", busy)

    response = client.post(confirm_url(registration.token))

    assert response.status_code == 409
    body = text(response)
    assert str(CohortBusy.message) in body
    assert "Probeer opnieuw" in body


def test_confirm_after_the_cohort_ended(client, cohort):
    registration = RegistrationFactory(cohort=cohort)
    cohort.status = CohortStatus.CANCELLED
    cohort.save()

    response = client.post(confirm_url(registration.token))

    assert response.status_code == 409
    assert "niet mogelijk" in text(response)


def test_confirm_link_in_the_email_works_end_to_end(client, cohort, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(signup_url(), signup_data())
    link = re.search(
        r"https?://\S+/aanmelding/bevestig/[^\s/]+/", OutboxMessage.objects.get().body_text
    ).group(0)
    path = urlsplit(link).path

    assert client.get(path).status_code == 200
    assert Registration.objects.get().status == RegistrationStatus.PENDING
    assert "Uw gemeente heeft een plaats" in text(client.post(path))
    assert Registration.objects.get().status == RegistrationStatus.CONFIRMED


# --- privacy -----------------------------------------------------------------


def test_privacy_statement(client, db, settings):
    settings.LEERLAB_PRIVACY_VERSION = "2031-01"

    response = client.get(reverse("privacy"))

    assert response.status_code == 200
    body = text(response)
    assert "Versie 2031-01" in body
    for words in [
        "naam en e-mailadres",
        "functie en telefoonnummer",
        "case",
        "leervragen",
        "toestemming",
        "adviseurs",
        "12 maanden",
        "in te zien",
        "te laten corrigeren",
        "te laten verwijderen",
        "Autoriteit Persoonsgegevens",
    ]:
        assert words in body, words


def test_pages_refuse_other_methods(client, db):
    assert client.put(reverse("home")).status_code == 405
    assert client.post(reverse("home")).status_code == 405
    assert client.delete(signup_url()).status_code == 405


def test_expired_signup_stays_out_of_the_seats(client, cohort):
    RegistrationFactory(cohort=cohort, token_expires_at=timezone.now() - timedelta(days=1))
    body = text(client.get(reverse("leerlab:lab_detail", kwargs={"slug": "verhaal-warmtetransitie"})))
    assert "0 van maximaal 5" in body
