"""Injection through the portal's inputs (issue #3): email headers, HTML in
pages, the admin and emails, open redirects, and SQL-looking input."""

import html
import re

import pytest
from django.core import mail
from django.urls import reverse

from leerlab.models import LeerLab
from outbox.models import OutboxMessage
from registrations.models import Registration
from tests.factories import RegistrationFactory, UserFactory

SIGNUP = "/leerlabs/verhaal-warmtetransitie/aanmelden/"
SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'
EVIL = "https://evil.example/steal"


def signup_data(**overrides) -> dict:
    data = {
        "municipality": "GM0392",  # Haarlem
        "contact_name": "Jan de Vries",
        "contact_email": "j.devries@haarlem.nl",
        "case_title": "Wijkaanpak Schalkwijk",
        "case_description": "Wij willen de wijk aardgasvrij maken.",
        "privacy_consent": "on",
    }
    data.update(overrides)
    return data


def signup(client, django_capture_on_commit_callbacks, **overrides):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(SIGNUP, signup_data(**overrides))
    assert response.status_code == 302, response.content.decode()[:500]
    return Registration.objects.get()


def token_of(message) -> str:
    return re.search(r"/aanmelding/bevestig/([^/\s]+)/", message.body).group(1)


# --- email headers ----------------------------------------------------------------------


def test_a_lab_title_with_a_line_break_gives_a_one_line_subject(
    client, lab, django_capture_on_commit_callbacks
):
    """Issue #3: a title (edited by an advisor) with CR/LF and a header after
    it stays one subject line; no Bcc header, no extra recipient."""
    LeerLab.objects.filter(pk=lab.pk).update(title="Verhaal\r\nBcc: evil@example.com\r\n\r\nbody")

    signup(client, django_capture_on_commit_callbacks)

    message = OutboxMessage.objects.get()
    assert "\n" not in message.subject and "\r" not in message.subject
    assert "Bevestig" in message.subject
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.recipients() == ["j.devries@haarlem.nl"]
    mime = sent.message()
    assert mime["Bcc"] is None
    assert "\n" not in str(mime["Subject"]).replace("\n ", "")  # only RFC 5322 folding
    raw_headers = mime.as_bytes().split(b"\n\n", 1)[0].decode()
    assert not re.search(r"(?im)^bcc:", raw_headers)


@pytest.mark.parametrize(
    "address",
    [
        "j.devries@haarlem.nl\r\nBcc: evil@example.com",
        "j.devries@haarlem.nl\nBcc: evil@example.com",
        "j.devries@haarlem.nl\rBcc: evil@example.com",
        "j.devries@haarlem.nl, evil@example.com",
        '"Jan" <evil@example.com>',
        "j.devries@haarlem.nl%0d%0aBcc:evil@example.com",
    ],
)
def test_an_email_address_with_extra_headers_or_recipients_is_refused(client, lab, address):
    """Issue #3: header injection through contact_email."""
    response = client.post(SIGNUP, signup_data(contact_email=address))

    assert response.status_code == 200
    assert "contact_email" in response.context["form"].errors
    assert Registration.objects.count() == 0
    assert len(mail.outbox) == 0


@pytest.mark.parametrize("field", ["contact_name", "case_title", "contact_role"])
def test_line_breaks_in_one_line_fields_are_refused(client, lab, field):
    response = client.post(SIGNUP, signup_data(**{field: "Jan\r\nBcc: evil@example.com"}))
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert Registration.objects.count() == 0


# --- HTML in pages, the admin and emails -------------------------------------------------


def assert_escaped(body: str, raw: str):
    assert raw not in body
    assert html.escape(raw, quote=False) in body or html.escape(raw) in body


