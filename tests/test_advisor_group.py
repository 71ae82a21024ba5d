"""The group "Servicepunt-adviseurs" and the local advisor account
(issue #2, point 8)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

GROUP = "Servicepunt-adviseurs"


def test_group_has_exactly_the_intended_permissions(db):
    group = Group.objects.get(name=GROUP)

    permissions = set(group.permissions.values_list("content_type__app_label", "codename"))

    assert permissions == {
        ("leerlab", "view_cohort"),
        ("leerlab", "change_cohort"),
        ("leerlab", "add_cohort"),
        ("leerlab", "view_leerlab"),
        ("leerlab", "change_leerlab"),
        ("leerlab", "view_cohortsession"),
        ("leerlab", "add_cohortsession"),
        ("leerlab", "change_cohortsession"),
        ("leerlab", "view_cohortmessage"),
        ("leerlab", "add_cohortmessage"),
        ("leerlab", "view_cohortevent"),
        ("registrations", "view_registration"),
        ("municipalities", "view_municipality"),
        ("municipalities", "change_municipality"),
        ("municipalities", "view_emaildomain"),
        ("municipalities", "add_emaildomain"),
        ("municipalities", "change_emaildomain"),
        ("municipalities", "delete_emaildomain"),
        ("outbox", "view_outboxmessage"),
    }


def test_group_grants_no_deletes_of_history_and_no_user_management(db):
    codenames = set(Group.objects.get(name=GROUP).permissions.values_list("codename", flat=True))

    assert (
        not {
            "delete_registration",
            "delete_cohort",
            "change_registration",
            "change_outboxmessage",
            "delete_cohortsession",
            "change_cohortmessage",
            "delete_cohortmessage",
            "change_cohortevent",
            "add_cohortevent",
        }
        & codenames
    )
    assert not {c for c in codenames if c.endswith(("_user", "_group", "_permission"))}


def _run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("ensure_local_advisor", *args, stdout=out)
    return out.getvalue()


def test_local_advisor_is_refused_without_debug(db, settings, tmp_path):
    settings.DEBUG = False
    password_file = tmp_path / "pw"

    with pytest.raises(CommandError, match="alleen bij DJANGO_DEBUG=1"):
        _run("--password-file", str(password_file))

    assert not password_file.exists()
    assert not get_user_model().objects.filter(username="adviseur").exists()


def test_local_advisor_is_created_in_the_group_and_kept_idempotent(db, settings, tmp_path):
    settings.DEBUG = True
    password_file = tmp_path / "pw"

    first = _run("--password-file", str(password_file))

    password = password_file.read_text().strip()
    assert len(password) >= 20
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    assert first.strip() == (
        f"Lokaal adviseursaccount: gebruiker adviseur, wachtwoord {password} — http://127.0.0.1:8000/admin/"
    )
    user = get_user_model().objects.get(username="adviseur")
    assert user.is_staff and user.is_active and not user.is_superuser
    assert user.check_password(password)
    assert list(user.groups.values_list("name", flat=True)) == [GROUP]

    second = _run("--password-file", str(password_file))

    assert second == first
    assert password_file.read_text().strip() == password
    assert get_user_model().objects.filter(username="adviseur").count() == 1
    user.refresh_from_db()
    assert user.check_password(password)
    assert user.groups.count() == 1


def test_local_advisor_is_repaired_when_changed_by_hand(db, settings, tmp_path):
    settings.DEBUG = True
    password_file = tmp_path / "pw"
    password_file.write_text("een-eerder-gekozen-wachtwoord\n")
    User = get_user_model()
    User.objects.create_user(
        username="adviseur", password="iets-anders-123", is_staff=False, is_superuser=True
    )

    _run("--password-file", str(password_file))

    user = User.objects.get(username="adviseur")
    assert user.check_password("een-eerder-gekozen-wachtwoord")
    assert user.is_staff and not user.is_superuser
    assert user.groups.filter(name=GROUP).exists()


def test_local_advisor_can_log_in_to_the_admin(db, settings, tmp_path, client):
    settings.DEBUG = True
    password_file = tmp_path / "pw"
    _run("--password-file", str(password_file))

    logged_in = client.login(username="adviseur", password=password_file.read_text().strip())

    assert logged_in
    assert client.get("/admin/leerlab/cohort/").status_code == 200
