"""Every rule of the signup form (issue #2): each bad input gets its own
message next to the field and nothing is stored; bad requests never cause
a 5xx."""

import html

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from municipalities.models import Municipality
from outbox.models import OutboxMessage
from registrations import errors
from registrations.forms import SignupForm
from registrations.models import (
    CASE_DESCRIPTION_MAX,
    CASE_TITLE_MAX,
    CONTACT_NAME_MAX,
    CONTACT_PHONE_MAX,
    CONTACT_ROLE_MAX,
    LEARNING_NEEDS_MAX,
    Registration,
)
from tests.factories import RegistrationFactory

URL = "/leerlabs/verhaal-warmtetransitie/aanmelden/"

CONTROL_MESSAGE = "Dit veld bevat ongeldige (onzichtbare) tekens."
CONTROL_SAMPLES = ["\x00", "\x1b[31m", "\u202e", "\u200b", "\x7f"]


@pytest.fixture(autouse=True)
def dutch():
    with translation.override("nl"):
        yield


def signup_data(**overrides) -> dict:
    data = {
        "municipality": "GM0392",  # Haarlem
        "contact_name": "Jan de Vries",
        "contact_email": "j.devries@haarlem.nl",
        "contact_role": "Beleidsmedewerker warmtetransitie",
        "contact_phone": "+31 23 511 5115",
        "case_title": "Wijkaanpak Schalkwijk",
        "case_description": "Wij willen de wijk Schalkwijk\nstap voor stap aardgasvrij maken.",
        "learning_needs": "Hoe betrekken we huurders?\n\t- en VvE's?",
        "privacy_consent": "on",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def post_rejected(client, data, field: str, message: str):
    """POST `data`; assert the page shows `message` at `field` and in the
    summary, and that no registration and no email was stored."""
    registrations, messages = Registration.objects.count(), OutboxMessage.objects.count()
    response = client.post(URL, data)
    assert response.status_code == 200
    form = response.context["form"]
    assert message in [str(m) for m in form.errors.get(field, [])], form.errors
    body = html.unescape(response.content.decode())
    assert f'id="id_{field}_error"' in body
    assert message in body.split('id="error-summary-title"')[1].split("</ul>")[0]
    assert Registration.objects.count() == registrations
    assert OutboxMessage.objects.count() == messages
    return response


@pytest.fixture
def haarlem(db) -> Municipality:
    return Municipality.objects.get(cbs_code="GM0392")


# --- municipality --------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["GM9999", "GM03921", "HAARLEM", "0392", "gm 0392", "<script>", "GM0392\x00"]
)
def test_unknown_municipality_code(client, cohort, code):
    post_rejected(
        client,
        signup_data(municipality=code),
        "municipality",
        str(errors.MunicipalityNotParticipating.message),
    )


def test_municipality_outside_the_province(client, cohort):
    utrecht = Municipality.objects.get(cbs_code="GM0344")
    assert utrecht.province == "Utrecht" and utrecht.is_active

    response = post_rejected(
        client,
        signup_data(municipality="GM0344"),
        "municipality",
        str(errors.MunicipalityOutsideProvince.message),
    )
    assert "Noord-Holland" in html.unescape(response.content.decode())


def test_inactive_merged_municipality(client, cohort):
    weesp = Municipality.objects.get(cbs_code="GM0457")
    assert weesp.province == "Noord-Holland" and not weesp.is_active

    post_rejected(
        client, signup_data(municipality="GM0457"), "municipality", str(errors.MunicipalityInactive.message)
    )


def test_missing_municipality(client, cohort):
    post_rejected(client, signup_data(municipality=""), "municipality", "Kies uw gemeente.")


def test_municipality_code_is_case_insensitive(client, cohort):
    assert client.post(URL, signup_data(municipality="gm0392")).status_code == 302
    assert Registration.objects.get().municipality.cbs_code == "GM0392"


# --- required fields -----------------------------------------------------


