"""Real processes for the fault tests (#3): a private redis-server that the
tests kill, freeze and restart, gunicorn and celery beat subprocesses, an
SMTP server that refuses or stalls on command, and a small HTTP client for
talking to gunicorn.

Every process runs in a session (process group) of its own, so stopping it
also ends its children (gunicorn's and Celery's worker processes), and the
`Processes` registry stops whatever a test started, also when it fails.
"""

import asyncio
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.client import HTTPConnection
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from .conftest import REPO_ROOT, CeleryWorker, SmtpRecorder, _free_port, _test_database_url

free_port = _free_port
BIN = Path(sys.executable).parent


def database_url(*, application_name: str = "") -> str:
    """The test database, optionally with an application_name, so a test
    can find (and terminate) the backends of one process in pg_stat_activity."""
    url = _test_database_url()
    return f"{url}?application_name={application_name}" if application_name else url


def service_env(*, broker_url: str, smtp: SmtpRecorder, **extra: str) -> dict[str, str]:
    """Production-like environment for gunicorn and beat, on the test database."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leerlab.settings",
        "DJANGO_SECRET_KEY": "test-only-not-secret",
        "DJANGO_DEBUG": "0",
        "DATABASE_URL": database_url(),
        "REDIS_URL": broker_url,
        "EMAIL_HOST": smtp.host,
        "EMAIL_PORT": str(smtp.port),
        "EMAIL_USE_TLS": "false",
        "EMAIL_TIMEOUT": "5",
        "SITE_URL": "http://testserver",
        "PYTHONUNBUFFERED": "1",
    }
    for variable in ("EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD"):
        env.pop(variable, None)
    env.update(extra)
    return env


# --- Processes ---------------------------------------------------------------

# Every process group started here, for the last resort below.
_process_groups: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    """Should pytest itself die before the fixtures' teardown (a second
    Ctrl-C, a crash), no redis-server, gunicorn or Celery is left behind."""
    for pgid in _process_groups:
        try:
            os.killpg(pgid, signal.SIGCONT)
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def track(process: subprocess.Popen) -> None:
    """Remember a process started with start_new_session=True."""
    _process_groups.add(process.pid)


class ManagedProcess:
    """A subprocess in its own session, logging to a temporary file."""

    label = "process"

    def __init__(self, command: list[str], *, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT):
        self.command = command
        self.env = env if env is not None else dict(os.environ)
        self.cwd = cwd
        handle, name = tempfile.mkstemp(prefix=f"leerlab-{self.label}-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        assert not self.running, f"{self.label} already running"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        track(self.process)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        """Send a signal to the whole process group."""
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole group and wait for the main process."""
        if self.process is None:
            return
        self.signal(signal.SIGCONT)  # a frozen process must be able to die
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (graceful), SIGKILL after `timeout`; then whatever is left
        of the group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def close(self) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)


