"""The portal end to end in a real browser (issue #4): Debian's Chromium
against the live server, email over SMTP to a real SMTP server, the
database checked afterwards. Nothing is mocked.

- An officer signs up, confirms through the link in the email the SMTP
  server received, and gets the fifth and last seat; then signs up for a
  second lab with the form pre-filled.
- A sixth officer gets the waitlist page.
- An officer who signs up in English gets an English link and pages.
- An advisor logs into the admin with password and authenticator code and
  closes registration for a cohort.
"""

import pytest
from django.contrib.auth.models import Group
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from leerlab.models import Cohort, CohortStatus
from registrations.models import Registration, RegistrationStatus
from tests.factories import UserFactory

from .support import (
    LAB_OPEN,
    LAB_OTHER,
    Officer,
    confirmation_link,
    confirmed_registrations,
    current_cohort,
    fill_signup,
    municipalities,
    submit_signup,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(120),
]


def _confirm(page, link: str) -> None:
    """Open the emailed link (a GET changes nothing) and press the button."""
    page.goto(link)
    # Mail scanners follow links: the GET only shows the button.
    assert page.locator("[data-outcome]").count() == 0
    with page.expect_navigation():
        page.click("main form button[type=submit]")


def test_officer_signs_up_confirms_gets_the_last_seat_and_signs_up_again(page, portal):
    """Issue #4: signup, confirmation by the emailed link, the seat page,
    and a second signup with the contact details pre-filled."""
    confirmed_registrations(LAB_OPEN, 4)
    municipality = municipalities(1, skip=20)[0]
    officer = Officer(
        municipality=municipality.cbs_code, name="Fatima el Amrani", email="f.elamrani@example.nl"
    )

    page.goto(f"/leerlabs/{LAB_OPEN}/")
    with page.expect_navigation():
        page.click("main a.btn-primary")  # "Aanmelden voor dit Leer Lab"
    fill_signup(page, officer, case_title="Wijkaanpak Oost")
    submit_signup(page)
    assert "/aanmelden/verzonden/" in page.url
    assert officer.email in page.locator("main").inner_text()

    registration = Registration.objects.get(contact_email=officer.email)
    assert registration.status == RegistrationStatus.PENDING
    _confirm(page, confirmation_link(portal, officer.email))

    outcome = page.locator("[data-outcome]")
    assert outcome.get_attribute("data-outcome") == "seat"
    assert municipality.name in outcome.inner_text()
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.CONFIRMED
    # The fifth seat: the cohort started and closed, and the start email
    # went out over SMTP (tasks run after commit in the server).
    cohort = Cohort.objects.get(pk=registration.cohort_id)
    assert cohort.status == CohortStatus.CLOSED
    subjects = [m.subject for m in portal.to(officer.email)]
    assert any("van start" in s for s in subjects), subjects

    # A second lab: the contact details come from this visit's first signup.
    page.goto(f"/leerlabs/{LAB_OTHER}/aanmelden/")
    assert page.locator(".alert-info").count() == 1
    assert page.input_value("#id_municipality") == officer.municipality
    assert page.input_value("#id_contact_name") == officer.name
    assert page.input_value("#id_contact_email") == officer.email
    assert page.input_value("#id_contact_role") == officer.role
    assert page.input_value("#id_contact_phone") == officer.phone
    assert page.input_value("#id_case_title") == ""
    assert not page.is_checked("#id_privacy_consent")
    fill_signup(page, officer, case_title="Doelgroepen in Oost", contact=False)
    submit_signup(page)
    assert "/aanmelden/verzonden/" in page.url

    second = Registration.objects.get(contact_email=officer.email, cohort__lab__slug=LAB_OTHER)
    assert second.case_title == "Doelgroepen in Oost"
    assert second.municipality_id == municipality.pk
    assert sum("Bevestig" in m.subject for m in portal.to(officer.email)) == 2


def test_sixth_municipality_gets_the_waitlist_page(page, portal):
    """Issue #4: when all five seats are taken, a confirmed signup shows the
    waitlist page with the place on the list."""
    confirmed_registrations(LAB_OPEN, 5)
    municipality = municipalities(1, skip=20)[0]
    officer = Officer(municipality=municipality.cbs_code, name="Pieter Bakker", email="p.bakker@example.nl")

    page.goto(f"/leerlabs/{LAB_OPEN}/aanmelden/")
    assert page.locator("main .alert-warning").count() == 1  # "Dit Leer Lab is vol."
    fill_signup(page, officer, case_title="Warmtenet Noord")
    submit_signup(page)
    _confirm(page, confirmation_link(portal, officer.email))

    outcome = page.locator("[data-outcome]")
    assert outcome.get_attribute("data-outcome") == "waitlist"
    assert "1" in outcome.locator("strong").inner_text()
    assert Registration.objects.get(contact_email=officer.email).status == RegistrationStatus.WAITLISTED
    assert any("wachtlijst" in m.subject for m in portal.to(officer.email))


def test_officer_signing_up_in_english_stays_in_english(page, portal):
    """Issue #4: under /en/ the pages say lang="en", and the link in the
    email leads back to the English pages."""
    municipality = municipalities(1, skip=20)[0]
    officer = Officer(municipality=municipality.cbs_code, name="Emma Jansen", email="e.jansen@example.nl")

    page.goto("/")
    assert page.evaluate("document.documentElement.lang") == "nl"
    with page.expect_navigation():
        page.click(".lang-switch button[value=en]")
    assert page.url.endswith("/en/")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.get_attribute(".lang-switch button[value=en]", "aria-current") == "true"

    page.goto(f"/en/leerlabs/{LAB_OPEN}/aanmelden/")
    fill_signup(page, officer, case_title="Neighbourhood approach")
    submit_signup(page)
    assert "/en/leerlabs/" in page.url

    link = confirmation_link(portal, officer.email)
    assert "/en/aanmelding/bevestig/" in link
    _confirm(page, link)
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.get_attribute("[data-outcome]", "data-outcome") == "seat"
    assert Registration.objects.get(contact_email=officer.email).language == "en"


def _totp_code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def test_advisor_logs_in_with_two_factor_and_closes_registration(page, portal, settings):
    """Issue #4: an advisor logs into the admin with password and a code
    from the authenticator app, and closes registration for a cohort with
    the "Aanmelding sluiten" action."""
    settings.LEERLAB_ADMIN_2FA = True
    advisor = UserFactory(staff=True, username="adviseur-browser")
    advisor.groups.add(Group.objects.get(name="Servicepunt-adviseurs"))
    device = TOTPDevice.objects.create(user=advisor, name="app", confirmed=True)
    cohort = current_cohort(LAB_OPEN)

    page.goto("/admin/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", advisor.username)
    page.fill("#id_password", "een-lang-testwachtwoord")
    page.fill("#id_otp_token", _totp_code(device))
    with page.expect_navigation():
        page.click("#login-form [type=submit]")
    assert "/admin/login/" not in page.url, page.locator(".errornote").all_inner_texts()

    page.goto("/admin/leerlab/cohort/")
    page.check(f"input[name=_selected_action][value='{cohort.pk}']")
    page.select_option("select[name=action]", "close_registration")
    with page.expect_navigation():
        page.click("#changelist-form button[name=index]")

    success = page.locator(".messagelist .success")
    assert success.count() == 1
    assert "Aanmelding gesloten voor 1 cohort" in success.inner_text()
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.CLOSED
    assert cohort.closed_at is not None
    # Other labs' cohorts are untouched.
    assert Cohort.objects.filter(status=CohortStatus.CLOSED).count() == 1
