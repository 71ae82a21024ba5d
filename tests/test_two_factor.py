"""Two-factor login for the advisors' admin and the login lock-out
(issue #3).

With LEERLAB_ADMIN_2FA on, the admin needs a password and a code from an
authenticator app (TOTP) or a backup code; a session that only passed the
password is not let in. The switch is read per request (the rest of the
suite runs with it off). Five failed logins, wrong codes included, lock
that username out from that address (django-axes)."""

import io
import re

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import UserFactory

PASSWORD = "een-lang-testwachtwoord"
LOGIN = reverse("admin:login")
INDEX = reverse("admin:index")
COHORTS = reverse("admin:leerlab_cohort_changelist")
BACKUP_CODE = "abcd2345"


@pytest.fixture
def two_factor(settings):
    settings.LEERLAB_ADMIN_2FA = True
    return settings


@pytest.fixture
def advisor(db):
    user = UserFactory(staff=True, username="adviseur-2fa")
    user.groups.add(Group.objects.get(name="Servicepunt-adviseurs"))
    return user


@pytest.fixture
def totp_device(advisor) -> TOTPDevice:
    return TOTPDevice.objects.create(user=advisor, name="app", confirmed=True)


@pytest.fixture
def backup_device(advisor) -> StaticDevice:
    device = StaticDevice.objects.create(user=advisor, name="reserve", confirmed=True)
    device.token_set.create(token=BACKUP_CODE)
    return device


def current_code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def login(client, user, code=None, **extra):
    data = {"username": user.get_username(), "password": PASSWORD, "next": INDEX}
    if code is not None:
        data["otp_token"] = code
    data.update(extra)
    return client.post(LOGIN, data)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


# --- the switch ---------------------------------------------------------------


def test_password_only_session_is_refused_when_2fa_is_on(client, advisor, two_factor):
    """Issue #3: a session that passed only the password does not get in."""
    client.force_login(advisor)

    response = client.get(COHORTS)

    assert response.status_code == 302
    assert response.url.startswith(LOGIN)


def test_2fa_is_decided_per_request(client, advisor, settings):
    client.force_login(advisor)
    settings.LEERLAB_ADMIN_2FA = False
    assert client.get(COHORTS).status_code == 200
    settings.LEERLAB_ADMIN_2FA = True
    assert client.get(COHORTS).status_code == 302


def test_login_page_asks_for_the_code_only_when_2fa_is_on(client, db, settings):
    settings.LEERLAB_ADMIN_2FA = False
    assert 'name="otp_token"' not in client.get(LOGIN).content.decode()
    settings.LEERLAB_ADMIN_2FA = True
    body = client.get(LOGIN).content.decode()
    assert 'name="otp_token"' in body
    assert "Verificatiecode" in body
    assert 'autocomplete="one-time-code"' in body


# --- logging in -----------------------------------------------------------------


def test_password_and_app_code_log_in(client, advisor, totp_device, two_factor):
    response = login(client, advisor, current_code(totp_device))

    assert response.status_code == 302
    assert response.url == INDEX
    assert logged_in(client)
    assert client.get(COHORTS).status_code == 200


def test_a_code_with_spaces_as_apps_show_it_is_accepted(client, advisor, totp_device, two_factor):
    code = current_code(totp_device)
    response = login(client, advisor, f" {code[:3]} {code[3:]} ")
    assert response.status_code == 302
    assert client.get(COHORTS).status_code == 200


def test_password_without_code_is_refused(client, advisor, totp_device, two_factor):
    response = login(client, advisor)

    assert response.status_code == 200
    assert "Vul de verificatiecode" in response.content.decode()
    assert not logged_in(client)


def test_wrong_code_is_refused(client, advisor, totp_device, two_factor):
    wrong = f"{(int(current_code(totp_device)) + 1) % 1_000_000:06d}"

    response = login(client, advisor, wrong)

    assert response.status_code == 200
    assert "De verificatiecode klopt niet" in response.content.decode()
    assert not logged_in(client)


