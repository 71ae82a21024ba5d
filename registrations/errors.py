"""Domain errors of registrations, each with its user-facing text (Dutch
first, translated through gettext)."""

from django.utils.translation import gettext_lazy as _

from leerlab.errors import LeerLabError


class RegistrationError(LeerLabError):
    field: str | None = None


class MunicipalityNotParticipating(RegistrationError):
    field = "municipality"
    message = _("Kies een gemeente uit de lijst.")


class MunicipalityOutsideProvince(RegistrationError):
    field = "municipality"
    message = _(
        "De Leer Labs zijn alleen voor gemeenten in Noord-Holland. "
        "Deze gemeente ligt niet in Noord-Holland en kan zich daarom niet aanmelden."
    )


class MunicipalityInactive(RegistrationError):
    field = "municipality"
    message = _(
        "Deze gemeente bestaat niet meer (opgegaan in een andere gemeente). "
        "Kies de gemeente waarin zij is opgegaan."
    )


class AlreadyRegistered(RegistrationError):
    field = "municipality"
    message = _(
        "Deze gemeente is al aangemeld voor dit Leer Lab. "
        "Neem contact op met uw collega's of met het Servicepunt als u vragen hebt."
    )


class ConsentMissing(RegistrationError):
    field = "privacy_consent"
    message = _("Geef toestemming voor het verwerken van uw gegevens om u aan te melden.")


class SignupClosed(RegistrationError):
    message = _("Voor dit Leer Lab is aanmelden op dit moment niet mogelijk.")


class InvalidToken(RegistrationError):
    message = _(
        "Deze bevestigingslink is ongeldig. Controleer of u de volledige link uit de e-mail hebt gebruikt. "
        "Een aanmelding die niet op tijd is bevestigd, is verwijderd: meld u dan opnieuw aan."
    )


class TokenExpired(RegistrationError):
    message = _("Deze bevestigingslink is verlopen. Meld u opnieuw aan; u ontvangt dan een nieuwe link.")


class TokenUsed(RegistrationError):
    message = _("Deze bevestigingslink is al gebruikt.")


# Self-service (issue #5).
class AlreadyWithdrawn(RegistrationError):
    message = _("Deze aanmelding is al afgemeld.")


class RegistrationClosedForChanges(RegistrationError):
    message = _("Deze aanmelding kan niet meer worden gewijzigd.")


class HandoverToSelf(RegistrationError):
    field = "contact_email"
    message = _("Vul het e-mailadres van uw collega in, niet uw eigen e-mailadres.")


class HandoverLinkInvalid(RegistrationError):
    message = _(
        "Deze link om een aanmelding over te nemen is ongeldig, verlopen of al gebruikt. "
        "Vraag uw collega de aanmelding opnieuw aan u over te dragen."
    )
