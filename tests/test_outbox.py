"""The email outbox: one row per message, sent once, retried with backoff (issue #2)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from outbox import services
from outbox.models import MessageStatus, OutboxMessage
from tests.factories import RegistrationFactory


class RefusingBackend:
    """An email backend whose server refuses: a unit stand-in for an SMTP
    outage (the integration tests use a real SMTP server)."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        import smtplib

        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


@pytest.fixture
def registration(cohort):
    return RegistrationFactory(cohort=cohort, contact_name="Anna <b>de Vries</b>")


def queue(registration, key="test:1"):
    return services.message_queue(
        key=key,
        template="waitlisted",
        to=registration.contact_email,
        context={"registration": registration, "lab": registration.cohort.lab, "cohort": registration.cohort},
        registration=registration,
    )


def test_same_key_is_queued_once(registration):
    assert queue(registration) is not None
    assert queue(registration) is None
    assert OutboxMessage.objects.count() == 1


def test_send_marks_sent_and_sends_text_and_html(registration, mailoutbox):
    message = queue(registration)
    assert services.message_send(message_id=message.pk) is None
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and message.sent_at is not None
    assert len(mailoutbox) == 1
    sent = mailoutbox[0]
    assert sent.alternatives[0].mimetype == "text/html"
    assert sent.extra_headers["Message-ID"].startswith("<")
    # A sent message is never sent again.
    services.message_send(message_id=message.pk)
    assert len(mailoutbox) == 1


def test_html_escapes_user_input_and_text_keeps_it_plain(registration):
    message = queue(registration)
    assert "<b>de Vries</b>" not in message.body_html
    assert "&lt;b&gt;" in message.body_html
    assert "Anna <b>de Vries</b>" in message.body_text


def test_subject_is_one_line_whatever_the_input(cohort):
    registration = RegistrationFactory(cohort=cohort)
    registration.cohort.lab.title = "Lab\r\nBcc: kwaad@example.com"
    message = queue(registration)
    assert "\n" not in message.subject and "\r" not in message.subject


def test_failure_records_error_and_backs_off(registration, settings):
    settings.EMAIL_BACKEND = "tests.test_outbox.RefusingBackend"
    message = queue(registration)
    retry_in = services.message_send(message_id=message.pk)
    message.refresh_from_db()
    assert retry_in == services.backoff_seconds(1)
    assert message.status == MessageStatus.QUEUED
    assert message.attempts == 1
    assert "SMTPServerDisconnected" in message.last_error
    assert message.next_attempt_at > timezone.now()


def test_backoff_grows_and_is_capped():
    assert services.backoff_seconds(1) < services.backoff_seconds(2) < services.backoff_seconds(3)
    assert services.backoff_seconds(50) == services.BACKOFF_CAP


def test_gives_up_after_max_attempts(registration, settings):
    settings.EMAIL_BACKEND = "tests.test_outbox.RefusingBackend"
    settings.LEERLAB_MAIL_MAX_ATTEMPTS = 2
    message = queue(registration)
    services.message_send(message_id=message.pk)
    assert services.message_send(message_id=message.pk) is None
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.attempts == 2


def test_resend_requeues_failed_message(registration, mailoutbox, django_capture_on_commit_callbacks):
    message = queue(registration)
    OutboxMessage.objects.filter(pk=message.pk).update(status=MessageStatus.FAILED, attempts=8)
    with django_capture_on_commit_callbacks(execute=True):
        services.message_resend(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert len(mailoutbox) == 1


def test_resend_never_resends_sent_message(registration, mailoutbox):
    message = queue(registration)
    services.message_send(message_id=message.pk)
    services.message_resend(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert len(mailoutbox) == 1


def test_due_ids_are_retries_that_are_due_and_stuck_messages(registration):
    fresh = queue(registration, key="fresh")
    due = queue(registration, key="due")
    later = queue(registration, key="later")
    stuck = queue(registration, key="stuck")
    sent = queue(registration, key="sent")
    now = timezone.now()
    OutboxMessage.objects.filter(pk=due.pk).update(next_attempt_at=now - timedelta(seconds=1))
    OutboxMessage.objects.filter(pk=later.pk).update(next_attempt_at=now + timedelta(minutes=5))
    OutboxMessage.objects.filter(pk=stuck.pk).update(created_at=now - timedelta(hours=1))
    OutboxMessage.objects.filter(pk=sent.pk).update(
        status=MessageStatus.SENT, created_at=now - timedelta(hours=1)
    )
    assert set(services.outbox_due_ids(now=now)) == {due.pk, stuck.pk}
    assert fresh.pk not in services.outbox_due_ids(now=now)


def test_send_unknown_id_is_a_no_op(db):
    assert services.message_send(message_id=999999) is None
    assert mail.outbox == []