def test_wrong_password_with_right_code_is_refused(client, advisor, totp_device, two_factor):
    response = login(client, advisor, current_code(totp_device), password="fout-wachtwoord")
    assert response.status_code == 200
    assert not logged_in(client)


def test_backup_code_logs_in_once(client, advisor, totp_device, backup_device, two_factor):
    response = login(client, advisor, BACKUP_CODE.upper())
    assert response.status_code == 302
    assert client.get(COHORTS).status_code == 200
    assert not StaticToken.objects.filter(token=BACKUP_CODE).exists()

    client.logout()
    again = login(client, advisor, BACKUP_CODE)
    assert again.status_code == 200
    assert not logged_in(client)


def test_an_account_without_a_device_cannot_log_in(client, advisor, two_factor):
    response = login(client, advisor, "123456")

    assert response.status_code == 200
    assert "geen tweestapsverificatie ingesteld" in response.content.decode()
    assert not logged_in(client)


def test_another_users_device_and_code_do_not_count(client, advisor, two_factor):
    """Naming someone else's device explicitly (django-otp's otp_device
    field) must not verify this user."""
    other = UserFactory(staff=True, username="iemand-anders")
    their_device = TOTPDevice.objects.create(user=other, name="app", confirmed=True)

    response = login(client, advisor, current_code(their_device), otp_device=their_device.persistent_id)

    assert response.status_code == 200
    assert not logged_in(client)


def test_unconfirmed_device_does_not_count(client, advisor, two_factor):
    device = TOTPDevice.objects.create(user=advisor, name="app", confirmed=False)
    response = login(client, advisor, current_code(device))
    assert response.status_code == 200
    assert not logged_in(client)


def test_login_with_2fa_off_needs_no_code(client, advisor, settings):
    settings.LEERLAB_ADMIN_2FA = False
    response = login(client, advisor)
    assert response.status_code == 302
    assert client.get(COHORTS).status_code == 200


# --- lock-out (django-axes) -------------------------------------------------------------


@pytest.fixture
def axes(settings):
    settings.AXES_ENABLED = True
    return settings


def test_five_wrong_passwords_lock_the_account_out_from_that_address(client, advisor, axes):
    """Issue #3: after AXES_FAILURE_LIMIT failures the right password does
    not help for the cool-off time, and the page says so in Dutch without
    echoing the username."""
    for _ in range(4):
        response = client.post(LOGIN, {"username": advisor.username, "password": "fout"})
        assert response.status_code == 200
    locked = client.post(LOGIN, {"username": advisor.username, "password": "fout"})
    assert locked.status_code == 429
    body = locked.content.decode()
    assert "Inloggen tijdelijk geblokkeerd" in body
    assert "30 minuten" in body
    assert advisor.username not in body
    assert "Content-Security-Policy" in locked.headers

    right = client.post(LOGIN, {"username": advisor.username, "password": PASSWORD})
    assert right.status_code == 429
    assert not logged_in(client)


def test_lockout_is_per_username_and_address(client, advisor, axes):
    """Guessing at an advisor's username from elsewhere does not lock the
    advisor out."""
    for _ in range(5):
        client.post(LOGIN, {"username": advisor.username, "password": "fout"}, REMOTE_ADDR="203.0.113.66")

    response = client.post(
        LOGIN, {"username": advisor.username, "password": PASSWORD}, REMOTE_ADDR="198.51.100.1"
    )

    assert response.status_code == 302
    assert logged_in(client)


def test_wrong_codes_count_towards_the_lockout(client, advisor, totp_device, axes, two_factor):
    """Issue #3: with the password known, guessing the code is stopped by
    the same lock-out."""
    right = current_code(totp_device)
    wrong = f"{(int(right) + 7) % 1_000_000:06d}"
    for _ in range(4):
        assert login(client, advisor, wrong).status_code == 200
    assert login(client, advisor, wrong).status_code == 429

    assert login(client, advisor, right).status_code == 429
    assert not logged_in(client)
    attempt = AccessAttempt.objects.get(username=advisor.username)
    assert attempt.failures_since_start >= 5


