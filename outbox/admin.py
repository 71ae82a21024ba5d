"""The outbox in the advisors' back office (issue #2, point 8): a read-only
log of every email, failures visible, and a way to send one again through
outbox.services.message_resend."""

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from leerlab.admin_utils import ReadOnlyAdminMixin, report_count

from .models import MessageStatus, OutboxMessage
from .services import message_resend

# Shared with the registrations' "E-mail opnieuw versturen".
REQUEUED = ngettext_lazy(
    "%(count)d e-mailbericht opnieuw in de wachtrij gezet.",
    "%(count)d e-mailberichten opnieuw in de wachtrij gezet.",
    "count",
)


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "to",
        "subject",
        "status_display",
        "attempts",
        "short_error",
        "sent_at",
    )
    list_filter = ("status", "kind")
    search_fields = ("to", "subject")
    date_hierarchy = "created_at"
    actions = ("resend",)
    fields = (
        "created_at",
        "kind",
        "to",
        "subject",
        "status",
        "attempts",
        "last_error",
        "next_attempt_at",
        "sent_at",
        "registration",
        "cohort",
        "dedupe_key",
        "body_text",
        "attachment_names",
    )
    readonly_fields = fields

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: OutboxMessage):
        if obj.status == MessageStatus.FAILED:
            return format_html(
                '<strong class="outbox-failed" style="color: var(--error-fg, #ba2121)">&#9888; {}</strong>',
                obj.get_status_display(),
            )
        return obj.get_status_display()

    @admin.display(description=_("bijlagen"))
    def attachment_names(self, obj: OutboxMessage) -> str:
        # The names only: a file's content (an .ics) is in the sent email.
        names = [a.get("filename", "") for a in obj.attachments or () if isinstance(a, dict)]
        return ", ".join(name for name in names if name) or "–"

    @admin.display(description=_("laatste fout"))
    def short_error(self, obj: OutboxMessage) -> str:
        return Truncator(obj.last_error).chars(80)

    # A log: nobody adds, edits or deletes messages by hand.

    def has_resend_permission(self, request) -> bool:
        # Re-queueing goes through the service and changes nothing an
        # advisor edits: the view permission is enough (see
        # leerlab/migrations/0003_advisors_group.py).
        return self.has_view_permission(request)

    @admin.action(description=_("Opnieuw versturen"), permissions=["resend"])
    def resend(self, request, queryset):
        requeued = skipped = 0
        for message_id in queryset.order_by("pk").values_list("pk", flat=True):
            if message_resend(message_id=message_id):
                requeued += 1
            else:
                skipped += 1
        report_count(
            self,
            request,
            requeued,
            REQUEUED,
        )
        report_count(
            self,
            request,
            skipped,
            ngettext_lazy(
                "%(count)d bericht was al verstuurd en is niet opnieuw verstuurd.",
                "%(count)d berichten waren al verstuurd en zijn niet opnieuw verstuurd.",
                "count",
            ),
            level=messages.WARNING,
        )
