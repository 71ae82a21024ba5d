from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _


class LeerLab(models.Model):
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    title = models.CharField(_("titel"), max_length=200)
    summary = models.TextField(_("samenvatting"))
    description = models.TextField(_("beschrijving"), blank=True)
    duration = models.CharField(_("duur"), max_length=100, blank=True)
    # The public pages and emails in English (under /en/) show these when
    # filled in, else the Dutch text (issue #4); see the local_* properties.
    title_en = models.CharField(_("titel (Engels)"), max_length=200, blank=True)
    summary_en = models.TextField(_("samenvatting (Engels)"), blank=True)
    description_en = models.TextField(_("beschrijving (Engels)"), blank=True)
    duration_en = models.CharField(_("duur (Engels)"), max_length=100, blank=True)
    min_municipalities = models.PositiveSmallIntegerField(
        _("minimum aantal gemeenten"), default=3, validators=[MinValueValidator(1)]
    )
    max_municipalities = models.PositiveSmallIntegerField(
        _("maximum aantal gemeenten"), default=5, validators=[MinValueValidator(1)]
    )
    position = models.PositiveSmallIntegerField(_("volgorde"), default=0)

    class Meta:
        verbose_name = _("Leer Lab")
        verbose_name_plural = _("Leer Labs")
        ordering = ["position", "title"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_municipalities__gte=models.F("min_municipalities")),
                name="leerlab_max_gte_min",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    # Texts in the active language: the English field under /en/ (and in
    # an email rendered in English) when an advisor filled it in, else the
    # Dutch original. Slugs stay Dutch in both languages (DESIGN.md).
    def _localized(self, field: str) -> str:
        language = (get_language() or "").split("-")[0]
        if language and language != "nl":
            translated = getattr(self, f"{field}_{language}", "")
            if translated:
                return translated
        return getattr(self, field)

    @property
    def local_title(self) -> str:
        return self._localized("title")

    @property
    def local_summary(self) -> str:
        return self._localized("summary")

    @property
    def local_description(self) -> str:
        return self._localized("description")

    @property
    def local_duration(self) -> str:
        return self._localized("duration")

    def clean(self):
        from django.core.exceptions import ValidationError

        if (
            self.min_municipalities is not None
            and self.max_municipalities is not None
            and self.max_municipalities < self.min_municipalities
        ):
            raise ValidationError(
                {"max_municipalities": _("Het maximum mag niet kleiner zijn dan het minimum.")}
            )


class CohortStatus(models.TextChoices):
    OPEN = "open", _("open voor aanmelding")
    STARTED = "started", _("gestart")
    CLOSED = "closed", _("aanmelding gesloten")
    COMPLETED = "completed", _("afgerond")
    CANCELLED = "cancelled", _("geannuleerd")


# Cohorts in these states still take signups (as seats or on the waitlist).
CURRENT_STATUSES = (CohortStatus.OPEN, CohortStatus.STARTED, CohortStatus.CLOSED)


class Cohort(models.Model):
    """One run of a lab. Seats are counted from confirmed registrations
    inside a locked transaction, never kept in a counter."""

    lab = models.ForeignKey(
        LeerLab, on_delete=models.PROTECT, related_name="cohorts", verbose_name=_("Leer Lab")
    )
    number = models.PositiveSmallIntegerField(_("nummer"), default=1)
    status = models.CharField(
        _("status"), max_length=20, choices=CohortStatus.choices, default=CohortStatus.OPEN, db_index=True
    )
    start_date = models.DateField(_("startdatum"), null=True, blank=True)
    started_at = models.DateTimeField(_("gestart op"), null=True, blank=True)
    closed_at = models.DateTimeField(_("aanmelding gesloten op"), null=True, blank=True)
    advisors = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="cohorts", verbose_name=_("adviseurs")
    )
    created_at = models.DateTimeField(_("aangemaakt op"), auto_now_add=True)

    class Meta:
        verbose_name = _("cohort")
        verbose_name_plural = _("cohorten")
        ordering = ["lab__position", "number"]
        constraints = [
            models.UniqueConstraint(fields=["lab", "number"], name="unique_cohort_number_per_lab"),
        ]

    def __str__(self) -> str:
        return f"{self.lab} #{self.number}"
