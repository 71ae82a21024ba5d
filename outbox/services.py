import hashlib
import logging
import smtplib
from datetime import timedelta
from email.message import Message
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import SafeMIMEText
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from leerlab.tasking import enqueue_on_commit

from .models import MessageStatus, OutboxMessage

logger = logging.getLogger(__name__)

# Seconds to wait before attempt n+1 (capped): 30s, 1m, 2m, 4m, ... 1h.
BACKOFF_BASE = 30
BACKOFF_CAP = 3600


def backoff_seconds(attempts: int) -> int:
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_CAP)


def render_email(*, template: str, context: dict, language: str) -> tuple[str, str, str]:
    """Render subject, text and HTML of `templates/emails/<template>.*`."""
    with translation.override(language):
        subject = render_to_string(f"emails/{template}_subject.txt", context)
        text = render_to_string(f"emails/{template}.txt", context)
        html = render_to_string(f"emails/{template}.html", context)
    # Subjects are one line, whatever a template or a value holds: no header injection.
    subject = " ".join(subject.split())
    return subject, text, html


def message_queue(
    *,
    key: str,
    template: str,
    to: str,
    context: dict,
    language: str = "nl",
    registration=None,
    cohort=None,
    attachments: list[dict] | None = None,
) -> OutboxMessage | None:
    """Store one email in the outbox within the caller's transaction and
    send it after commit. Returns None when a message with this key exists
    already: that is what makes every email go out once.

    `attachments`: text files to send along, each a dict with "filename",
    "mimetype" (parameters allowed, e.g. "text/calendar; charset=utf-8;
    method=PUBLISH") and "content" (str)."""
    if OutboxMessage.objects.filter(dedupe_key=key).exists():
        return None
    subject, text, html = render_email(template=template, context=context, language=language)
    message, created = OutboxMessage.objects.get_or_create(
        dedupe_key=key,
        defaults={
            "kind": template,
            "to": to,
            "subject": subject,
            "body_text": text,
            "body_html": html,
            "registration": registration,
            "cohort": cohort,
            "attachments": [_attachment_record(attachment) for attachment in attachments or ()],
        },
    )
    if not created:
        return None
    from .tasks import send_message

    enqueue_on_commit(send_message, message.pk)
    return message


def _attachment_record(attachment: dict) -> dict:
    filename, content = attachment["filename"], attachment["content"]
    if not isinstance(filename, str) or not filename or not isinstance(content, str):
        raise ValueError("an outbox attachment needs a filename and text content")
    return {
        "filename": filename,
        "mimetype": attachment.get("mimetype") or "application/octet-stream",
        "content": content,
    }


def _attach(email: EmailMultiAlternatives, attachment: dict) -> None:
    """Attach one stored file. A mimetype with parameters (a calendar's
    "method=PUBLISH") becomes a MIME part of its own: EmailMessage.attach
    would add a second charset to it."""
    header = Message()
    header["Content-Type"] = attachment["mimetype"]
    mimetype = header.get_content_type()
    params = [(name, value) for name, value in header.get_params()[1:] if name.lower() != "charset"]
    maintype, subtype = mimetype.split("/", 1)
    if not params or maintype != "text":
        email.attach(attachment["filename"], attachment["content"], mimetype)
        return
    part = SafeMIMEText(attachment["content"], subtype, "utf-8")
    for name, value in params:
        part.set_param(name, value)
    part.add_header("Content-Disposition", "attachment", filename=attachment["filename"])
    email.attach(part)


def _message_id(message: OutboxMessage) -> str:
    # Stable per message, so a receiving server can drop a resend that a
    # crash between SMTP and commit caused.
    digest = hashlib.sha256(message.dedupe_key.encode()).hexdigest()[:32]
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "leerlab.local"
    return f"<{digest}@{domain}>"


def message_send(*, message_id: int) -> int | None:
    """Send one queued message. Holds the row lock while talking SMTP so that
    two workers never send the same message. Returns the seconds after which
    to try again when sending failed, else None."""
    now = timezone.now()
    with transaction.atomic():
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_id, status=MessageStatus.QUEUED)
            .first()
        )
        if message is None:
            return None
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.body_text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.to],
            headers={"Message-ID": _message_id(message)},
        )
        if message.body_html:
            email.attach_alternative(message.body_html, "text/html")
        for attachment in message.attachments or ():
            _attach(email, attachment)
        try:
            get_connection(fail_silently=False).send_messages([email])
        except (smtplib.SMTPException, OSError) as exc:
            message.attempts += 1
            message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            retry_in = None
            if message.attempts >= settings.LEERLAB_MAIL_MAX_ATTEMPTS:
                message.status = MessageStatus.FAILED
            else:
                retry_in = backoff_seconds(message.attempts)
                message.next_attempt_at = now + timedelta(seconds=retry_in)
            message.save(update_fields=["attempts", "last_error", "status", "next_attempt_at"])
            logger.warning(
                "email %s failed (attempt %s): %s", message.pk, message.attempts, type(exc).__name__
            )
            return retry_in
        message.status = MessageStatus.SENT
        message.sent_at = timezone.now()
        message.attempts += 1
        message.save(update_fields=["status", "sent_at", "attempts"])
        logger.info("email %s sent (%s)", message.pk, message.kind)
    return None


def message_resend(*, message_id: int) -> bool:
    """Put a failed or stuck message back in the queue (admin action).
    A message that was sent is not sent again: returns False for it."""
    with transaction.atomic():
        message = OutboxMessage.objects.select_for_update().get(pk=message_id)
        if message.status == MessageStatus.SENT:
            return False
        message.status = MessageStatus.QUEUED
        message.next_attempt_at = None
        message.attempts = 0
        message.save(update_fields=["status", "next_attempt_at", "attempts"])
        from .tasks import send_message

        enqueue_on_commit(send_message, message.pk)
    return True


def outbox_due_ids(*, now=None) -> list[int]:
    """Queued messages whose retry time has come, or that nobody picked up
    (a lost task, a broker that was down)."""
    now = now or timezone.now()
    stuck_before = now - timedelta(seconds=settings.LEERLAB_MAIL_STUCK_AFTER)
    from django.db.models import Q

    return list(
        OutboxMessage.objects.filter(status=MessageStatus.QUEUED)
        .filter(Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True, created_at__lte=stuck_before))
        .order_by("created_at")
        .values_list("pk", flat=True)[:500]
    )