def test_html_in_a_signup_is_escaped_everywhere_it_is_shown(client, lab, django_capture_on_commit_callbacks):
    """Issue #3: a case title "<script>..." and a name with an <img onerror>
    are shown as text on the confirmation pages, in the admin and in the
    HTML email; the plain-text email keeps them as typed."""
    registration = signup(client, django_capture_on_commit_callbacks, case_title=SCRIPT, contact_name=IMG)
    assert registration.case_title == SCRIPT  # stored as typed, escaped on output

    message = mail.outbox[0]
    html_body = message.alternatives[0][0]
    assert_escaped(html_body, SCRIPT)
    assert_escaped(html_body, IMG)
    assert SCRIPT in message.body
    assert IMG in message.body

    url = f"/aanmelding/bevestig/{token_of(message)}/"
    assert_escaped(client.get(url).content.decode(), SCRIPT)
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(url)
    assert confirmed.status_code == 200
    assert SCRIPT not in confirmed.content.decode()

    client.force_login(UserFactory(superuser=True))
    changelist = client.get(reverse("admin:registrations_registration_changelist"))
    assert_escaped(changelist.content.decode(), SCRIPT)
    assert IMG not in changelist.content.decode()
    change = client.get(reverse("admin:registrations_registration_change", args=[registration.pk]))
    assert SCRIPT not in change.content.decode()
    assert IMG not in change.content.decode()


def test_html_in_a_lab_title_is_escaped_on_the_public_pages(client, lab):
    LeerLab.objects.filter(pk=lab.pk).update(title=f"Verhaal {SCRIPT}")
    for url in ["/", f"/leerlabs/{lab.slug}/", SIGNUP]:
        response = client.get(url)
        assert response.status_code == 200
        assert_escaped(response.content.decode(), SCRIPT)


def test_html_in_an_advisor_email_is_escaped(client, cohort, django_capture_on_commit_callbacks):
    """The confirmation email of a registration made outside the form
    (factory), with HTML in every text field that reaches the email."""
    registration = RegistrationFactory(cohort=cohort, contact_name=IMG, case_title=SCRIPT)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/aanmelding/bevestig/{registration.token}/")
    assert response.status_code == 200
    assert SCRIPT not in response.content.decode()
    for message in OutboxMessage.objects.all():
        assert SCRIPT not in message.body_html
        assert IMG not in message.body_html


# --- open redirects ----------------------------------------------------------------------------

OFF_SITE = [
    EVIL,
    "//evil.example/steal",
    "https:evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "http://testserver.evil.example/",
    # Found by hypothesis: Python's URL parser drops the CR, Django's check
    # saw "//" and the redirect went to a host called "%0D".
    "//\r",
    "//",
    "//\tevil.example",
]


def assert_on_site(response):
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location


@pytest.mark.parametrize("target", OFF_SITE)
def test_language_switch_does_not_redirect_off_site(client, db, target):
    """Issue #3: /i18n/setlang/ with next (and Referer) pointing elsewhere."""
    response = client.post("/i18n/setlang/", {"language": "en", "next": target}, HTTP_REFERER=target)
    assert_on_site(response)


def test_language_switch_keeps_an_on_site_next(client, db):
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/privacy/"})
    assert response["Location"] == "/en/privacy/"


@pytest.mark.parametrize("target", OFF_SITE)
def test_admin_login_does_not_redirect_off_site(client, db, target):
    """Issue #3: ?next= on the admin login, in the query string and the form."""
    user = UserFactory(superuser=True)
    login = reverse("admin:login")
    response = client.post(
        f"{login}?next={target}",
        {"username": user.username, "password": "een-lang-testwachtwoord", "next": target},
    )

    assert_on_site(response)
    assert response["Location"] == reverse("admin:index")


def test_admin_logout_does_not_redirect_off_site(client, db):
    client.force_login(UserFactory(superuser=True))
    response = client.post(reverse("admin:logout") + f"?next={EVIL}")
    assert "evil.example" not in response.get("Location", "")


# --- hosts and SQL-looking input ----------------------------------------------------------------


def test_an_unknown_host_header_is_refused(client, db):
    """Links in emails use SITE_URL, and a forged Host is refused outright."""
    assert client.get("/", HTTP_HOST="evil.example").status_code == 400


def test_sql_looking_input_is_just_text(client, lab, django_capture_on_commit_callbacks):
    response = client.post(SIGNUP, signup_data(municipality="GM0392' OR '1'='1"))
    assert response.status_code == 200
    assert "municipality" in response.context["form"].errors

    registration = signup(
        client,
        django_capture_on_commit_callbacks,
        case_title="x'); DROP TABLE registrations_registration; --",
    )
    assert Registration.objects.get(pk=registration.pk).case_title.startswith("x');")

    client.force_login(UserFactory(superuser=True))
    search = client.get(reverse("admin:registrations_registration_changelist"), {"q": "' OR 1=1 --"})
    assert search.status_code == 200
    assert list(search.context["cl"].result_list) == []
