"""Fixtures for the integration tests: the real PostgreSQL test database, a
real SMTP server (aiosmtpd) in this process and a real Celery worker in a
subprocess that talks to Redis, the test database and that SMTP server.

Locally these fixtures skip with a reason when PostgreSQL or Redis is not
configured; under CI=true the root conftest turns any skip into a failure.
"""

import email
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# A Redis database of its own, flushed at start, so the worker sees no
# leftovers and the developer's db 0 is left alone.
WORKER_REDIS_DB = 15
WORKER_READY_TIMEOUT = 45


# --- Reporting: show the worker's log next to a failing test ---------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed or not hasattr(item, "funcargs"):
        return
    # Every fixture value that keeps a process log: the worker here, the
    # processes of the fault tests (tests/integration/faults_support.py).
    shown = set()
    for name, value in item.funcargs.items():
        if callable(getattr(value, "log_tail", None)) and id(value) not in shown:
            shown.add(id(value))
            report.sections.append((f"{name} log (tail)", value.log_tail()))


# --- Requirements ------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres(django_db_setup) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("integration test needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture
def require_postgres(postgres) -> None:
    """For tests that need PostgreSQL but no worker."""


@pytest.fixture(scope="session")
def redis_url() -> str:
    base = os.environ.get("REDIS_URL", "")
    if not base:
        pytest.skip("integration test needs Redis: set REDIS_URL=redis://127.0.0.1:6379/0")
    # Same server, a dedicated database number.
    return urlunsplit(urlsplit(base)._replace(path=f"/{WORKER_REDIS_DB}"))


# --- SMTP ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedEmail:
    mail_from: str
    recipients: tuple[str, ...]
    subject: str
    message_id: str
    text: str


@dataclass
class SmtpRecorder:
    """What the SMTP server received, safe to read from the test thread."""

    host: str = "127.0.0.1"
    port: int = 0
    _messages: list[ReceivedEmail] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: object = None

    # aiosmtpd handler hook
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content)
        subject = str(make_header(decode_header(message.get("Subject", ""))))
        text = ""
        for part in message.walk():
            if part.get_content_type() == "text/plain" and not part.is_multipart():
                charset = part.get_content_charset() or "utf-8"
                text = part.get_payload(decode=True).decode(charset, errors="replace")
                break
        received = ReceivedEmail(
            mail_from=envelope.mail_from,
            recipients=tuple(r.lower() for r in envelope.rcpt_tos),
            subject=" ".join(subject.split()),
            message_id=message.get("Message-ID", "").strip(),
            text=text,
        )
        with self._lock:
            self._messages.append(received)
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[ReceivedEmail]:
        with self._lock:
            return list(self._messages)

    def to(self, recipient: str, subject_contains: str = "") -> list[ReceivedEmail]:
        recipient = recipient.lower()
        return [m for m in self.messages if recipient in m.recipients and subject_contains in m.subject]

    def with_subject(self, subject_contains: str) -> list[ReceivedEmail]:
        return [m for m in self.messages if subject_contains in m.subject]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    # server control: the tests stop and restart it to play "SMTP is down"
    def start(self) -> None:
        from aiosmtpd.controller import Controller

        assert self._controller is None, "SMTP server already running"
        controller = Controller(self, hostname=self.host, port=self.port)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def smtp_server() -> SmtpRecorder:
    # aiosmtpd logs every SMTP command (addresses included) at INFO.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    recorder = SmtpRecorder(port=_free_port())
    recorder.start()
    yield recorder
    recorder.stop()


@pytest.fixture
def smtp(smtp_server) -> SmtpRecorder:
    """The running SMTP server, emptied for this test."""
    if not smtp_server.running:
        smtp_server.start()
    smtp_server.clear()
    yield smtp_server
    if not smtp_server.running:  # a test that stopped it must not break the next one
        smtp_server.start()


# --- Celery worker -------------------------------------------------------------


def _test_database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    # A socket directory ("/var/run/postgresql") goes percent-encoded.
    host = quote(s["HOST"] or "127.0.0.1", safe="")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{quote(s['NAME'], safe='')}"