@pytest.mark.parametrize(
    "field, message",
    [
        ("contact_name", "Vul uw naam in."),
        ("contact_email", "Vul uw e-mailadres in."),
        ("case_title", "Geef uw case een titel."),
        ("case_description", "Beschrijf uw case."),
    ],
)
@pytest.mark.parametrize("value", [None, "", "   \n\t  "])
def test_missing_required_field(client, cohort, field, message, value):
    post_rejected(client, signup_data(**{field: value}), field, message)


def test_optional_fields_may_be_left_empty(client, cohort):
    response = client.post(URL, signup_data(contact_role="", contact_phone="", learning_needs=None))
    assert response.status_code == 302
    registration = Registration.objects.get()
    assert (registration.contact_role, registration.contact_phone, registration.learning_needs) == (
        "",
        "",
        "",
    )


@pytest.mark.parametrize("value", [None, "", "off", "false", "0", "nee"])
def test_missing_consent(client, cohort, value):
    post_rejected(
        client, signup_data(privacy_consent=value), "privacy_consent", str(errors.ConsentMissing.message)
    )


# --- email and phone -----------------------------------------------------

EMAIL_MESSAGE = "Vul een geldig e-mailadres in, bijvoorbeeld naam@gemeente.nl."


@pytest.mark.parametrize(
    "email",
    [
        "geen-adres",
        "jan@",
        "@haarlem.nl",
        "jan@haarlem",
        "jan de vries@haarlem.nl",
        "jan@haarlem.nl\nBcc: x@y.nl",
    ],
)
def test_invalid_email(client, cohort, email):
    post_rejected(client, signup_data(contact_email=email), "contact_email", EMAIL_MESSAGE)


def test_too_long_email(client, cohort):
    email = "j" * 64 + "@" + ("a" * 60 + ".") * 3 + "haarlem.nl"
    assert len(email) > 254
    response = client.post(URL, signup_data(contact_email=email))
    assert "contact_email" in response.context["form"].errors
    assert Registration.objects.count() == 0


@pytest.mark.parametrize("phone", ["bel me", "12", "+31 6 1234 5678 9999 000", "020-123<b>4567"])
def test_invalid_phone(client, cohort, phone):
    post_rejected(
        client,
        signup_data(contact_phone=phone),
        "contact_phone",
        "Vul een geldig telefoonnummer in, bijvoorbeeld 020 123 4567 of +31 20 123 4567.",
    )


def test_email_outside_the_municipality_domains_is_accepted_but_flagged(client, cohort, haarlem):
    assert haarlem.email_domains.filter(domain="haarlem.nl").exists()

    response = client.post(URL, signup_data(contact_email="j.devries@adviesbureau.example"))

    assert response.status_code == 302
    assert Registration.objects.get().email_domain_flagged is True


def test_email_at_the_municipality_domain_is_not_flagged(client, cohort):
    assert client.post(URL, signup_data(contact_email="J.deVries@HAARLEM.nl")).status_code == 302
    assert Registration.objects.get().email_domain_flagged is False


# --- lengths ---------------------------------------------------------------


@pytest.mark.parametrize(
    "field, limit",
    [
        ("contact_name", CONTACT_NAME_MAX),
        ("contact_role", CONTACT_ROLE_MAX),
        ("contact_phone", CONTACT_PHONE_MAX),
        ("case_title", CASE_TITLE_MAX),
        ("case_description", CASE_DESCRIPTION_MAX),
        ("learning_needs", LEARNING_NEEDS_MAX),
    ],
)
def test_too_long_text(client, cohort, field, limit):
    value = "1" * (limit + 1) if field == "contact_phone" else "a" * (limit + 1)
    post_rejected(
        client,
        signup_data(**{field: value}),
        field,
        f"Gebruik maximaal {limit} tekens; u hebt er nu {limit + 1}.",
    )