def test_a_successful_login_resets_the_failures(client, advisor, totp_device, axes, two_factor):
    for _ in range(3):
        client.post(LOGIN, {"username": advisor.username, "password": "fout"})
    assert login(client, advisor, current_code(totp_device)).status_code == 302
    assert not AccessAttempt.objects.filter(username=advisor.username).exists()


def test_rate_limit_lockout_and_2fa_work_together(client, advisor, totp_device, axes, two_factor):
    """All three on, as in production: a normal login goes through."""
    axes.RATELIMIT_ENABLE = True
    from django.core.cache import cache

    cache.clear()
    try:
        client.post(LOGIN, {"username": advisor.username, "password": "fout", "otp_token": "000000"})
        response = login(client, advisor, current_code(totp_device))
        assert response.status_code == 302
        assert client.get(COHORTS).status_code == 200
    finally:
        cache.clear()


# --- who manages devices -----------------------------------------------------------------


def test_advisors_cannot_manage_devices_or_lockouts(db):
    perms = Permission.objects.filter(group__name="Servicepunt-adviseurs")
    assert not perms.filter(content_type__app_label__in=["otp_totp", "otp_static", "axes"]).exists()


def test_superuser_sees_devices_in_the_admin(client, db, two_factor):
    admin_user = UserFactory(superuser=True, username="beheerder")
    device = TOTPDevice.objects.create(user=admin_user, name="app", confirmed=True)
    assert login(client, admin_user, current_code(device)).status_code == 302

    assert client.get(reverse("admin:otp_totp_totpdevice_changelist")).status_code == 200
    qr = client.get(reverse("admin:otp_totp_totpdevice_qrcode", kwargs={"pk": device.pk}))
    assert qr.status_code == 200
    assert qr["Content-Type"] == "image/svg+xml"


# --- add_totp_device ---------------------------------------------------------------------


def _add_device(*args) -> str:
    out = io.StringIO()
    call_command("add_totp_device", *args, stdout=out)
    return out.getvalue()


def test_add_totp_device_prints_the_url_and_ten_codes_that_work(client, advisor, two_factor):
    output = _add_device(advisor.username)

    device = TOTPDevice.objects.get(user=advisor)
    assert device.confirmed
    assert device.config_url in output
    assert "otpauth://totp/" in output
    codes = re.findall(r"^   ([a-z2-7]{8})$", output, flags=re.MULTILINE)
    assert len(codes) == 10
    assert set(codes) == set(StaticToken.objects.filter(device__user=advisor).values_list("token", flat=True))

    assert login(client, advisor, codes[0]).status_code == 302
    client.logout()
    assert login(client, advisor, current_code(device)).status_code == 302


def test_add_totp_device_refuses_to_replace_silently(advisor, totp_device):
    with pytest.raises(CommandError, match="--replace"):
        _add_device(advisor.username)
    assert TOTPDevice.objects.get(user=advisor) == totp_device

    _add_device(advisor.username, "--replace")
    assert TOTPDevice.objects.filter(user=advisor).count() == 1
    assert not TOTPDevice.objects.filter(pk=totp_device.pk).exists()
    assert StaticDevice.objects.filter(user=advisor).count() == 1


@pytest.mark.parametrize("username", ["bestaat-niet", "geen-medewerker"])
def test_add_totp_device_needs_an_existing_staff_user(db, username):
    UserFactory(username="geen-medewerker")
    with pytest.raises(CommandError):
        _add_device(username)
    assert not TOTPDevice.objects.exists()


def test_local_advisor_command_points_to_add_totp_device_when_2fa_is_on(db, settings, tmp_path):
    settings.DEBUG = True
    out = io.StringIO()
    settings.LEERLAB_ADMIN_2FA = False
    call_command("ensure_local_advisor", "--password-file", str(tmp_path / "pw"), stdout=out)
    assert "add_totp_device" not in out.getvalue()

    settings.LEERLAB_ADMIN_2FA = True
    call_command("ensure_local_advisor", "--password-file", str(tmp_path / "pw"), stdout=out)
    assert "add_totp_device adviseur" in out.getvalue()