class CeleryWorker:
    """A `celery -A leerlab worker` subprocess on the test database.

    `env` adds to or overrides the environment (e.g. LEERLAB_MAIL_STUCK_AFTER,
    CELERY_VISIBILITY_TIMEOUT); `kill()` and `restart()` play a worker that
    dies or is restarted by its supervisor (tests/integration/test_faults.py).
    """

    def __init__(
        self,
        *,
        app,
        broker_url: str,
        smtp: SmtpRecorder,
        env: dict[str, str] | None = None,
        concurrency: int = 2,
    ):
        self.app = app
        self.broker_url = broker_url
        self.concurrency = concurrency
        handle, name = tempfile.mkstemp(prefix="celery-worker-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "leerlab.settings",
            "DJANGO_SECRET_KEY": "test-only-not-secret",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": _test_database_url(),
            "REDIS_URL": broker_url,
            "EMAIL_HOST": smtp.host,
            "EMAIL_PORT": str(smtp.port),
            "EMAIL_USE_TLS": "false",
            "EMAIL_TIMEOUT": "5",
            "SITE_URL": "http://testserver",
            "PYTHONUNBUFFERED": "1",
        }
        for variable in ("EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD"):
            self.env.pop(variable, None)
        self.env.update(env or {})
        self.process = None
        self.start()

    def start(self) -> None:
        """Start the worker (again), under a fresh node name, appending to
        the same log."""
        assert self.process is None or self.process.poll() is not None, "worker already running"
        self.hostname = f"leerlab-it-{uuid.uuid4().hex[:8]}@localhost"
        celery_bin = Path(sys.executable).with_name("celery")
        command = [
            str(celery_bin) if celery_bin.exists() else sys.executable,
            *([] if celery_bin.exists() else ["-m", "celery"]),
            "-A",
            "leerlab",
            "worker",
            # Two processes: "twice at the same time" really runs in parallel.
            "--pool=prefork",
            f"--concurrency={self.concurrency}",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
            "-n",
            self.hostname,
        ]
        # A session of its own, so teardown can end the pool children too.
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the whole worker (main process and pool children),
        as the OOM killer or a lost machine would, and wait until the main
        process is gone."""
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=15)

    def restart(self, *, env: dict[str, str] | None = None) -> None:
        """Stop (warm) and start again, optionally with changed environment."""
        self.stop()
        self.env.update(env or {})
        self.start()
        self.wait_ready()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 200) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def received(self, task_name: str) -> int:
        """How many tasks of this name the worker has received so far."""
        return sum(
            1 for line in self.log().splitlines() if f"Task {task_name}[" in line and "received" in line
        )

    def received_ids(self, task_name: str) -> list[str]:
        """The ids of the tasks of this name received so far, in order: a
        task that Redis delivers again keeps its id, a new one gets another."""
        pattern = re.compile(rf"Task {re.escape(task_name)}\[([0-9a-f-]+)\] received")
        return [match.group(1) for match in pattern.finditer(self.log())]

    def wait_ready(self, timeout: float = WORKER_READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.app.control.ping(destination=[self.hostname], timeout=0.5):
                return
        raise RuntimeError(f"celery worker not ready after {timeout}s:\n{self.log_tail()}")

    def _queue_length(self) -> int:
        with self.app.connection_for_write() as conn:
            return conn.default_channel.client.llen("celery")

    def is_idle(self) -> bool:
        inspect = self.app.control.inspect(destination=[self.hostname], timeout=1.0)
        active = inspect.active()
        reserved = inspect.reserved()
        if active is None or reserved is None:
            # No reply in time: busy, unless it is gone.
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.process.returncode}:\n{self.log_tail()}")
            return False
        busy = any(active.values()) or any(reserved.values())
        return not busy and self._queue_length() == 0

    def wait_idle(self, timeout: float = 30) -> None:
        """Until nothing is queued, reserved or running, twice in a row
        (a task that just left the queue may not be reserved yet)."""
        deadline = time.monotonic() + timeout
        idle_in_a_row = 0
        while time.monotonic() < deadline:
            idle_in_a_row = idle_in_a_row + 1 if self.is_idle() else 0
            if idle_in_a_row >= 2:
                return
            time.sleep(0.3)
        raise AssertionError(f"celery worker still busy after {timeout}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            # Warm shutdown first; the pool children go with the main process.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        # Children left behind by an unclean exit, in our own session only.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def celery_worker(postgres, redis_url, smtp_server):
    """A real worker, shared by the tests of one module (a start costs seconds).

    While it runs, the test process publishes tasks to the worker's Redis
    database instead of running them eagerly; afterwards eager mode is back
    for the modules that follow. Depends (through `postgres`) on
    django_db_setup, so the worker is gone before the test database is
    dropped."""
    import redis as redis_client

    from leerlab.celery import app

    broker = redis_client.Redis.from_url(redis_url)
    broker.flushdb()

    saved = {"task_always_eager": app.conf.task_always_eager, "broker_url": app.conf.broker_url}
    _reset_broker_connections(app)
    app.conf.task_always_eager = False
    app.conf.broker_url = redis_url
    worker = CeleryWorker(app=app, broker_url=redis_url, smtp=smtp_server)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()
        # Retries a test left scheduled were handed back to Redis at shutdown.
        broker.flushdb()
        _reset_broker_connections(app)
        app.conf.task_always_eager = saved["task_always_eager"]
        app.conf.broker_url = saved["broker_url"]
        worker.log_path.unlink(missing_ok=True)


def _reset_broker_connections(app) -> None:
    """Drop pooled connections, which would still point at the old broker."""
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None and amqp._producer_pool is not None:
        amqp._producer_pool.force_close_all()
        amqp._producer_pool = None
    # Celery takes its producer pool from kombu's global registry, keyed by
    # broker URL: without this, the next use of the same URL would get the
    # pool closed above ("Acquire on closed pool").
    from kombu import pools

    pools.reset()
    if "control" in app.__dict__:
        del app.__dict__["control"]


# --- Waiting -------------------------------------------------------------------


def wait_until(predicate, *, timeout: float = 30, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


# --- Concurrency ---------------------------------------------------------------


@pytest.fixture
def eager_tasks():
    """Tasks enqueued on commit run in the committing thread (no worker)."""
    from leerlab.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved


def all_at_once(calls) -> tuple[list, list[BaseException]]:
    """Run every call in its own thread (its own database connection), all
    released together by a barrier. Returns (results, exceptions)."""
    from django.db import connection

    barrier = threading.Barrier(len(calls))
    results, raised = [], []
    lock = threading.Lock()

    def run(call) -> None:
        try:
            barrier.wait(timeout=30)
            result = call()
            with lock:
                results.append(result)
        except BaseException as exc:  # noqa: BLE001 - the test reports every one
            with lock:
                raised.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads), "a call hung"
    return results, raised