@pytest.mark.parametrize(
    "field, limit",
    [
        ("contact_name", CONTACT_NAME_MAX),
        ("contact_role", CONTACT_ROLE_MAX),
        ("case_title", CASE_TITLE_MAX),
        ("case_description", CASE_DESCRIPTION_MAX),
        ("learning_needs", LEARNING_NEEDS_MAX),
    ],
)
def test_text_at_the_limit_is_accepted(client, cohort, field, limit):
    assert client.post(URL, signup_data(**{field: "é" * limit})).status_code == 302
    assert len(getattr(Registration.objects.get(), field)) == limit


def test_form_max_lengths_match_the_model(db):
    """The form may never accept more than the database column holds."""
    form = SignupForm()
    for name in [
        "contact_name",
        "contact_role",
        "contact_phone",
        "case_title",
        "case_description",
        "learning_needs",
    ]:
        assert form.fields[name].max_length == Registration._meta.get_field(name).max_length, name
    assert form.fields["contact_email"].max_length <= Registration._meta.get_field("contact_email").max_length


# --- control characters ------------------------------------------------------


@pytest.mark.parametrize("sample", CONTROL_SAMPLES)
@pytest.mark.parametrize(
    "field", ["contact_name", "contact_role", "case_title", "case_description", "learning_needs"]
)
def test_control_characters_are_refused(client, cohort, field, sample):
    post_rejected(client, signup_data(**{field: f"Schalk{sample}wijk"}), field, CONTROL_MESSAGE)


@pytest.mark.parametrize("sample", CONTROL_SAMPLES)
def test_control_characters_in_email_and_phone_are_refused(client, cohort, sample):
    response = client.post(
        URL, signup_data(contact_email=f"jan{sample}@haarlem.nl", contact_phone=f"023{sample}5115115")
    )
    form = response.context["form"]
    assert "contact_email" in form.errors
    assert "contact_phone" in form.errors
    assert Registration.objects.count() == 0


def test_line_breaks_and_tabs_are_text_in_text_areas(client, cohort):
    description = "Eerste regel\r\nTweede regel\n\tingesprongen"
    assert client.post(URL, signup_data(case_description=description)).status_code == 302
    assert "Tweede regel" in Registration.objects.get().case_description


def test_line_break_in_a_one_line_field_is_refused(client, cohort):
    post_rejected(client, signup_data(case_title="Titel\nBcc: iemand"), "case_title", CONTROL_MESSAGE)


def test_one_message_per_control_character_problem(client, cohort):
    """Django's own NUL check would repeat our message in other words."""
    response = client.post(URL, signup_data(contact_name="Jan\x00"))
    assert [str(m) for m in response.context["form"].errors["contact_name"]] == [CONTROL_MESSAGE]


# --- duplicates ------------------------------------------------------------------


@pytest.mark.parametrize("trait", ["confirmed", "waitlisted"])
def test_duplicate_signup_does_not_reveal_who_registered(client, cohort, haarlem, trait):
    RegistrationFactory(
        cohort=cohort,
        municipality=haarlem,
        contact_name="Geertruida Geheim",
        contact_email="g.geheim@haarlem.nl",
        contact_phone="023 999 8888",
        case_title="Geheime case",
        **{trait: True},
    )

    response = post_rejected(client, signup_data(), "municipality", str(errors.AlreadyRegistered.message))

    body = response.content.decode()
    for secret in ["Geertruida", "Geheim", "g.geheim@haarlem.nl", "999 8888", "Geheime case"]:
        assert secret not in body
    assert Registration.objects.count() == 1


def test_pending_signup_of_a_colleague_does_not_block(client, cohort, haarlem):
    """Only confirmed or waitlisted signups hold a municipality's place."""
    RegistrationFactory(cohort=cohort, municipality=haarlem)
    assert client.post(URL, signup_data()).status_code == 302
    assert Registration.objects.filter(municipality=haarlem).count() == 2


def test_same_municipality_may_sign_up_for_another_lab(client, cohort, haarlem):
    RegistrationFactory(cohort=cohort, municipality=haarlem, confirmed=True)
    response = client.post("/leerlabs/startplan-wijkaanpak-aardgasvrij/aanmelden/", signup_data())
    assert response.status_code == 302


