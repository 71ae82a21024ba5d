"""Rate limits per client address (issue #3): signup POST, confirmation
links (GET and POST: token guessing) and the admin login POST get a
friendly 429 page once over the limit. The client's address is REMOTE_ADDR
unless trusted proxies are configured; a dead Redis means no limits, not
refusing everyone.

The suite runs with RATELIMIT_ENABLE off (leerlab/settings_test.py); these
tests switch it on. With REDIS_URL set they count in the real Redis."""

import html

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django.urls import reverse
from django.utils import translation

from leerlab.security import client_ip, ratelimit_key
from registrations.models import Registration
from tests.factories import RegistrationFactory, UserFactory

CLIENT_A = "198.51.100.7"
CLIENT_B = "203.0.113.9"


@pytest.fixture
def ratelimits(settings):
    settings.RATELIMIT_ENABLE = True
    cache.clear()
    yield settings
    cache.clear()


def text(response) -> str:
    return html.unescape(response.content.decode())


def signup_data(**overrides) -> dict:
    data = {
        "municipality": "GM0392",  # Haarlem
        "contact_name": "Jan de Vries",
        "contact_email": "j.devries@haarlem.nl",
        "case_title": "Wijkaanpak Schalkwijk",
        "case_description": "Wij willen de wijk Schalkwijk aardgasvrij maken.",
        "privacy_consent": "on",
    }
    data.update(overrides)
    return data


SIGNUP = "/leerlabs/verhaal-warmtetransitie/aanmelden/"


def confirm_url(token: str, prefix: str = "") -> str:
    return f"{prefix}/aanmelding/bevestig/{token}/"


def assert_friendly_429(response, *, language="nl"):
    assert response.status_code == 429
    body = text(response)
    assert f'<html lang="{language}">' in body
    assert "Content-Security-Policy" in response.headers
    if language == "nl":
        assert "te veel pogingen" in body
        assert "Wacht ongeveer tien minuten" in body


# --- signup ------------------------------------------------------------------


def test_signup_posts_over_the_limit_get_the_friendly_429_page(client, lab, ratelimits):
    """Issue #3: a bot posting signups from one address is stopped."""
    ratelimits.LEERLAB_RATELIMIT_SIGNUP = "3/10m"
    statuses = [
        client.post(SIGNUP, signup_data(case_title=f"Case {n}"), REMOTE_ADDR=CLIENT_A).status_code
        for n in range(3)
    ]
    assert 429 not in statuses

    response = client.post(SIGNUP, signup_data(case_title="Case 4"), REMOTE_ADDR=CLIENT_A)

    assert_friendly_429(response)
    # The form is still there to read, and another address is not affected.
    assert client.get(SIGNUP, REMOTE_ADDR=CLIENT_A).status_code == 200
    assert client.post(SIGNUP, signup_data(), REMOTE_ADDR=CLIENT_B).status_code != 429


def test_signup_limit_stops_the_signup_before_anything_is_stored(client, lab, ratelimits):
    ratelimits.LEERLAB_RATELIMIT_SIGNUP = "1/10m"
    client.post(SIGNUP, signup_data(), REMOTE_ADDR=CLIENT_A)
    assert Registration.objects.count() == 1

    response = client.post(SIGNUP, signup_data(municipality="GM0363"), REMOTE_ADDR=CLIENT_A)

    assert response.status_code == 429
    assert Registration.objects.count() == 1


def test_the_429_page_follows_the_language_of_the_url(client, lab, ratelimits):
    ratelimits.LEERLAB_RATELIMIT_SIGNUP = "1/10m"
    url = "/en" + SIGNUP
    client.post(url, signup_data(), REMOTE_ADDR=CLIENT_A)
    try:
        response = client.post(url, signup_data(), REMOTE_ADDR=CLIENT_A)
    finally:
        translation.activate("nl")
    assert_friendly_429(response, language="en")


