"""Security hardening (issue #3): `check --deploy` is clean with the
production settings, every kind of response carries the security headers
and a strict Content-Security-Policy that the pages need no exception
from, cookies are Secure/HttpOnly/SameSite, admin sessions expire after an
idle hour, confirmation tokens are stored only as hashes, and no personal
data reaches the logs or the error pages."""

import logging
import os
import re
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.cache import cache
from django.db import models
from django.test import Client
from django.urls import path, reverse

from leerlab import urls as leerlab_urls
from outbox.models import OutboxMessage
from registrations.models import Registration
from tests.factories import RegistrationFactory, UserFactory

BASE_DIR = Path(django_settings.BASE_DIR)
SIGNUP = "/leerlabs/verhaal-warmtetransitie/aanmelden/"

PERSON = {
    "contact_name": "Grietje Zeeuw-Bakker",
    "contact_email": "g.zeeuw-bakker@haarlem.nl",
    "contact_phone": "023 511 4321",
}


def signup_data(**overrides) -> dict:
    data = {
        "municipality": "GM0392",  # Haarlem
        **PERSON,
        "contact_role": "Beleidsmedewerker",
        "case_title": "Warmtenet Schalkwijk",
        "case_description": "Een warmtenet voor de wijk.",
        "privacy_consent": "on",
    }
    data.update(overrides)
    return data


def confirm_token_from(message_body: str) -> str:
    match = re.search(r"/aanmelding/bevestig/([^/\s]+)/", message_body)
    assert match, "no confirmation link in the email"
    return match.group(1)


# --- manage.py check --deploy -------------------------------------------------------------


def _production_env(**overrides) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "LEERLAB_", "REDIS_URL", "DATABASE_URL"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="leerlab.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="leerlabs.example.nl",
    )
    env.update(overrides)
    return env


def _check_deploy(**env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=_production_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "cache_env",
    [{}, {"REDIS_URL": "redis://127.0.0.1:6379/11"}],
    ids=["local-memory-cache", "redis-cache"],
)
def test_check_deploy_is_clean_with_production_settings(cache_env):
    """Issue #3: the production defaults pass Django's deployment checklist
    (run in a fresh process, so settings.py is evaluated with DEBUG off)."""
    result = _check_deploy(**cache_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("env", "check_id"),
    [
        ({"DJANGO_SSL_REDIRECT": "0"}, "security.W008"),
        ({"DJANGO_SECURE_COOKIES": "0"}, "security.W012"),
        ({"DJANGO_HSTS_SECONDS": "0"}, "security.W004"),
        ({"LEERLAB_ADMIN_2FA": "0"}, "leerlab.W001"),
    ],
)
def test_check_deploy_catches_each_switch_turned_off(env, check_id):
    """The counter-proof: the check above would fail if a protection were
    off."""
    result = _check_deploy(**env)
    assert result.returncode != 0
    assert check_id in result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = _production_env(DJANGO_DEBUG="0")
    del env["DJANGO_SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


# --- headers on every response ---------------------------------------------------------------

EXPECTED_CSP = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "font-src": {"'self'"},
    "connect-src": {"'self'"},
    "object-src": {"'none'"},
    "base-uri": {"'none'"},
    "frame-ancestors": {"'none'"},
    "form-action": {"'self'"},
}