# --- garbage requests ------------------------------------------------------------


def test_huge_values_are_refused_without_a_5xx(client, cohort):
    big = "x" * 200_000  # 1.8 MB in all, under the 2.5 MB request limit
    response = client.post(URL, {name: big for name in signup_data()})
    assert response.status_code == 200
    errors_ = response.context["form"].errors
    assert {"municipality", "contact_name", "contact_email", "case_title", "case_description"} <= set(errors_)
    assert Registration.objects.count() == 0


def test_request_body_over_the_upload_limit_is_a_400(client, cohort, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    response = client.post(URL, signup_data(case_description="x" * 200_000))
    assert response.status_code == 400
    assert Registration.objects.count() == 0


def test_lists_for_single_fields_are_handled(client, cohort):
    data = signup_data()
    data["municipality"] = ["GM0392", "GM0344"]  # the last value counts
    data["contact_name"] = ["Jan", "Piet\x00"]
    response = client.post(URL, data)
    assert response.status_code == 200
    errors_ = response.context["form"].errors
    assert str(errors.MunicipalityOutsideProvince.message) in errors_["municipality"]
    assert CONTROL_MESSAGE in errors_["contact_name"]
    assert Registration.objects.count() == 0


def test_unknown_fields_and_odd_encodings_are_ignored_or_refused(client, cohort):
    response = client.post(
        URL,
        "municipality=%FF%FE&contact_name=%C0%AF&privacy_consent=on&status=confirmed",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code < 500
    assert Registration.objects.count() == 0


def test_json_body_is_not_a_5xx(client, cohort):
    response = client.post(URL, {"municipality": {"nested": True}}, content_type="application/json")
    assert response.status_code == 200
    assert Registration.objects.count() == 0


def test_post_without_csrf_token_is_403(cohort):
    client = Client(enforce_csrf_checks=True)
    response = client.post(URL, signup_data())
    assert response.status_code == 403
    assert "Het formulier is verlopen" in html.unescape(response.content.decode())
    assert Registration.objects.count() == 0


def test_post_with_csrf_token_from_the_form_works(cohort):
    client = Client(enforce_csrf_checks=True)
    client.get(URL)
    token = client.cookies["csrftoken"].value
    assert client.post(URL, signup_data(csrfmiddlewaretoken=token)).status_code == 302


def test_confirm_without_csrf_token_is_403_and_confirms_nothing(cohort):
    registration = RegistrationFactory(cohort=cohort)
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("registrations:confirm", kwargs={"token": registration.token}))
    assert response.status_code == 403
    registration.refresh_from_db()
    assert registration.token_used_at is None


# --- the form class itself -------------------------------------------------------


def test_form_offers_participating_municipalities_only(db):
    form = SignupForm()
    codes = [code for code, _ in form.fields["municipality"].widget.choices if code]
    assert "GM0392" in codes and "GM0344" not in codes and "GM0457" not in codes


def test_error_summary_links_every_error_to_its_field(db):
    form = SignupForm(data=signup_data(contact_name="", privacy_consent=None))
    assert not form.is_valid()
    summary = form.error_summary()
    assert ("id_contact_name", "Uw naam: Vul uw naam in.") in summary
    assert ("id_privacy_consent", f"Toestemming: {errors.ConsentMissing.message}") in summary


def test_valid_form_gives_the_service_arguments(db, haarlem):
    form = SignupForm(data=signup_data())
    assert form.is_valid(), form.errors
    kwargs = form.submit_kwargs()
    assert kwargs["municipality"] == haarlem
    assert kwargs["privacy_consent"] is True
    assert form.contact_details() == {
        "municipality": "GM0392",
        "contact_name": "Jan de Vries",
        "contact_email": "j.devries@haarlem.nl",
        "contact_role": "Beleidsmedewerker warmtetransitie",
        "contact_phone": "+31 23 511 5115",
    }
