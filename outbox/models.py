from django.db import models
from django.utils.translation import gettext_lazy as _


class MessageStatus(models.TextChoices):
    QUEUED = "queued", _("in de wachtrij")
    SENT = "sent", _("verstuurd")
    FAILED = "failed", _("mislukt")


class OutboxMessage(models.Model):
    """One outgoing email. Written in the same transaction as the change
    that causes it; `dedupe_key` makes "exactly once" a database fact."""

    dedupe_key = models.CharField(_("sleutel"), max_length=200, unique=True)
    kind = models.CharField(_("soort"), max_length=40, db_index=True)
    to = models.EmailField(_("aan"))
    subject = models.CharField(_("onderwerp"), max_length=250)
    body_text = models.TextField(_("tekst"))
    body_html = models.TextField(_("HTML"), blank=True)
    # Files sent with the message (issue #6: .ics invitations), each
    # {"filename", "mimetype", "content"} with text content.
    attachments = models.JSONField(_("bijlagen"), default=list, blank=True)
    registration = models.ForeignKey(
        "registrations.Registration",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
        verbose_name=_("aanmelding"),
    )
    cohort = models.ForeignKey(
        "leerlab.Cohort",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
        verbose_name=_("cohort"),
    )

    status = models.CharField(
        _("status"), max_length=10, choices=MessageStatus.choices, default=MessageStatus.QUEUED, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(_("pogingen"), default=0)
    last_error = models.TextField(_("laatste fout"), blank=True)
    next_attempt_at = models.DateTimeField(_("volgende poging"), null=True, blank=True)
    created_at = models.DateTimeField(_("aangemaakt op"), auto_now_add=True)
    sent_at = models.DateTimeField(_("verstuurd op"), null=True, blank=True)

    class Meta:
        verbose_name = _("e-mailbericht")
        verbose_name_plural = _("uitgaande e-mail")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.subject
