from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from leerlab.models import HistoryEvent
from municipalities.models import Municipality

from .validators import no_control_characters, no_control_characters_multiline, phone_number

CONTACT_NAME_MAX = 100
CONTACT_ROLE_MAX = 100
CONTACT_PHONE_MAX = 30
CASE_TITLE_MAX = 150
CASE_DESCRIPTION_MAX = 4000
LEARNING_NEEDS_MAX = 2000


class RegistrationStatus(models.TextChoices):
    PENDING = "pending", _("wacht op bevestiging")
    CONFIRMED = "confirmed", _("bevestigd (heeft een plaats)")
    WAITLISTED = "waitlisted", _("op de wachtlijst")
    WITHDRAWN = "withdrawn", _("afgemeld")


LIVE_STATUSES = (RegistrationStatus.CONFIRMED, RegistrationStatus.WAITLISTED)


class Registration(models.Model):
    cohort = models.ForeignKey(
        "leerlab.Cohort", on_delete=models.PROTECT, related_name="registrations", verbose_name=_("cohort")
    )
    municipality = models.ForeignKey(
        Municipality, on_delete=models.PROTECT, related_name="registrations", verbose_name=_("gemeente")
    )
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=RegistrationStatus.choices,
        default=RegistrationStatus.PENDING,
        db_index=True,
    )

    contact_name = models.CharField(
        _("naam contactpersoon"), max_length=CONTACT_NAME_MAX, validators=[no_control_characters]
    )
    contact_email = models.EmailField(_("e-mailadres"), db_index=True, validators=[no_control_characters])
    contact_role = models.CharField(
        _("functie"), max_length=CONTACT_ROLE_MAX, blank=True, validators=[no_control_characters]
    )
    contact_phone = models.CharField(
        _("telefoonnummer"), max_length=CONTACT_PHONE_MAX, blank=True, validators=[phone_number]
    )

    case_title = models.CharField(
        _("titel van de case"), max_length=CASE_TITLE_MAX, validators=[no_control_characters]
    )
    case_description = models.TextField(
        _("beschrijving van de case"),
        max_length=CASE_DESCRIPTION_MAX,
        validators=[no_control_characters_multiline, MaxLengthValidator(CASE_DESCRIPTION_MAX)],
    )
    learning_needs = models.TextField(
        _("leervragen"),
        max_length=LEARNING_NEEDS_MAX,
        blank=True,
        validators=[no_control_characters_multiline, MaxLengthValidator(LEARNING_NEEDS_MAX)],
    )

    privacy_consent_at = models.DateTimeField(_("toestemming privacyverklaring op"))
    privacy_version = models.CharField(_("versie privacyverklaring"), max_length=20)
    language = models.CharField(_("taal"), max_length=8, default="nl")
    # The contact's address is at none of the municipality's known domains:
    # shown to advisors, never a reason to refuse.
    email_domain_flagged = models.BooleanField(_("afwijkend e-maildomein"), default=False)

    # Only a hash of the confirmation token is stored; the token itself
    # exists in the confirmation email alone.
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_expires_at = models.DateTimeField(_("link geldig tot"))
    token_used_at = models.DateTimeField(_("link gebruikt op"), null=True, blank=True)

    created_at = models.DateTimeField(_("aangemeld op"), auto_now_add=True)
    confirmed_at = models.DateTimeField(_("bevestigd op"), null=True, blank=True)
    withdrawn_at = models.DateTimeField(_("afgemeld op"), null=True, blank=True)
    # Set when the "van start" email for this registration was queued.
    start_notified_at = models.DateTimeField(_("startbericht verstuurd op"), null=True, blank=True)
    # Set when the personal data was erased (AVG); the row stays for counts.
    anonymised_at = models.DateTimeField(_("geanonimiseerd op"), null=True, blank=True)

    class Meta:
        verbose_name = _("aanmelding")
        verbose_name_plural = _("aanmeldingen")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["cohort", "municipality"],
                condition=Q(status__in=["confirmed", "waitlisted"]),
                name="one_live_registration_per_municipality",
            ),
        ]
        indexes = [
            models.Index(fields=["cohort", "status"], name="registration_cohort_status"),
        ]

    def __str__(self) -> str:
        return f"{self.municipality} – {self.cohort}"


class RegistrationEventAction(models.TextChoices):
    SUBMITTED = "submitted", _("aangemeld")
    CONFIRMED = "confirmed", _("bevestigd")
    WAITLISTED = "waitlisted", _("op de wachtlijst gezet")
    PROMOTED = "promoted", _("van de wachtlijst naar een plaats")
    CASE_CHANGED = "case_changed", _("case gewijzigd")
    HANDOVER_REQUESTED = "handover_requested", _("overdracht aangevraagd")
    HANDED_OVER = "handed_over", _("overgedragen aan een collega")
    WITHDRAWN = "withdrawn", _("afgemeld")
    ANONYMISED = "anonymised", _("geanonimiseerd")
    # Issue #6: the cohort journey.
    MOVED_TO_NEXT_COHORT = "moved_to_next_cohort", _("met de wachtlijst naar het volgende cohort")
    COHORT_CANCELLED = "cohort_cancelled", _("cohort geannuleerd")
    COHORT_COMPLETED = "cohort_completed", _("cohort afgerond")


class RegistrationEvent(HistoryEvent):
    """One change of a registration (issue #5)."""

    registration = models.ForeignKey(
        Registration, on_delete=models.CASCADE, related_name="events", verbose_name=_("aanmelding")
    )
    action = models.CharField(_("wat"), max_length=30, choices=RegistrationEventAction.choices)

    class Meta(HistoryEvent.Meta):
        verbose_name = _("wijziging van een aanmelding")
        verbose_name_plural = _("wijzigingen van aanmeldingen")
