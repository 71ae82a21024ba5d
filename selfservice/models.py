"""Access without an account (issue #5): a single-use emailed link opens a
short session; a handover waits for the colleague's confirmation. Only
sha256 hashes of the tokens are stored."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from registrations.models import CONTACT_NAME_MAX, CONTACT_PHONE_MAX, CONTACT_ROLE_MAX, Registration


class AccessLink(models.Model):
    # The address the link was mailed to: the session it opens shows the
    # registrations of this address. Rows are purged once expired.
    email = models.EmailField(_("e-mailadres"))
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("aangemaakt op"), auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField(_("geldig tot"))
    used_at = models.DateTimeField(_("gebruikt op"), null=True, blank=True)

    class Meta:
        verbose_name = _("toegangslink")
        verbose_name_plural = _("toegangslinks")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} {self.pk}"


class HandoverRequest(models.Model):
    """A registration handed over to a colleague, waiting until the
    colleague confirms through the emailed link."""

    registration = models.ForeignKey(
        Registration, on_delete=models.CASCADE, related_name="handover_requests", verbose_name=_("aanmelding")
    )
    contact_name = models.CharField(_("naam nieuwe contactpersoon"), max_length=CONTACT_NAME_MAX)
    contact_email = models.EmailField(_("e-mailadres nieuwe contactpersoon"))
    contact_role = models.CharField(_("functie"), max_length=CONTACT_ROLE_MAX, blank=True)
    contact_phone = models.CharField(_("telefoonnummer"), max_length=CONTACT_PHONE_MAX, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("aangevraagd op"), auto_now_add=True)
    expires_at = models.DateTimeField(_("geldig tot"))
    confirmed_at = models.DateTimeField(_("bevestigd op"), null=True, blank=True)

    class Meta:
        verbose_name = _("overdracht")
        verbose_name_plural = _("overdrachten")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} {self.pk}"
