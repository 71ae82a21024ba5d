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
    # Issue #6: when a closed cohort's waitlist reaches the minimum, open the
    # next cohort of this lab and move the waitlist into it.
    auto_next_cohort = models.BooleanField(
        _("automatisch een volgend cohort openen"),
        default=True,
        help_text=_(
            "Staan er op de wachtlijst van een gesloten cohort evenveel gemeenten als het minimum, "
            "dan opent het portaal een nieuw cohort en schuift de wachtlijst daarin door, op volgorde."
        ),
    )

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
    # Issue #6: once this day has passed with fewer than the minimum
    # confirmed, the lifecycle task cancels the cohort.
    go_no_go_date = models.DateField(
        _("go/no-go-datum"),
        null=True,
        blank=True,
        help_text=_(
            "Is het cohort na deze dag nog niet gestart (minder gemeenten dan het minimum), dan wordt "
            "het geannuleerd en krijgen de aangemelde gemeenten bericht met hun alternatieven."
        ),
    )
    started_at = models.DateTimeField(_("gestart op"), null=True, blank=True)
    closed_at = models.DateTimeField(_("aanmelding gesloten op"), null=True, blank=True)
    # Completed or cancelled: the moment the retention period counts from.
    ended_at = models.DateTimeField(_("beëindigd op"), null=True, blank=True)
    # The closed cohort whose waitlist this cohort was opened for (issue #6);
    # one-to-one, so the database allows exactly one next cohort per cohort.
    previous_cohort = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="next_cohort",
        verbose_name=_("vervolg op cohort"),
    )
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


class CohortEventAction(models.TextChoices):
    CREATED = "created", _("aangemaakt")
    STARTED = "started", _("gestart")
    CLOSED = "closed", _("aanmelding gesloten")
    REOPENED = "reopened", _("heropend voor aanmelding")
    COMPLETED = "completed", _("afgerond")
    CANCELLED = "cancelled", _("geannuleerd")
    NEXT_COHORT_OPENED = "next_cohort_opened", _("volgend cohort geopend voor de wachtlijst")
    OPENED_FROM_WAITLIST = "opened_from_waitlist", _("geopend met de wachtlijst van het vorige cohort")
    WAITLIST_MOVED = "waitlist_moved", _("wachtlijst doorgeschoven naar vrije plaatsen in een later cohort")
    CHANGED = "changed", _("gegevens gewijzigd")
    SESSION_PLANNED = "session_planned", _("bijeenkomst gepland")
    SESSION_CHANGED = "session_changed", _("bijeenkomst gewijzigd")
    SESSION_CANCELLED = "session_cancelled", _("bijeenkomst afgelast")
    MESSAGE_SENT = "message_sent", _("bericht aan het cohort verstuurd")
    EXPORTED = "exported", _("deelnemers geëxporteerd")


class HistoryEvent(models.Model):
    """One change: who, what, when. Written by the services only, inside the
    transaction that makes the change; `details` names what changed (field
    names, counts, statuses), never personal data. Subclasses add the
    object and the choices of `action`."""

    created_at = models.DateTimeField(_("tijdstip"), auto_now_add=True, db_index=True)
    # "officer (...)", an advisor's username or "system": no email addresses.
    actor = models.CharField(_("door"), max_length=150)
    action = models.CharField(_("wat"), max_length=30)
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        abstract = True
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} ({self.actor})"


class CohortEvent(HistoryEvent):
    """One change of a cohort (issue #6)."""

    cohort = models.ForeignKey(
        Cohort, on_delete=models.CASCADE, related_name="events", verbose_name=_("cohort")
    )
    action = models.CharField(_("wat"), max_length=30, choices=CohortEventAction.choices)

    class Meta(HistoryEvent.Meta):
        verbose_name = _("wijziging van een cohort")
        verbose_name_plural = _("wijzigingen van cohorten")


def _session_uid() -> str:
    import uuid

    return f"{uuid.uuid4()}@leerlab"


class CohortSession(models.Model):
    """One meeting in a cohort's plan (issue #6). Participants get an .ics
    invitation, a new one when it changes (same UID, higher SEQUENCE), and a
    reminder before it. A session that was announced is called off, not
    deleted, so participants get a cancellation."""

    cohort = models.ForeignKey(
        Cohort, on_delete=models.CASCADE, related_name="sessions", verbose_name=_("cohort")
    )
    topic = models.CharField(_("onderwerp"), max_length=200)
    date = models.DateField(_("datum"))
    start_time = models.TimeField(_("begintijd"))
    end_time = models.TimeField(_("eindtijd"))
    location = models.CharField(
        _("plaats"),
        max_length=300,
        blank=True,
        help_text=_("Adres of zaal; leeg bij een online bijeenkomst."),
    )
    online_url = models.URLField(
        _("online link"),
        max_length=500,
        blank=True,
        help_text=_("Link naar de online bijeenkomst (https://…)."),
    )
    notes = models.TextField(_("toelichting"), max_length=2000, blank=True)
    cancelled_at = models.DateTimeField(_("afgelast op"), null=True, blank=True)
    # iCalendar identity: the UID stays, SEQUENCE goes up with every change
    # participants are told about.
    uid = models.CharField(max_length=120, unique=True, default=_session_uid, editable=False)
    sequence = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(_("aangemaakt op"), auto_now_add=True)
    updated_at = models.DateTimeField(_("gewijzigd op"), auto_now=True)

    class Meta:
        verbose_name = _("bijeenkomst")
        verbose_name_plural = _("bijeenkomsten")
        ordering = ["date", "start_time", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_time__gt=models.F("start_time")), name="cohortsession_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic} ({self.date:%d-%m-%Y})"

    @property
    def starts_at(self):
        from datetime import datetime

        from django.utils import timezone

        return timezone.make_aware(datetime.combine(self.date, self.start_time))

    @property
    def ends_at(self):
        from datetime import datetime

        from django.utils import timezone

        return timezone.make_aware(datetime.combine(self.date, self.end_time))

    def clean(self):
        from django.core.exceptions import ValidationError

        errors = {}
        if self.start_time and self.end_time and self.end_time <= self.start_time:
            errors["end_time"] = _("De eindtijd moet na de begintijd liggen.")
        if not (self.location or "").strip() and not (self.online_url or "").strip():
            errors["location"] = _("Vul een plaats of een online link in (of allebei).")
        if errors:
            raise ValidationError(errors)


class CohortMessage(models.Model):
    """A message from an advisor to a whole cohort (issue #6), sent through
    the outbox: one email per recipient, each at most once."""

    cohort = models.ForeignKey(
        Cohort, on_delete=models.CASCADE, related_name="cohort_messages", verbose_name=_("cohort")
    )
    subject = models.CharField(_("onderwerp"), max_length=150)
    body = models.TextField(_("bericht"), max_length=5000)
    include_waitlist = models.BooleanField(_("ook aan de wachtlijst"), default=False)
    # Set by the form when it is shown: a second submit of the same form
    # (double click, back button) finds this key and sends nothing more.
    form_key = models.UUIDField(unique=True, editable=False)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("verstuurd door"),
    )
    recipients = models.PositiveSmallIntegerField(_("aantal ontvangers"), default=0)
    created_at = models.DateTimeField(_("verstuurd op"), auto_now_add=True)

    class Meta:
        verbose_name = _("bericht aan een cohort")
        verbose_name_plural = _("berichten aan cohorten")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.subject