# --- confirmation links ----------------------------------------------------------


def test_guessing_confirmation_tokens_is_limited_for_get_and_post_together(client, cohort, ratelimits):
    """Issue #3: token guessing. GET and POST count in the same bucket."""
    ratelimits.LEERLAB_RATELIMIT_CONFIRM = "4/10m"
    for n in range(2):
        assert client.get(confirm_url(f"geraden-{n}"), REMOTE_ADDR=CLIENT_A).status_code == 404
        assert client.post(confirm_url(f"geraden-post-{n}"), REMOTE_ADDR=CLIENT_A).status_code == 404

    registration = RegistrationFactory(cohort=cohort)
    # Over the limit even a right token waits: the guesser learns nothing.
    assert_friendly_429(client.get(confirm_url(registration.token), REMOTE_ADDR=CLIENT_A))
    assert client.post(confirm_url(registration.token), REMOTE_ADDR=CLIENT_A).status_code == 429
    registration.refresh_from_db()
    assert registration.confirmed_at is None

    # The real officer, elsewhere, confirms as usual.
    assert client.post(confirm_url(registration.token), REMOTE_ADDR=CLIENT_B).status_code == 200
    registration.refresh_from_db()
    assert registration.confirmed_at is not None


def test_normal_use_of_a_confirmation_link_stays_under_the_default_limit(client, cohort, ratelimits):
    registration = RegistrationFactory(cohort=cohort)
    for _ in range(3):
        assert client.get(confirm_url(registration.token), REMOTE_ADDR=CLIENT_A).status_code == 200
    assert client.post(confirm_url(registration.token), REMOTE_ADDR=CLIENT_A).status_code == 200
    assert client.post(confirm_url(registration.token), REMOTE_ADDR=CLIENT_A).status_code == 200


# --- admin login -------------------------------------------------------------------


def test_admin_login_posts_are_limited_per_address(client, db, ratelimits):
    """Issue #3: password guessing over many usernames from one address."""
    ratelimits.LEERLAB_RATELIMIT_LOGIN = "3/10m"
    login = reverse("admin:login")
    for n in range(3):
        response = client.post(login, {"username": f"gok{n}", "password": "fout"}, REMOTE_ADDR=CLIENT_A)
        assert response.status_code == 200  # the form with its error

    assert_friendly_429(client.post(login, {"username": "gok", "password": "fout"}, REMOTE_ADDR=CLIENT_A))
    assert client.get(login, REMOTE_ADDR=CLIENT_A).status_code == 200


def test_a_blocked_address_cannot_log_in_even_with_the_right_password(client, db, ratelimits):
    ratelimits.LEERLAB_RATELIMIT_LOGIN = "1/10m"
    user = UserFactory(superuser=True)
    login = reverse("admin:login")
    client.post(login, {"username": user.username, "password": "fout"}, REMOTE_ADDR=CLIENT_A)

    response = client.post(
        login, {"username": user.username, "password": "een-lang-testwachtwoord"}, REMOTE_ADDR=CLIENT_A
    )

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


# --- which client ---------------------------------------------------------------------


