"""Give an advisor two-factor login: an authenticator-app device (TOTP) and
ten printed backup codes (issue #3).

    python manage.py add_totp_device <username> [--replace]

Prints the otpauth:// URL (paste it into the authenticator app, or open the
device in the admin as superuser to scan its QR code) and the backup codes,
each usable once. Run it for yourself as functional administrator as well:
with LEERLAB_ADMIN_2FA on nobody gets into the admin without a device.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.translation import gettext as _
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

BACKUP_CODES = 10


class Command(BaseCommand):
    help = _(
        "Maakt voor een adviseur een authenticator-app (TOTP) en tien reservecodes aan "
        "en toont de otpauth://-link en de codes."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help=_("Gebruikersnaam van de adviseur."))
        parser.add_argument(
            "--replace",
            action="store_true",
            help=_("Verwijder de bestaande apparaten en reservecodes van deze gebruiker eerst."),
        )
        parser.add_argument(
            "--name",
            default=_("Authenticator-app"),
            help=_("Naam van het apparaat, zoals de beheerder het ziet."),
        )

    def handle(self, *args, username, replace, name, **options):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist as exc:
            raise CommandError(_("Gebruiker %(username)s bestaat niet.") % {"username": username}) from exc
        if not user.is_staff:
            raise CommandError(
                _("%(username)s heeft geen toegang tot het beheer (geen medewerkersstatus).")
                % {"username": username}
            )

        with transaction.atomic():
            existing = TOTPDevice.objects.filter(user=user).exists() or (
                StaticDevice.objects.filter(user=user).exists()
            )
            if existing and not replace:
                raise CommandError(
                    _(
                        "%(username)s heeft al tweestapsverificatie. Gebruik --replace om de oude "
                        "app en reservecodes ongeldig te maken en nieuwe te maken."
                    )
                    % {"username": username}
                )
            TOTPDevice.objects.filter(user=user).delete()
            StaticDevice.objects.filter(user=user).delete()

            totp = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
            static = StaticDevice.objects.create(user=user, name=_("Reservecodes"), confirmed=True)
            codes = [StaticToken.random_token() for _i in range(BACKUP_CODES)]
            StaticToken.objects.bulk_create([StaticToken(device=static, token=code) for code in codes])

        self.stdout.write(_("Tweestapsverificatie ingesteld voor %(username)s.") % {"username": username})
        self.stdout.write("")
        self.stdout.write(
            _("1. Voeg deze link toe in de authenticator-app (of scan de QR-code in het beheer):")
        )
        self.stdout.write(f"   {totp.config_url}")
        self.stdout.write("")
        self.stdout.write(_("2. Reservecodes, elk één keer te gebruiken; bewaar ze op papier:"))
        for code in codes:
            self.stdout.write(f"   {code}")
        self.stdout.write("")
        self.stdout.write(
            _("Geef link en codes alleen persoonlijk door; ze geven samen met het wachtwoord toegang.")
        )
