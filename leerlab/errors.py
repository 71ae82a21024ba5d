"""Domain errors of labs and cohorts, each with its user-facing text."""

from django.utils.translation import gettext_lazy as _


class LeerLabError(Exception):
    message = _("Er ging iets mis. Probeer het opnieuw.")

    def __init__(self, message=None):
        if message is not None:
            self.message = message
        super().__init__(str(self.message))


class CohortBusy(LeerLabError):
    message = _("Het is op dit moment erg druk. Probeer het over een minuut opnieuw.")


class IllegalTransition(LeerLabError):
    message = _("Deze statuswijziging is niet mogelijk in de huidige status van het cohort.")


class CohortFull(LeerLabError):
    message = _("Het cohort is vol. Verhoog eerst het maximum aantal gemeenten van het Leer Lab.")