class RedisServer(ManagedProcess):
    """A private redis-server without persistence: a restart starts empty,
    as a crashed Redis without AOF does."""

    label = "redis"

    def __init__(self, *, directory: Path, port: int | None = None):
        self.port = port or free_port()
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        command = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ]
        super().__init__(command, cwd=directory)
        self.frozen = False

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _command(self, *args):
        import redis

        with redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1
        ) as client:
            return client.execute_command(*args)

    def start(self, timeout: float = 10) -> None:
        import redis

        super().start()
        self.frozen = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running:
            try:
                self._command("PING")
                return
            except redis.ConnectionError:
                time.sleep(0.05)  # not listening yet
        raise RuntimeError(f"redis-server did not start:\n{self.log_tail()}")

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections (the kernel does
        that) but nothing answers, as with a hung server or a network that
        drops packets."""
        self.signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)
        self.frozen = False

    def flush(self) -> None:
        self._command("FLUSHALL")


def _celery_command(*args: str) -> list[str]:
    celery_bin = BIN / "celery"
    if celery_bin.exists():
        return [str(celery_bin), "-A", "leerlab", *args]
    return [sys.executable, "-m", "celery", "-A", "leerlab", *args]


class CeleryBeat(ManagedProcess):
    """`celery -A leerlab beat` with a schedule file of its own."""

    label = "beat"

    def __init__(self, *, env: dict[str, str], directory: Path):
        command = _celery_command(
            "beat", "--loglevel=INFO", "--schedule", str(directory / "celerybeat-schedule")
        )
        super().__init__(command, env=env, cwd=REPO_ROOT)

    def sent(self, task_name: str) -> int:
        """How many times this beat has sent the task."""
        return len(re.findall(rf"Sending due task \S+ \({re.escape(task_name)}\)", self.log()))


class Gunicorn(ManagedProcess):
    """`gunicorn leerlab.wsgi:application` with sync workers."""

    label = "gunicorn"

    def __init__(self, *, env: dict[str, str], workers: int = 2):
        self.port = free_port()
        command = [
            str(BIN / "gunicorn"),
            "leerlab.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--timeout",
            "30",
            "--graceful-timeout",
            "5",
        ]
        super().__init__(command, env=env)

    def http(self) -> "HttpClient":
        return HttpClient(host="127.0.0.1", port=self.port)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"gunicorn exited:\n{self.log_tail()}")
            try:
                if self.http().get("/").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn not ready after {timeout}s:\n{self.log_tail()}")


@dataclass
class Processes:
    """What a test started, stopped at teardown whatever happened."""

    app: object
    smtp: SmtpRecorder
    broker_url: str
    tmp_path: Path
    started: list = field(default_factory=list)

    def worker(self, *, env: dict[str, str] | None = None, concurrency: int = 2, ready: bool = True):
        worker = CeleryWorker(
            app=self.app, broker_url=self.broker_url, smtp=self.smtp, env=env, concurrency=concurrency
        )
        track(worker.process)
        self.started.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    def beat(self, *, name: str, **env: str) -> CeleryBeat:
        directory = self.tmp_path / name
        directory.mkdir()
        beat = CeleryBeat(
            env=service_env(broker_url=self.broker_url, smtp=self.smtp, **env), directory=directory
        )
        self.started.append(beat)
        beat.start()
        return beat

    def gunicorn(self, **env: str) -> Gunicorn:
        server = Gunicorn(env=service_env(broker_url=self.broker_url, smtp=self.smtp, **env))
        self.started.append(server)
        server.start()
        server.wait_ready()
        return server

    def stop_all(self) -> None:
        for process in reversed(self.started):
            try:
                process.stop()
            finally:
                process.log_path.unlink(missing_ok=True)

    def log_tail(self) -> str:
        sections = []
        for process in self.started:
            name = getattr(process, "label", "worker")
            sections.append(f"--- {name} ---\n{process.log_tail(60)}")
        return "\n".join(sections)


# --- SMTP that refuses and stalls ---------------------------------------------


@dataclass
class FaultySmtp(SmtpRecorder):
    """The recording SMTP server of conftest.py, plus faults on command:

    - `refuse_all`: a reply (e.g. "451 4.7.1 Try again later") to every RCPT;
    - `refuse`: per recipient address, a reply to its RCPT (e.g. a 550);
    - `hold()`: MAIL FROM gets no answer until `release()`, so a client is
      stuck mid-send before any message data went over the wire.
    """

    refuse_all: str | None = None
    refuse: dict[str, str] = field(default_factory=dict)
    _holding: threading.Event = field(default_factory=threading.Event)
    _held: int = 0
    _refused: list = field(default_factory=list)

    def reset(self) -> None:
        self.refuse_all = None
        self.refuse = {}
        self.release()
        with self._lock:
            self._held = 0
            self._refused.clear()
        self.clear()

    def hold(self) -> None:
        self._holding.set()

    def release(self) -> None:
        self._holding.clear()

    @property
    def held(self) -> int:
        """How many sessions have been stuck in MAIL FROM so far."""
        with self._lock:
            return self._held

    @property
    def refused(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._refused)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self._holding.is_set():
            with self._lock:
                self._held += 1
            while self._holding.is_set():
                await asyncio.sleep(0.05)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refuse.get(address.lower()) or self.refuse_all
        if reply:
            with self._lock:
                self._refused.append((address.lower(), reply))
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"


# --- HTTP ------------------------------------------------------------------------


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: str
    elapsed: float


class HttpClient:
    """A browser-like HTTP/1.1 client for gunicorn: keeps cookies, no
    redirects followed, one new connection per request (sync workers)."""

    CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

    def __init__(self, *, host: str, port: int):
        self.host = host
        self.port = port
        self.cookies: dict[str, str] = {}

    def _request(self, method: str, path: str, body: str | None = None, headers: dict | None = None):
        headers = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = HTTPConnection(self.host, self.port, timeout=30)
        started = time.monotonic()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode("utf-8", errors="replace")
        finally:
            connection.close()
        elapsed = time.monotonic() - started
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for key, morsel in cookie.items():
                self.cookies[key] = morsel.value
        return HttpResponse(response.status, dict(response.headers.items()), text, elapsed)

    def get(self, path: str) -> HttpResponse:
        return self._request("GET", path)

    def post_form(self, path: str, data: dict[str, str | Iterable[str]]) -> HttpResponse:
        """POST a form the way a browser does: first GET it for the CSRF
        token and cookie."""
        page = self.get(path)
        match = self.CSRF_FIELD.search(page.body)
        assert match, f"no CSRF token on {path} (status {page.status})"
        body = urlencode({**data, "csrfmiddlewaretoken": match.group(1)}, doseq=True)
        return self._request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": f"http://{self.host}:{self.port}",
            },
        )
