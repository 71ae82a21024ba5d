from celery import shared_task

from . import services


@shared_task(bind=True, name="outbox.tasks.send_message")
def send_message(self, message_id: int) -> None:
    retry_in = services.message_send(message_id=message_id)
    if retry_in is not None and not self.request.is_eager:
        # A fresh task rather than self.retry(): the outbox row, not the
        # task, holds the attempt count, and the sweep covers a lost one.
        send_message.apply_async((message_id,), countdown=retry_in)
