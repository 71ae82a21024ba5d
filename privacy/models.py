"""What the AVG part of the portal stores (issue #5): that a registration
was anonymised, when and why. No personal data: the record exists so
advisors can see that it happened, not what it was."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from registrations.models import Registration


class AnonymisationReason(models.TextChoices):
    REQUEST = "request", _("op verzoek van de contactpersoon")
    RETENTION = "retention", _("bewaartermijn verlopen")


class Anonymisation(models.Model):
    registration = models.OneToOneField(
        Registration,
        on_delete=models.CASCADE,
        related_name="anonymisation",
        verbose_name=_("aanmelding"),
    )
    reason = models.CharField(_("reden"), max_length=20, choices=AnonymisationReason.choices)
    created_at = models.DateTimeField(_("geanonimiseerd op"), auto_now_add=True)

    class Meta:
        verbose_name = _("anonimisering")
        verbose_name_plural = _("anonimiseringen")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.registration} ({self.get_reason_display()})"


class RetentionSchedule(Registration):
    """The registrations seen from the retention side: a read-only admin
    list of what will be anonymised when (privacy/admin.py)."""

    class Meta:
        proxy = True
        verbose_name = _("bewaartermijn")
        verbose_name_plural = _("bewaartermijnen")