def csp_directives(response) -> dict[str, set[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no CSP on {response.status_code} {response.get('Content-Type')}"
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = set(values)
    return directives


def assert_security_headers(response, *, framing=True):
    assert csp_directives(response) == EXPECTED_CSP
    if framing:
        assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"


boom_calls = []


def boom(request):
    """A view that fails with personal data in hand (for the 500 page)."""
    boom_calls.append(request.path)
    raise RuntimeError(f"failure while handling {PERSON['contact_email']} {PERSON['contact_name']}")


urlpatterns = [path("boom/", boom), *leerlab_urls.urlpatterns]


@pytest.mark.urls("tests.test_security")
def test_security_headers_on_every_kind_of_response(client, cohort, settings):
    """Issue #3: pages, redirects, 4xx, 429, 500, the admin and static files
    all carry CSP and the other headers."""
    registration = RegistrationFactory(cohort=cohort)
    responses = {
        "page": client.get("/"),
        "english page": client.get("/en/"),
        "signup form": client.get(SIGNUP),
        "form with errors": client.post(SIGNUP, {"contact_email": "x"}),
        "confirm page": client.get(f"/aanmelding/bevestig/{registration.token}/"),
        "404": client.get("/bestaat-niet/"),
        "404 token": client.get("/aanmelding/bevestig/bestaat-niet/"),
        "405": client.put("/"),
        "admin login": client.get(reverse("admin:login")),
        "admin redirect": client.get(reverse("admin:index")),
        "set language redirect": client.post("/i18n/setlang/", {"language": "en", "next": "/"}),
    }
    csrf_client = Client(enforce_csrf_checks=True)
    responses["403 csrf"] = csrf_client.post(SIGNUP, signup_data())
    error_client = Client(raise_request_exception=False)
    responses["500"] = error_client.get("/boom/")
    settings.RATELIMIT_ENABLE = True
    settings.LEERLAB_RATELIMIT_SIGNUP = "0/10m"
    cache.clear()
    try:
        responses["429"] = client.post(SIGNUP, signup_data())
    finally:
        cache.clear()

    expected_status = {
        "form with errors": 200,
        "404": 404,
        "404 token": 404,
        "405": 405,
        "429": 429,
        "admin redirect": 302,
        "set language redirect": 302,
        "403 csrf": 403,
        "500": 500,
    }
    for name, response in responses.items():
        assert response.status_code == expected_status.get(name, 200), name
        assert_security_headers(response)


def test_security_headers_on_static_files(settings, db):
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    response = Client().get("/static/css/leerlab.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    # WhiteNoise answers before XFrameOptionsMiddleware; CSP frame-ancestors
    # covers framing for these (and nobody frames a stylesheet).
    assert_security_headers(response, framing=False)


def test_hsts_for_a_year_over_https(client, db):
    response = client.get("/", secure=True)
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_plain_http_is_redirected_to_https_in_production(settings, db):
    settings.SECURE_SSL_REDIRECT = True
    response = Client().get("/privacy/")
    assert response.status_code == 301
    assert response.url == "https://testserver/privacy/"


def test_the_production_defaults_are_the_strict_ones():
    """settings_test only switches off what plain-http tests cannot have."""
    assert django_settings.SESSION_COOKIE_SECURE is True
    assert django_settings.CSRF_COOKIE_SECURE is True
    assert django_settings.SECURE_HSTS_SECONDS == 31536000
    assert django_settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert django_settings.AXES_FAILURE_LIMIT == 5
    assert django_settings.RATELIMIT_FAIL_OPEN is True


# --- the pages need no CSP exception ----------------------------------------------------------


class InlineCodeFinder(HTMLParser):
    """Collects what a strict CSP would block: inline <script> code, style
    attributes and <style> elements, on* event handlers, javascript: URLs."""

    def __init__(self):
        super().__init__()
        self.problems: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"style attribute on <{tag}>: {value}")
            if name.startswith("on"):
                self.problems.append(f"event handler {name} on <{tag}>")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL on <{tag}>")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            data_block = (attributes.get("type") or "").lower() in ("application/json", "application/ld+json")
            self._in_inline_script = "src" not in attributes and not data_block

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data):
        if self._in_inline_script and data.strip():
            self.problems.append(f"inline script: {data.strip()[:60]}")


def inline_code(body: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(body)
    return finder.problems


def test_inline_code_finder_finds_what_csp_blocks():
    """The finder below must be able to fail."""
    assert inline_code('<p style="color:red">x</p>')
    assert inline_code("<script>alert(1)</script>")
    assert inline_code('<a href="javascript:alert(1)">x</a>')
    assert inline_code('<button onclick="x()">x</button>')
    assert not inline_code('<script src="/static/js/leerlab.js" defer></script>')
    assert not inline_code('<script id="c" type="application/json">{"a": 1}</script>')


def test_no_page_template_has_inline_code():
    """Issue #3: the public templates (emails excepted: no CSP in a mail
    client) have nothing a strict CSP would block."""
    templates = [p for p in (BASE_DIR / "templates").rglob("*.html") if "emails" not in p.parts]
    assert len(templates) > 10
    problems = {str(p.relative_to(BASE_DIR)): inline_code(p.read_text()) for p in templates}
    assert {name: found for name, found in problems.items() if found} == {}


@pytest.mark.urls("tests.test_security")
def test_rendered_pages_and_admin_have_no_inline_code(client, cohort, django_capture_on_commit_callbacks):
    """The rendered pages, crispy-forms and Django's admin included."""
    registration = RegistrationFactory(cohort=cohort)
    superuser = UserFactory(superuser=True)
    lab = cohort.lab
    pages = [
        client.get("/"),
        client.get("/en/"),
        client.get("/privacy/"),
        client.get(f"/leerlabs/{lab.slug}/"),
        client.get(SIGNUP),
        client.post(SIGNUP, {"contact_email": "geen-adres"}),
        client.get(f"/aanmelding/bevestig/{registration.token}/"),
        client.get("/aanmelding/bevestig/bestaat-niet/"),
        client.get("/bestaat-niet/"),
        client.get(reverse("admin:login")),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        pages.append(client.post(f"/aanmelding/bevestig/{registration.token}/"))
    client.force_login(superuser)
    for name in [
        "admin:index",
        "admin:leerlab_cohort_changelist",
        "admin:registrations_registration_changelist",
        "admin:outbox_outboxmessage_changelist",
        "admin:otp_totp_totpdevice_add",
        "admin:auth_user_add",
    ]:
        pages.append(client.get(reverse(name)))
    pages.append(client.get(reverse("admin:leerlab_cohort_change", args=[cohort.pk])))
    pages.append(client.get(reverse("admin:registrations_registration_change", args=[registration.pk])))

    for response in pages:
        assert response.status_code < 500
        assert inline_code(response.content.decode()) == [], response.wsgi_request.path


# --- cookies and sessions -----------------------------------------------------------------------


def test_public_signup_session_lasts_until_the_browser_closes(client, lab):
    """The contact details kept for a second signup live in a browser-session
    cookie; SESSION_SAVE_EVERY_REQUEST (for the admin) does not change that."""
    signed_up = client.post(SIGNUP, signup_data())
    assert signed_up.status_code == 302

    for response in (signed_up, client.get(signed_up.url)):
        cookie = response.cookies["sessionid"]
        assert cookie["max-age"] == ""
        assert cookie["expires"] == ""
        assert cookie["httponly"] is True
        assert cookie["secure"] is True
        assert cookie["samesite"] == "Lax"


def test_admin_session_expires_after_an_idle_hour(client, db):
    """Issue #3: SESSION_COOKIE_AGE 3600, renewed on every request."""
    user = UserFactory(superuser=True)
    response = client.post(
        reverse("admin:login"), {"username": user.username, "password": "een-lang-testwachtwoord"}
    )
    assert response.status_code == 302
    assert response.cookies["sessionid"]["max-age"] == 3600

    again = client.get(reverse("admin:index"))
    assert again.cookies["sessionid"]["max-age"] == 3600  # the idle hour starts again
    session = Session.objects.get(session_key=client.session.session_key)
    assert session.get_decoded()["_auth_user_id"] == str(user.pk)
    assert 3500 < (session.expire_date - again.wsgi_request.session.get_expiry_date()).total_seconds() + 3600


def test_csrf_and_language_cookies_are_locked_down(client, db):
    page = client.get(SIGNUP)
    csrf = page.cookies["csrftoken"]
    assert (csrf["httponly"], csrf["secure"], csrf["samesite"]) == (True, True, "Lax")

    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    language = response.cookies["django_language"]
    assert (language["httponly"], language["secure"], language["samesite"]) == (True, True, "Lax")


# --- tokens only as hashes ------------------------------------------------------------------------


def _text_fields(model):
    return [
        f.name
        for f in model._meta.concrete_fields
        if isinstance(f, models.CharField | models.TextField | models.JSONField)
    ]


def test_the_plain_confirmation_token_is_stored_nowhere_but_the_email(
    client, lab, django_capture_on_commit_callbacks
):
    """Issue #3: after a real signup the token is in the sent email and in
    the outbox row of that email, and in no other text column of any table
    (registrations included) or session."""
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(SIGNUP, signup_data()).status_code == 302
    token = confirm_token_from(mail.outbox[0].body)
    assert len(token) >= 32

    registration = Registration.objects.get()
    for field, value in Registration.objects.values().get().items():
        assert token not in str(value), f"registrations.{field} holds the plain token"
    import hashlib

    assert registration.token_hash == hashlib.sha256(token.encode()).hexdigest()

    found = []
    for model in apps.get_models():
        for field in _text_fields(model):
            # JSON: SQLite has no containment lookup; icontains searches the text.
            lookup = "icontains" if isinstance(model._meta.get_field(field), models.JSONField) else "contains"
            if model.objects.filter(**{f"{field}__{lookup}": token}).exists():
                found.append(f"{model._meta.db_table}.{field}")
    assert sorted(found) == ["outbox_outboxmessage.body_html", "outbox_outboxmessage.body_text"]
    for session in Session.objects.all():
        assert token not in str(session.get_decoded())


# --- no personal data in logs or error pages -----------------------------------------------------


@pytest.fixture
def all_logs_at_debug(caplog):
    """Every logger at DEBUG, as with DJANGO_LOG_LEVEL=DEBUG, except the few
    that LOGGING deliberately keeps higher because Django prints personal
    data there (template contexts, SQL parameters)."""
    pinned = set(django_settings.LOGGING["loggers"])
    assert {"django.template", "django.db.backends"} <= pinned
    for name in [None, *logging.root.manager.loggerDict]:
        if name not in pinned:
            caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_signup_and_confirmation_log_no_personal_data(
    client, lab, settings, all_logs_at_debug, django_capture_on_commit_callbacks
):
    """Issue #3: a whole signup (with a failed email delivery to a dead SMTP
    server) and confirmation, with every logger at DEBUG: ids only, no
    names, addresses, phone numbers or tokens."""
    caplog = all_logs_at_debug
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(SIGNUP, signup_data()).status_code == 302
        client.post(SIGNUP, signup_data(contact_email="niet-geldig"))  # a form error
    message = OutboxMessage.objects.get()
    assert message.attempts == 1  # the dead SMTP server was really tried
    token = confirm_token_from(message.body_text)

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(f"/aanmelding/bevestig/{token}/").status_code == 200
        assert client.post(f"/aanmelding/bevestig/{token}/").status_code == 200

    logged = caplog.text + "\n".join(repr(r.args) for r in caplog.records)
    assert "registration" in logged and "failed" in logged  # the logs were captured
    for secret in [*PERSON.values(), token, "zeeuw"]:
        assert secret.lower() not in logged.lower(), f"{secret!r} in the logs"


@pytest.mark.urls("tests.test_security")
def test_the_500_page_shows_no_personal_data(db, settings):
    """Issue #3: handler500 with DEBUG off shows the generic page, not the
    exception that had the officer's data in it."""
    settings.DEBUG = False
    response = Client(raise_request_exception=False).post("/boom/", signup_data())

    assert boom_calls
    assert response.status_code == 500
    body = response.content.decode()
    assert "Er ging iets mis" in body
    for value in PERSON.values():
        assert value not in body
    assert "Traceback" not in body


def test_404_pages_show_no_personal_data(client, cohort):
    registration = RegistrationFactory(cohort=cohort, contact_email="p.persoon@haarlem.nl")
    for url in [
        "/aanmelding/bevestig/bestaat-niet/",
        f"/aanmelding/bevestig/{registration.token[:-1]}/",
        "/leerlabs/bestaat-niet/",
        "/leerlabs/bestaat-niet/aanmelden/",
    ]:
        response = client.get(url)
        assert response.status_code == 404, url
        body = response.content.decode()
        for value in [registration.contact_email, registration.contact_name, registration.case_title]:
            assert value not in body, url


def test_management_commands_without_any_configuration_use_the_embedded_defaults(tmp_path):
    """A fresh clone: `python manage.py migrate` needs no environment (#2)."""
    env = _production_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    for key in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"):
        del env[key]
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_wsgi_refuses_to_start_without_a_secret_key():
    env = _production_env()
    del env["DJANGO_SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "-c", "import leerlab.wsgi"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr
