"""Enqueue Celery tasks only after the surrounding transaction commits.

If the broker is down the change is already committed; the periodic sweep
finds the unfinished work, so a failed publish is logged (ids only) and
never turned into a failed request.
"""

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_on_commit(task, *args) -> None:
    def publish():
        try:
            task.delay(*args)
        except Exception as exc:  # noqa: BLE001 - any broker failure; the sweep recovers
            logger.warning(
                "could not enqueue %s%r (%s); the sweep will pick it up", task.name, args, type(exc).__name__
            )

    transaction.on_commit(publish)
