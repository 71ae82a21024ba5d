"""Create or update the local advisor account for `make run`.

Only while debugging: a known account with a password in a file is fine on
a laptop and never acceptable anywhere else. The password is kept in
`.local-advisor` (gitignored) so it stays the same across runs.
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.translation import gettext as _

ADVISORS_GROUP = "Servicepunt-adviseurs"
USERNAME = "adviseur"
DEFAULT_PASSWORD_FILE = Path(settings.BASE_DIR) / ".local-advisor"


def _read_or_create_password(path: Path) -> str:
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        stored = None
    if stored:
        return stored
    password = secrets.token_urlsafe(18)
    # Readable by the owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    return password


class Command(BaseCommand):
    help = _("Maakt of werkt het lokale adviseursaccount bij (alleen bij DJANGO_DEBUG=1).")

    def add_arguments(self, parser):
        parser.add_argument(
            "--password-file",
            default=str(DEFAULT_PASSWORD_FILE),
            help=_("Bestand met het wachtwoord (standaard .local-advisor in de repository)."),
        )

    def handle(self, *args, password_file, **options):
        if not settings.DEBUG:
            raise CommandError(
                _("Dit commando maakt een lokaal testaccount en werkt alleen bij DJANGO_DEBUG=1.")
            )
        try:
            group = Group.objects.get(name=ADVISORS_GROUP)
        except Group.DoesNotExist as exc:
            raise CommandError(
                _("De groep %(group)s bestaat niet; voer eerst `python manage.py migrate` uit.")
                % {"group": ADVISORS_GROUP}
            ) from exc

        try:
            password = _read_or_create_password(Path(password_file))
        except OSError as exc:
            raise CommandError(
                _("Het wachtwoordbestand %(path)s kon niet worden gelezen of geschreven: %(error)s")
                % {"path": password_file, "error": exc.strerror or exc}
            ) from exc

        User = get_user_model()
        with transaction.atomic():
            user, _created = User.objects.get_or_create(
                **{User.USERNAME_FIELD: USERNAME},
                defaults={"first_name": "Lokale", "last_name": "adviseur", "email": "adviseur@localhost"},
            )
            user.is_staff = True
            user.is_active = True
            # A real advisor's rights, not more: the group decides.
            user.is_superuser = False
            if not user.check_password(password):
                user.set_password(password)
            user.save()
            user.groups.add(group)

        self.stdout.write(
            _("Lokaal adviseursaccount: gebruiker %(username)s, wachtwoord %(password)s — %(url)s")
            % {"username": USERNAME, "password": password, "url": f"{settings.SITE_URL}/admin/"}
        )
        if settings.LEERLAB_ADMIN_2FA:
            # Off by default while debugging; whoever turns it on needs a device.
            self.stdout.write(
                _(
                    "Tweestapsverificatie staat aan (LEERLAB_ADMIN_2FA): maak een authenticator-app "
                    "en reservecodes aan met `python manage.py add_totp_device %(username)s`."
                )
                % {"username": USERNAME}
            )