def _request(remote="10.0.0.1", forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        # No proxies trusted: the header is whatever the client wants it to be.
        (0, "198.51.100.7", "1.2.3.4", "198.51.100.7"),
        # One proxy: it appended the address it saw; the rest is the client's.
        (1, "10.0.0.1", "1.2.3.4, 198.51.100.7", "198.51.100.7"),
        (1, "10.0.0.1", "198.51.100.7", "198.51.100.7"),
        # Two proxies: the outer one's view is second from the right.
        (2, "10.0.0.1", "1.2.3.4, 198.51.100.7, 10.0.0.2", "198.51.100.7"),
        # Fewer entries than proxies: the leftmost is the first proxy's view.
        (2, "10.0.0.1", "198.51.100.7", "198.51.100.7"),
        # Garbage or nothing falls back to the connection's address.
        (1, "10.0.0.1", "not-an-address", "10.0.0.1"),
        (1, "10.0.0.1", "", "10.0.0.1"),
        (1, "10.0.0.1", None, "10.0.0.1"),
        (1, "10.0.0.1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip_trusts_only_the_configured_number_of_proxies(
    settings, proxies, remote, forwarded, expected
):
    settings.LEERLAB_TRUSTED_PROXIES = proxies
    assert client_ip(_request(remote, forwarded)) == expected


def test_ratelimit_key_groups_ipv6_per_64_and_survives_a_missing_address(settings):
    settings.LEERLAB_TRUSTED_PROXIES = 0
    one = ratelimit_key("g", _request("2001:db8:1:2::1"))
    other = ratelimit_key("g", _request("2001:db8:1:2:ffff::9"))
    assert one == other == "2001:db8:1:2::"
    assert ratelimit_key("g", _request("2001:db8:1:3::1")) != one
    assert ratelimit_key("g", _request("")) == "unknown"


def test_a_forged_forwarded_header_does_not_escape_the_limit(client, lab, ratelimits):
    """Issue #3: without trusted proxies X-Forwarded-For is ignored; with one
    trusted proxy only its own (rightmost) entry counts."""
    ratelimits.LEERLAB_RATELIMIT_SIGNUP = "1/10m"
    ratelimits.LEERLAB_TRUSTED_PROXIES = 0
    client.post(SIGNUP, signup_data(), REMOTE_ADDR=CLIENT_A, HTTP_X_FORWARDED_FOR="1.1.1.1")
    forged = client.post(SIGNUP, signup_data(), REMOTE_ADDR=CLIENT_A, HTTP_X_FORWARDED_FOR="2.2.2.2")
    assert forged.status_code == 429

    ratelimits.LEERLAB_TRUSTED_PROXIES = 1
    proxy = "10.0.0.1"
    client.post(SIGNUP, signup_data(), REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"1.1.1.1, {CLIENT_B}")
    forged = client.post(
        SIGNUP, signup_data(), REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"3.3.3.3, {CLIENT_B}"
    )
    assert forged.status_code == 429
    # Behind the same proxy, another real client has its own counter.
    other = client.post(SIGNUP, signup_data(), REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="3.3.3.3, 192.0.2.44")
    assert other.status_code != 429


# --- when the cache is down --------------------------------------------------------


DEAD_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        # Nothing listens on port 1: every cache call fails at once.
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2, "IGNORE_EXCEPTIONS": True},
    }
}


def test_a_dead_redis_lets_requests_through(client, lab, settings):
    """Issue #3: rate limits degrade to none when Redis is down (the same
    django-redis configuration as production, a real refused connection)
    rather than refusing every officer."""
    settings.RATELIMIT_ENABLE = True
    settings.CACHES = DEAD_REDIS
    settings.LEERLAB_RATELIMIT_SIGNUP = "1/10m"
    settings.LEERLAB_RATELIMIT_CONFIRM = "1/10m"

    signups = [client.post(SIGNUP, signup_data(), REMOTE_ADDR=CLIENT_A).status_code for _ in range(3)]
    confirms = [client.get(confirm_url("geraden"), REMOTE_ADDR=CLIENT_A).status_code for _ in range(3)]

    assert signups == [302, 302, 302]
    assert confirms == [404, 404, 404]


def test_without_fail_open_a_dead_redis_would_block_everyone(client, lab, settings):
    """The counter-proof for the test above: RATELIMIT_FAIL_OPEN is what
    keeps the portal usable."""
    settings.RATELIMIT_ENABLE = True
    settings.CACHES = DEAD_REDIS
    settings.RATELIMIT_FAIL_OPEN = False

    assert client.post(SIGNUP, signup_data(), REMOTE_ADDR=CLIENT_A).status_code == 429
