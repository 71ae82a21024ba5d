from django.db import models
from django.utils.translation import gettext_lazy as _


class MunicipalityQuerySet(models.QuerySet):
    def participating(self, *, province: str):
        """Municipalities that may sign up: active and in the portal's province."""
        return self.filter(is_active=True, province=province)


class Municipality(models.Model):
    cbs_code = models.CharField(_("CBS-code"), max_length=6, unique=True)
    name = models.CharField(_("naam"), max_length=100)
    province = models.CharField(_("provincie"), max_length=50, db_index=True)
    is_active = models.BooleanField(_("actief"), default=True)
    website = models.URLField(_("website"), max_length=300, blank=True)
    merged_into = models.ForeignKey(
        "self",
        verbose_name=_("opgegaan in"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="merged_from",
    )
    merged_on = models.DateField(_("heringedeeld op"), null=True, blank=True)

    objects = MunicipalityQuerySet.as_manager()

    class Meta:
        verbose_name = _("gemeente")
        verbose_name_plural = _("gemeenten")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def email_domain_matches(self, email: str) -> bool:
        """True when the address is at one of this municipality's domains
        (or a subdomain of one). Uses prefetched domains when present."""
        domain = email.rpartition("@")[2].strip().lower()
        known = [d.domain for d in self.email_domains.all()]
        return any(domain == d or domain.endswith("." + d) for d in known)


class EmailDomain(models.Model):
    """A domain the municipality's officers mail from. Advisors edit these:
    shared service organisations and consultants use other domains, so a
    mismatch flags a registration instead of blocking it."""

    municipality = models.ForeignKey(
        Municipality, on_delete=models.CASCADE, related_name="email_domains", verbose_name=_("gemeente")
    )
    domain = models.CharField(_("domein"), max_length=253)

    class Meta:
        verbose_name = _("e-maildomein")
        verbose_name_plural = _("e-maildomeinen")
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(fields=["municipality", "domain"], name="unique_domain_per_municipality"),
        ]

    def __str__(self) -> str:
        return self.domain

    def clean(self):
        self.domain = self.domain.strip().lower().lstrip("@")
