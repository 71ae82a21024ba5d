"""Enqueue Celery tasks only after the surrounding transaction commits.

If the broker is down the change is already committed; the periodic sweep
finds the unfinished work, so a failed publish is logged (ids only) and
never turned into a failed request.

A broker that hangs instead of refusing (a frozen Redis, a network that
drops packets) would make every publish wait for its socket timeouts, and
every signup and confirmation with it. So after a publish that failed
slowly this process stops publishing for PAUSE_AFTER_SLOW_FAILURE seconds
and leaves the work to the sweep (issue #3). A fast failure (connection
refused) costs nothing and pauses nothing.
"""

import logging
import time

from django.db import transaction

logger = logging.getLogger(__name__)

# A failed publish that took longer than this was a broker that hangs.
SLOW_FAILURE_SECONDS = 0.5
PAUSE_AFTER_SLOW_FAILURE = 30.0

_paused_until = 0.0


def publishing_paused() -> bool:
    return time.monotonic() < _paused_until


def _pause_publishing() -> None:
    global _paused_until
    _paused_until = time.monotonic() + PAUSE_AFTER_SLOW_FAILURE


def enqueue_on_commit(task, *args) -> None:
    def publish():
        if publishing_paused():
            logger.warning("broker hanging: not enqueuing %s%r; the sweep will pick it up", task.name, args)
            return
        started = time.monotonic()
        try:
            task.delay(*args)
        except Exception as exc:  # noqa: BLE001 - any broker failure; the sweep recovers
            if time.monotonic() - started > SLOW_FAILURE_SECONDS:
                _pause_publishing()
            logger.warning(
                "could not enqueue %s%r (%s); the sweep will pick it up", task.name, args, type(exc).__name__
            )

    transaction.on_commit(publish)
