"""Fixtures for the browser tests (issue #4): the portal served on loopback
by pytest-django's live server (a thread of this process, on the test
database), a real SMTP server (aiosmtpd) that receives the officer's
email, and Debian's Chromium driven by Playwright (no browser download).

Tasks run in-process after commit (CELERY_TASK_ALWAYS_EAGER in the test
settings), in the live server's request thread, and send their email over
SMTP to the recorder here: the confirmation link a test opens is the one
the SMTP server received.

Locally the tests skip when /usr/bin/chromium is missing; under CI=true the
root conftest turns that skip into a failure.
"""

import email
import logging
import os
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from .support import DESKTOP

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing of Chromium's own that would phone home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
# Kept out of git (.gitignore: test-artifacts/); CI may keep them as artefacts.
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


# --- SMTP ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedEmail:
    recipients: tuple[str, ...]
    subject: str
    text: str


@dataclass
class SmtpRecorder:
    """An aiosmtpd handler that keeps what it received, readable from the
    test thread."""

    host: str = "127.0.0.1"
    port: int = 0
    _messages: list[ReceivedEmail] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content)
        text = ""
        for part in message.walk():
            if part.get_content_type() == "text/plain" and not part.is_multipart():
                text = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8", "replace")
                break
        received = ReceivedEmail(
            recipients=tuple(r.lower() for r in envelope.rcpt_tos),
            subject=" ".join(str(make_header(decode_header(message.get("Subject", "")))).split()),
            text=text,
        )
        with self._lock:
            self._messages.append(received)
        return "250 Message accepted for delivery"

    def to(self, recipient: str) -> list[ReceivedEmail]:
        with self._lock:
            return [m for m in self._messages if recipient.lower() in m.recipients]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def smtp_recorder():
    from aiosmtpd.controller import Controller

    # aiosmtpd logs every SMTP command (addresses included) at INFO.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    recorder = SmtpRecorder(port=_free_port())
    controller = Controller(recorder, hostname=recorder.host, port=recorder.port)
    controller.start()
    yield recorder
    controller.stop()


# --- The portal ------------------------------------------------------------------


@pytest.fixture
def portal(browser, live_server, settings, smtp_recorder):
    """The live server, with email going over SMTP to the recorder and
    links in email pointing at the live server. Returns the recorder.

    Asks for the browser first, so that the live server (whose in-memory
    SQLite connection it shares) starts beside Playwright's loop."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_recorder.host
    settings.EMAIL_PORT = smtp_recorder.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 5
    settings.SITE_URL = live_server.url
    # Plain http on loopback: cookies without the Secure flag, as a local
    # test over http runs with DJANGO_SECURE_COOKIES=0.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.LANGUAGE_COOKIE_SECURE = False
    smtp_recorder.clear()
    return smtp_recorder


# --- The browser -----------------------------------------------------------------


@contextmanager
def _django_beside_playwright():
    """Let the test code use the database while Playwright's sync API runs.

    The sync API keeps an asyncio loop "running" on this thread (suspended
    in a greenlet). Django then (1) refuses database access from here as
    "async context", which does not apply: the test code is synchronous
    and never runs inside that loop; and (2) keeps this thread's
    connections in a separate, context-local store, i.e. new connection
    objects. The test database's serialized contents (what
    serialized_rollback restores after a flush) live on the connection
    objects made during the database set-up, so they are handed to the
    new ones."""
    from django.db import connections

    serialized = {
        alias: connections[alias]._test_serialized_contents
        for alias in connections
        if hasattr(connections[alias], "_test_serialized_contents")
    }
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            for alias, contents in serialized.items():
                connections[alias]._test_serialized_contents = contents
            try:
                yield playwright
            finally:
                # The loop's own connection objects, before it stops.
                connections.close_all()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# One Chromium per test module (a launch costs well under a second): when
# the module is done, Playwright's loop stops and the rest of the suite runs
# as if it had never been there.
@pytest.fixture(scope="module")
def browser(django_db_setup):
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    with _django_beside_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser, portal, live_server):
    """A fresh browser profile (no cookies) per test, at desktop size.
    Any request that would leave the machine is refused and fails the test:
    the portal and axe-core must need nothing from the internet."""
    context = browser.new_context(base_url=live_server.url, viewport=DESKTOP)
    context.set_default_timeout(10_000)
    outside: list[str] = []

    def only_loopback(route):
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK_HOSTS:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", only_loopback)
    yield context
    context.close()
    assert not outside, f"requests outside the machine: {outside}"


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
