"""`make loadtest`: the portal under load, as in production, on this machine.

1. installs requirements-load.txt into the running venv (locust, aiosmtpd);
2. drops and recreates a PostgreSQL database of its own
   (LOADTEST_DATABASE_URL, its name must contain "loadtest") and migrates;
   flushes a Redis database of its own (LOADTEST_REDIS_URL, not db 0);
3. collects static files into a temporary STATIC_ROOT;
4. starts an SMTP server (aiosmtpd, in this process) that writes every
   confirmation link to a spool directory the simulated officers read;
5. starts gunicorn (DEBUG off, a generated secret key, rate limits off:
   all simulated officers come from 127.0.0.1, which the limits would
   throttle by design), a Celery worker and Celery beat;
6. runs locust headless (LOADTEST_USERS officers, default 50, for
   LOADTEST_DURATION, default 2m) with loadtest/locustfile.py, while an
   "advisor" opens a new cohort for every lab whose cohort is full;
7. optionally a short second phase with the rate limits on
   (LOADTEST_RATELIMIT_PHASE, default 20s; 0 skips it): 429s, never 5xx;
8. waits until every email is out, runs a final sweep, then checks every
   capacity and email rule in the database and against what the SMTP
   server received, and that no response was a 5xx;
9. writes the figures to loadtest/results/latest.md and prints them.

Exits non-zero when a rule is broken, a response was a 5xx or a request
failed. Every process it starts runs in its own process group and is
ended at the end, also on failure or Ctrl-C.
"""

import csv
import email
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = Path(os.environ.get("LOADTEST_RESULTS", REPO / "loadtest" / "results" / "latest.md"))

DURATION = os.environ.get("LOADTEST_DURATION", "2m")
USERS = int(os.environ.get("LOADTEST_USERS", "50"))
SPAWN_RATE = os.environ.get("LOADTEST_SPAWN_RATE", "10")
DATABASE_URL = os.environ.get("LOADTEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leerlab_loadtest")
REDIS_URL = os.environ.get("LOADTEST_REDIS_URL", "redis://127.0.0.1:6379/13")
CORES = os.cpu_count() or 1
WORKERS = int(os.environ.get("LOADTEST_WORKERS", str(2 * CORES + 1)))
CELERY_CONCURRENCY = os.environ.get("LOADTEST_CELERY_CONCURRENCY", "2")
SWEEP_INTERVAL = os.environ.get("LOADTEST_SWEEP_INTERVAL", "30")
NEW_COHORT_EVERY = float(os.environ.get("LOADTEST_NEW_COHORT_EVERY", "20"))
RATELIMIT_PHASE = os.environ.get("LOADTEST_RATELIMIT_PHASE", "20s")
RATELIMIT_USERS = os.environ.get("LOADTEST_RATELIMIT_USERS", "10")
ADVISOR_EMAIL = "adviseur.loadtest@servicepunt.example"


def log(message: str) -> None:
    print(f"[loadtest {datetime.now(UTC):%H:%M:%S}Z] {message}", flush=True)


def seconds(duration: str) -> int:
    """locust's duration syntax: 90, 90s, 2m, 1h30m."""
    if duration.isdigit():
        return int(duration)
    parts = re.findall(r"(\d+)\s*([hms])", duration)
    if not parts:
        raise SystemExit(f"cannot read duration {duration!r} (use e.g. 2m, 90s, 1h30m)")
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in parts)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Processes ----------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        """The whole process group: gunicorn's and Celery's children too."""
        pgid = self.popen.pid
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; children it left behind get the next signal.
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return


class Processes:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.running: list[Process] = []

    def start(self, name: str, command: list[str], env: dict) -> Process:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log_file:
            popen = subprocess.Popen(  # noqa: S603 - fixed commands from this script
                command,
                cwd=REPO,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log_path)
        self.running.append(process)
        return process

    def stop(self, process: Process) -> None:
        process.stop()
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.running)):
            process.stop()
        self.running.clear()


def run(command: list[str], env: dict, what: str) -> None:
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)  # noqa: S603
    if result.returncode != 0:
        raise SystemExit(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


# --- CPU use --------------------------------------------------------------------


class CpuMonitor(threading.Thread):
    """While the load runs: the machine's busy share, and the CPU seconds of
    each of our process trees and of the PostgreSQL and Redis servers (read
    every second, so short-lived processes are counted too)."""

    # Servers that are not our children, by process name.
    SERVERS = {"postgres": "PostgreSQL server", "redis-server": "Redis server"}

    def __init__(self):
        super().__init__(daemon=True)
        import psutil

        self.psutil = psutil
        self.trees: dict[str, Process] = {}
        self.lock = threading.Lock()
        self.baseline: dict[tuple[str, int], float] = {}
        self.seen: dict[tuple[str, int], float] = {}
        self.measuring = False
        self.busy: float = 0.0
        self._machine_start = None
        self.stop_event = threading.Event()

    def watch(self, process: Process) -> None:
        self.trees[process.name] = process

    def _read(self) -> dict[tuple[str, int], float]:
        times: dict[tuple[str, int], float] = {}
        for proc in self.psutil.process_iter(["name", "cpu_times"]):
            label = self.SERVERS.get(proc.info["name"] or "")
            if label and proc.info["cpu_times"] is not None:
                times[(label, proc.pid)] = proc.info["cpu_times"].user + proc.info["cpu_times"].system
        for name, process in list(self.trees.items()):
            try:
                root = self.psutil.Process(process.popen.pid)
                members = [root, *root.children(recursive=True)]
            except self.psutil.Error:
                continue
            for member in members:
                try:
                    cpu = member.cpu_times()
                except self.psutil.Error:
                    continue
                times[(name, member.pid)] = cpu.user + cpu.system
        return times

    def begin(self) -> None:
        with self.lock:
            self._machine_start = self.psutil.cpu_times()
            self.baseline = self._read()
            self.seen = dict(self.baseline)
            self.measuring = True

    def end(self) -> None:
        with self.lock:
            self.seen.update(self._read())
            self.measuring = False
            start, end = self._machine_start, self.psutil.cpu_times()
            total = sum(end) - sum(start)
            idle = (end.idle + getattr(end, "iowait", 0)) - (start.idle + getattr(start, "iowait", 0))
            self.busy = (1 - idle / total) if total > 0 else 0.0

    def run(self) -> None:
        while not self.stop_event.wait(1.0):
            with self.lock:
                if self.measuring:
                    self.seen.update(self._read())

    def cpu_seconds(self) -> dict[str, float]:
        result: dict[str, float] = defaultdict(float)
        for (label, pid), value in self.seen.items():
            result[label] += max(value - self.baseline.get((label, pid), 0.0), 0.0)
        return dict(result)


# --- SMTP ---------------------------------------------------------------------------

CONFIRM_LINK = re.compile(r"https?://\S+?/aanmelding/bevestig/[^/\s]+/")


@dataclass
class Received:
    recipients: tuple[str, ...]
    subject: str
    message_id: str


@dataclass
class SmtpSpool:
    """aiosmtpd handler: records every message and writes each confirmation
    link to spool/<recipient> (atomically), where the officer reads it."""

    spool: Path
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content)
        subject = " ".join(str(make_header(decode_header(message.get("Subject", "")))).split())
        recipients = tuple(r.lower() for r in envelope.rcpt_tos)
        with self.lock:
            self.messages.append(Received(recipients, subject, message.get("Message-ID", "").strip()))
        if "Bevestig" in subject or "Confirm" in subject:
            for part in message.walk():
                if part.get_content_type() == "text/plain" and not part.is_multipart():
                    text = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
                    link = CONFIRM_LINK.search(text)
                    if link:
                        for recipient in recipients:
                            target = self.spool / recipient
                            partial = self.spool / f".{recipient}.tmp"
                            partial.write_text(link.group(0))
                            os.replace(partial, target)
                    break
        return "250 Message accepted for delivery"


# --- Database preparation ------------------------------------------------------------


def recreate_database(url: str) -> None:
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    if "loadtest" not in name:
        raise SystemExit(f"refusing to drop database {name!r}: its name must contain 'loadtest'")
    try:
        connection = psycopg2.connect(
            dbname="postgres",
            user=unquote(parts.username or "") or None,
            password=unquote(parts.password or "") or None,
            host=parts.hostname or None,
            port=parts.port or None,
        )
    except psycopg2.OperationalError as exc:
        raise SystemExit(
            f"cannot reach PostgreSQL for {name!r} ({exc}); start it first (as .ci/run does) "
            "or set LOADTEST_DATABASE_URL"
        ) from exc
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    connection.close()


def flush_redis(url: str) -> None:
    import redis

    if urlsplit(url).path.strip("/") in ("", "0"):
        raise SystemExit("refusing to flush Redis db 0: set LOADTEST_REDIS_URL to a database of its own")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()
    except redis.ConnectionError as exc:
        raise SystemExit(
            f"cannot reach Redis at {url} ({exc}); start it first (as .ci/run does) or set LOADTEST_REDIS_URL"
        ) from exc


# --- The advisor: a new cohort when a lab is full ------------------------------------------------


class Advisor(threading.Thread):
    """Opens a new cohort for every lab whose current cohort no longer takes
    seats, as advisors do, so seats keep opening during the run."""

    def __init__(self, every: float):
        super().__init__(daemon=True)
        self.every = every
        self.stop_event = threading.Event()
        self.created = 0
        self.errors: list[str] = []

    def run(self) -> None:
        from django.db import connection

        try:
            while not self.stop_event.wait(self.every):
                try:
                    self.created += open_cohorts_for_full_labs()
                except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                    self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()


def open_cohorts_for_full_labs() -> int:
    from django.contrib.auth import get_user_model

    from leerlab.models import Cohort, CohortStatus, LeerLab
    from leerlab.services import cohort_create

    advisor = get_user_model().objects.get(email=ADVISOR_EMAIL)
    created = 0
    for lab in LeerLab.objects.all():
        if not Cohort.objects.filter(lab=lab, status__in=[CohortStatus.OPEN, CohortStatus.STARTED]).exists():
            cohort = cohort_create(lab_id=lab.pk)
            cohort.advisors.add(advisor)
            created += 1
    return created


def add_advisor() -> None:
    from django.contrib.auth import get_user_model

    from leerlab.models import Cohort

    user = get_user_model().objects.create_user(
        username="adviseur-loadtest", email=ADVISOR_EMAIL, password=None, is_staff=True
    )
    for cohort in Cohort.objects.all():
        cohort.advisors.add(user)


# --- Waiting until everything is sent ------------------------------------------------------


def snapshot(app) -> tuple:
    from django.db.models import Count

    from leerlab.models import Cohort
    from outbox.models import MessageStatus, OutboxMessage
    from registrations.models import Registration

    with app.connection_for_write() as conn:
        queue = conn.default_channel.client.llen("celery")
    return (
        OutboxMessage.objects.filter(status=MessageStatus.QUEUED).count(),
        queue,
        OutboxMessage.objects.count(),
        OutboxMessage.objects.filter(status=MessageStatus.SENT).count(),
        tuple(Registration.objects.order_by("status").values_list("status").annotate(n=Count("pk"))),
        tuple(Cohort.objects.order_by("pk").values_list("status", "started_at")),
    )


def wait_until_quiet(app, smtp: SmtpSpool, timeout: float = 240) -> bool:
    """Until no email is queued, the broker queue is empty, the worker runs
    nothing and nothing changed for 3 seconds."""
    deadline = time.monotonic() + timeout
    last, since = None, None
    while time.monotonic() < deadline:
        state = (snapshot(app), len(smtp.messages))
        busy = state[0][0] > 0 or state[0][1] > 0
        if not busy:
            active = app.control.inspect(timeout=1.0).active() or {}
            busy = any(active.values())
        if busy or state != last:
            last, since = state, time.monotonic()
        elif time.monotonic() - since >= 3:
            return True
        time.sleep(0.5)
    return False


# --- Locust ---------------------------------------------------------------------------------


def run_locust(
    processes: Processes,
    env: dict,
    *,
    name: str,
    host: str,
    users: str,
    duration: str,
    prefix: Path,
    outcomes: Path,
    monitor: "CpuMonitor | None" = None,
) -> Process:
    command = [
        str(BIN / "locust"),
        "-f",
        str(REPO / "loadtest" / "locustfile.py"),
        "--headless",
        "-u",
        users,
        "-r",
        SPAWN_RATE,
        "-t",
        duration,
        "--host",
        host,
        "--csv",
        str(prefix),
        "--only-summary",
        "--stop-timeout",
        "10",
    ]
    process = processes.start(name, command, {**env, "LOADTEST_OUTCOMES": str(outcomes)})
    if monitor is not None:
        monitor.watch(process)
    try:
        process.popen.wait(timeout=seconds(duration) + 120)
    except subprocess.TimeoutExpired:
        log("locust did not finish in time; stopping it")
    processes.stop(process)
    return process


def read_stats(prefix: Path) -> tuple[dict, list[dict], list[dict]]:
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    overall = next(r for r in rows if r["Name"] == "Aggregated")
    endpoints = [r for r in rows if r["Name"] != "Aggregated"]
    failures_path = Path(f"{prefix}_failures.csv")
    failures = list(csv.DictReader(failures_path.open(newline=""))) if failures_path.exists() else []
    return overall, endpoints, failures


def access_log_statuses(path: Path) -> Counter:
    statuses: Counter = Counter()
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            status = line.split(" ", 1)[0]
            if status.isdigit():
                statuses[int(status)] += 1
    return statuses


# --- Checks ------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    # A known, minor issue is reported but does not fail the run.
    fatal: bool = True


def check_rules(smtp: SmtpSpool, accepted_signups: int, newly_confirmed: int) -> tuple[list[Check], dict]:
    from django.db.models import Count, Q

    from leerlab.models import Cohort, CohortStatus
    from outbox.models import MessageStatus, OutboxMessage
    from outbox.services import _message_id
    from registrations.models import LIVE_STATUSES, Registration, RegistrationStatus

    checks: list[Check] = []
    cohorts = list(
        Cohort.objects.select_related("lab")
        .prefetch_related("advisors")
        .annotate(
            seats=Count(
                "registrations__municipality",
                filter=Q(registrations__status=RegistrationStatus.CONFIRMED),
                distinct=True,
            ),
            confirmed_rows=Count(
                "registrations", filter=Q(registrations__status=RegistrationStatus.CONFIRMED)
            ),
            waiting=Count("registrations", filter=Q(registrations__status=RegistrationStatus.WAITLISTED)),
            pending=Count("registrations", filter=Q(registrations__status=RegistrationStatus.PENDING)),
        )
        .order_by("lab__position", "number")
    )

    over = [
        f"{c} ({c.seats}/{c.lab.max_municipalities})" for c in cohorts if c.seats > c.lab.max_municipalities
    ]
    checks.append(
        Check("no cohort has more confirmed municipalities than its maximum", not over, ", ".join(over))
    )

    doubles = (
        Registration.objects.filter(status__in=LIVE_STATUSES)
        .values("cohort_id", "municipality_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    duplicate_seats = [c for c in cohorts if c.confirmed_rows != c.seats]
    checks.append(
        Check(
            "no municipality has two live registrations in a cohort",
            not doubles.exists() and not duplicate_seats,
            f"{list(doubles)[:5]} {duplicate_seats[:5]}",
        )
    )

    wrong_start = [
        f"{c}: {c.seats} seats, started_at {'set' if c.started_at else 'unset'}"
        for c in cohorts
        if (c.started_at is not None) != (c.seats >= c.lab.min_municipalities)
    ]
    checks.append(
        Check(
            "started_at is set if and only if the minimum is confirmed",
            not wrong_start,
            "; ".join(wrong_start),
        )
    )

    wrong_status = [
        f"{c}: status {c.status}, started_at {'set' if c.started_at else 'unset'}"
        for c in cohorts
        if (c.started_at is not None and c.status == CohortStatus.OPEN)
        or (c.started_at is None and c.status == CohortStatus.STARTED)
    ]
    checks.append(Check("status matches started_at", not wrong_status, "; ".join(wrong_status)))

    not_closed = [
        f"{c}: {c.seats} seats, status {c.status}"
        for c in cohorts
        if c.seats >= c.lab.max_municipalities and (c.status != CohortStatus.CLOSED or c.closed_at is None)
    ]
    checks.append(Check("a full cohort is closed", not not_closed, "; ".join(not_closed)))

    waiting_with_room = [
        f"{c}: {c.waiting} waiting, {c.seats}/{c.lab.max_municipalities} seats"
        for c in cohorts
        if c.waiting
        and c.seats < c.lab.max_municipalities
        and c.status in (CohortStatus.OPEN, CohortStatus.STARTED)
    ]
    checks.append(
        Check("nobody waits while a seat is free", not waiting_with_room, "; ".join(waiting_with_room))
    )
    # Issue #6: a waitlist moves into the free seats of a later cohort of the
    # same lab (one an advisor opened, or the automatic next cohort).
    waiting_behind_room = [
        f"{c}: {c.waiting} waiting while {later} has {later.seats}/{later.lab.max_municipalities} seats"
        for c in cohorts
        if c.waiting and c.status == CohortStatus.CLOSED and c.lab.auto_next_cohort
        for later in cohorts
        if later.lab_id == c.lab_id
        and later.number > c.number
        and later.status in (CohortStatus.OPEN, CohortStatus.STARTED)
        and later.seats < later.lab.max_municipalities
    ]
    checks.append(
        Check(
            "no waitlist while a later cohort of the lab has a free seat",
            not waiting_behind_room,
            "; ".join(waiting_behind_room),
        )
    )

    # "van start": every participant and advisor of a started cohort exactly once.
    start_kinds = ("lab_started", "lab_started_advisor")
    start_messages = Counter(
        OutboxMessage.objects.filter(kind__in=start_kinds).values_list("cohort_id", "to").iterator()
    )
    missing, extra = [], []
    for cohort in cohorts:
        expected = set()
        if cohort.started_at is not None:
            expected |= set(
                Registration.objects.filter(cohort=cohort, status=RegistrationStatus.CONFIRMED).values_list(
                    "contact_email", flat=True
                )
            )
            expected |= {a.email for a in cohort.advisors.all() if a.email}
        got = {to: n for (cohort_id, to), n in start_messages.items() if cohort_id == cohort.pk}
        missing += [f"{cohort}: {to}" for to in expected if got.get(to, 0) == 0]
        extra += [f"{cohort}: {to} x{n}" for to, n in got.items() if n > 1 or to not in expected]
    checks.append(
        Check(
            "every participant and advisor of a started cohort has exactly one 'van start' email",
            not missing and not extra,
            f"missing {missing[:5]} extra {extra[:5]}",
        )
    )

    unsent = OutboxMessage.objects.exclude(status=MessageStatus.SENT).count()
    checks.append(Check("every outbox email was sent", unsent == 0, f"{unsent} not sent"))

    received = Counter(m.message_id for m in smtp.messages)
    sent = {_message_id(m): m for m in OutboxMessage.objects.filter(status=MessageStatus.SENT)}
    twice = [mid for mid, n in received.items() if n > 1]
    not_received = [mid for mid in sent if mid not in received]
    unknown = [mid for mid in received if mid not in sent]
    checks.append(
        Check(
            "the SMTP server received every sent email exactly once, and nothing else",
            not twice and not not_received and not unknown,
            f"twice {len(twice)}, not received {len(not_received)}, unknown {len(unknown)}",
        )
    )
    # Start emails by their Message-ID (stable per outbox row): the subject
    # is Dutch or English depending on the officer's language.
    start_ids = {_message_id(m) for m in OutboxMessage.objects.filter(kind__in=start_kinds)}
    smtp_start = Counter((m.recipients, m.subject) for m in smtp.messages if m.message_id in start_ids)
    start_total = OutboxMessage.objects.filter(kind__in=start_kinds).count()
    checks.append(
        Check(
            "'van start' emails received: once per recipient and cohort, as many as in the outbox",
            all(n == 1 for n in smtp_start.values()) and sum(smtp_start.values()) == start_total,
            f"SMTP {sum(smtp_start.values())}, outbox {start_total}",
        )
    )

    registrations = Registration.objects.count()
    confirm_requests = Counter(
        OutboxMessage.objects.filter(kind="confirm_request").values_list("registration_id", flat=True)
    )
    # Every simulated signup has an address of its own: an address with two
    # registrations is a double submit that became two signups.
    split = list(
        Registration.objects.values("contact_email")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .values_list("n", flat=True)
    )
    extra_rows = sum(n - 1 for n in split)
    checks.append(
        Check(
            "one registration and one confirmation email per accepted signup",
            registrations - extra_rows == accepted_signups
            and len(confirm_requests) == registrations
            and all(n == 1 for n in confirm_requests.values()),
            f"{registrations} registrations ({extra_rows} from split double submits), "
            f"{accepted_signups} accepted signups, {sum(confirm_requests.values())} confirmation emails",
        )
    )
    checks.append(
        Check(
            "a double submit is one signup (also when a new cohort opens in between)",
            extra_rows == 0,
            f"{len(split)} double submit(s) became two signups in two cohorts of the same lab",
        )
    )

    used = Registration.objects.filter(token_used_at__isnull=False).count()
    outcome_mails = Counter(
        OutboxMessage.objects.filter(kind__in=("seat_confirmed", "waitlisted")).values_list(
            "registration_id", flat=True
        )
    )
    checks.append(
        Check(
            "every confirmation seen by an officer is in the database, with one outcome email",
            used == newly_confirmed
            and len(outcome_mails) == used
            and all(n == 1 for n in outcome_mails.values()),
            f"{newly_confirmed} confirmations seen, {used} in the database, {sum(outcome_mails.values())} outcome emails",
        )
    )

    by_status = Counter(Registration.objects.values_list("status", flat=True))
    by_kind = Counter(OutboxMessage.objects.values_list("kind", flat=True))
    facts = {
        "cohorts": cohorts,
        "registrations": by_status,
        "emails": by_kind,
        "smtp_received": len(smtp.messages),
    }
    return checks, facts


# --- Report -----------------------------------------------------------------------------------


def ms(value: str) -> str:
    try:
        return f"{float(value):.0f}"
    except ValueError:
        return value or "-"


def endpoint_table(endpoints: list[dict]) -> list[str]:
    lines = [
        "| endpoint | requests | failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in sorted(endpoints, key=lambda r: -int(r["Request Count"])):
        name = f"{row['Type']} {row['Name']}"
        lines.append(
            f"| `{name}` | {row['Request Count']} | {row['Failure Count']} | {float(row['Requests/s']):.1f} "
            f"| {ms(row['50%'])} | {ms(row['95%'])} | {ms(row['99%'])} | {ms(row['Max Response Time'])} |"
        )
    return lines


def report(ctx: dict) -> str:
    overall, endpoints, failures = ctx["stats"]
    statuses: Counter = ctx["statuses"]
    five_xx = sum(n for s, n in statuses.items() if s >= 500)
    facts = ctx["facts"]
    cpu = ctx["cpu"]
    lines = [
        "# Load test results",
        "",
        f"Run {ctx['started']:%Y-%m-%d %H:%M} UTC on commit `{ctx['commit']}`: {USERS} simulated officers "
        f"(spawn rate {SPAWN_RATE}/s) for {DURATION} against gunicorn on 127.0.0.1 "
        f"({WORKERS} sync workers), PostgreSQL, Redis, a Celery worker (concurrency {CELERY_CONCURRENCY}) "
        f"and beat (sweep every {SWEEP_INTERVAL} s), SMTP to a local aiosmtpd. Rate limits off "
        "(every simulated officer comes from 127.0.0.1).",
        "",
        f"Machine: {CORES} CPU cores, shared by the load generator (locust), gunicorn, the Celery "
        "worker, PostgreSQL and Redis (and whatever else runs on the machine at the time); the figures "
        "are therefore a lower bound for a server of its own. "
        f"CPU busy during the load: {cpu['busy'] * 100:.0f}% of the machine. CPU seconds used during the "
        "load (PostgreSQL and Redis: the whole server, other databases included): "
        + ", ".join(f"{name} {value:.0f} s" for name, value in sorted(cpu["seconds"].items()))
        + ".",
        "",
        "## Overall",
        "",
        "| requests | req/s | failures | 5xx | p50 ms | p95 ms | p99 ms | max ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {overall['Request Count']} | {float(overall['Requests/s']):.1f} | {overall['Failure Count']} "
        f"| {five_xx} | {ms(overall['50%'])} | {ms(overall['95%'])} | {ms(overall['99%'])} "
        f"| {ms(overall['Max Response Time'])} |",
        "",
        "HTTP statuses in gunicorn's access log: "
        + ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        + ".",
        "",
        "## Per endpoint",
        "",
        *endpoint_table(endpoints),
        "",
    ]
    if failures:
        lines += ["Failures:", ""]
        lines += [f"- {f['Method']} `{f['Name']}`: {f['Error']} ({f['Occurrences']}x)" for f in failures]
        lines.append("")
    lines += ["## What the simulated officers saw", ""]
    lines += [f"- {name}: {n}" for name, n in ctx["outcomes"].items()]
    regs = facts["registrations"]
    lines += [
        "",
        "## The database afterwards",
        "",
        f"Registrations: {sum(regs.values())} (pending {regs.get('pending', 0)}, confirmed with a seat "
        f"{regs.get('confirmed', 0)}, waitlisted {regs.get('waitlisted', 0)}, withdrawn "
        f"{regs.get('withdrawn', 0)}). Cohorts opened by the advisor during the run: {ctx['cohorts_created']}.",
        "",
        "Emails: "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(facts["emails"].items()))
        + f"; the SMTP server received {facts['smtp_received']}.",
        "",
        "| cohort | status | seats (max) | waitlist | pending | started | closed |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for c in facts["cohorts"]:
        lines.append(
            f"| {c.lab.slug} #{c.number} | {c.status} | {c.seats} ({c.lab.max_municipalities}) | {c.waiting} "
            f"| {c.pending} | {'yes' if c.started_at else 'no'} | {'yes' if c.closed_at else 'no'} |"
        )
    if ctx.get("ratelimit"):
        rl = ctx["ratelimit"]
        lines += [
            "",
            f"## Phase 2: rate limits on ({rl['users']} officers, {rl['duration']})",
            "",
            f"{rl['requests']} requests, {rl['429']} answered 429 (too many requests from one address, "
            f"by design), {rl['5xx']} 5xx, {rl['failures']} failures.",
        ]
    lines += ["", "## Checks", "", "| check | result | detail |", "| --- | --- | --- |"]
    for check in ctx["checks"]:
        detail = check.detail.replace("|", "/") if not check.ok else ""
        result = "ok" if check.ok else ("**FAILED**" if check.fatal else "warning")
        lines.append(f"| {check.name} | {result} | {detail} |")
    lines.append("")
    return "\n".join(lines)


# --- Main -----------------------------------------------------------------------------------


def install_requirements() -> None:
    if os.environ.get("LOADTEST_SKIP_INSTALL") == "1":
        return
    log("installing requirements-load.txt")
    run(
        [sys.executable, "-m", "pip", "install", "-q", "-r", str(REPO / "requirements-load.txt")],
        dict(os.environ),
        "pip install",
    )


def portal_env(*, port: int, smtp_port: int, static_root: Path, ratelimit: bool) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "EMAIL_", "LEERLAB_", "CELERY_"))
        and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "leerlab.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": SECRET_KEY,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SSL_REDIRECT": "0",
            "DJANGO_SECURE_COOKIES": "0",
            "DJANGO_HSTS_SECONDS": "0",
            "DJANGO_STATIC_ROOT": str(static_root),
            "LEERLAB_RATELIMIT_ENABLED": "1" if ratelimit else "0",
            "LEERLAB_SWEEP_INTERVAL": SWEEP_INTERVAL,
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": REDIS_URL,
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "EMAIL_USE_TLS": "0",
            "EMAIL_TIMEOUT": "10",
            "SITE_URL": f"http://127.0.0.1:{port}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


SECRET_KEY = secrets.token_urlsafe(50)


def start_gunicorn(processes: Processes, env: dict, port: int, access_log: Path, name: str) -> Process:
    process = processes.start(
        name,
        [
            str(BIN / "gunicorn"),
            "leerlab.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--timeout",
            "30",
            "--graceful-timeout",
            "10",
            "--access-logfile",
            str(access_log),
            # Status, method and time only: no paths (tokens), no addresses.
            "--access-logformat",
            "%(s)s %(m)s %(M)s",
        ],
        env,
    )
    wait_http(f"http://127.0.0.1:{port}/", process)
    return process


def wait_http(url: str, process: Process, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise SystemExit(f"{process.name} exited:\n{process.log_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our loopback server
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{process.name} not answering {url} after {timeout}s:\n{process.log_text()[-3000:]}")


def wait_log(process: Process, marker: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in process.log_text():
            return
        if not process.alive():
            break
        time.sleep(0.3)
    raise SystemExit(f"{process.name} not ready:\n{process.log_text()[-3000:]}")


def start_celery(processes: Processes, env: dict, workdir: Path) -> tuple[Process, Process]:
    celery = str(BIN / "celery")
    worker = processes.start(
        "celery-worker",
        [
            celery,
            "-A",
            "leerlab",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={CELERY_CONCURRENCY}",
            "--without-gossip",
            "--without-mingle",
            "-n",
            "loadtest@%h",
        ],
        env,
    )
    wait_log(worker, " ready.")
    beat = processes.start(
        "celery-beat",
        [celery, "-A", "leerlab", "beat", "--loglevel=INFO", "--schedule", str(workdir / "beat-schedule")],
        env,
    )
    return worker, beat


def ratelimit_phase(processes: Processes, locust_env: dict, rl_env: dict, *, port: int, workdir: Path):
    """Phase 2: the same load with the rate limits on, for a short while.
    Returns the figures, what the officers saw, and the gunicorn process."""
    gunicorn = start_gunicorn(processes, rl_env, port, workdir / "access-ratelimit.log", "gunicorn-rl")
    prefix = workdir / "ratelimit"
    outcomes_path = workdir / "outcomes-ratelimit.json"
    run_locust(
        processes,
        {**locust_env, "LOADTEST_EXPECT_429": "1"},
        name="locust-ratelimit",
        host=f"http://127.0.0.1:{port}",
        users=RATELIMIT_USERS,
        duration=RATELIMIT_PHASE,
        prefix=prefix,
        outcomes=outcomes_path,
    )
    processes.stop(gunicorn)
    overall, _, _ = read_stats(prefix)
    statuses = access_log_statuses(workdir / "access-ratelimit.log")
    figures = {
        "users": RATELIMIT_USERS,
        "duration": RATELIMIT_PHASE,
        "requests": overall["Request Count"],
        "failures": int(overall["Failure Count"]),
        "429": statuses.get(429, 0),
        "5xx": sum(n for status, n in statuses.items() if status >= 500),
    }
    outcomes = json.loads(outcomes_path.read_text()) if outcomes_path.exists() else {}
    return figures, outcomes, gunicorn


def git_commit() -> str:
    git = shutil.which("git")
    if git is None:
        return "unknown"
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [git, "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    return result.stdout.strip() or "unknown"


def main() -> int:
    install_requirements()
    started = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="leerlab-loadtest-"))
    spool = workdir / "spool"
    spool.mkdir()
    static_root = workdir / "static"
    port = int(os.environ.get("LOADTEST_PORT", free_port()))
    host = f"http://127.0.0.1:{port}"
    processes = Processes(workdir)
    controller = None
    monitor = None
    advisor = None
    succeeded = False

    def on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    log(f"work directory {workdir}")
    try:
        import logging

        from aiosmtpd.controller import Controller

        smtp = SmtpSpool(spool)
        smtp_port = free_port()
        # aiosmtpd logs every SMTP command (addresses included) at INFO.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        controller = Controller(smtp, hostname="127.0.0.1", port=smtp_port)
        controller.start()

        env = portal_env(port=port, smtp_port=smtp_port, static_root=static_root, ratelimit=False)
        log(f"fresh database {urlsplit(DATABASE_URL).path.lstrip('/')}, Redis {REDIS_URL}")
        recreate_database(DATABASE_URL)
        flush_redis(REDIS_URL)
        run([sys.executable, "manage.py", "migrate", "--no-input"], env, "migrate")
        run([sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"], env, "collectstatic")

        # This process checks the database afterwards with the same settings.
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        import django

        django.setup()
        from leerlab.celery import app

        add_advisor()

        monitor = CpuMonitor()
        gunicorn = start_gunicorn(processes, env, port, workdir / "access.log", "gunicorn")
        monitor.watch(gunicorn)
        worker, beat = start_celery(processes, env, workdir)
        monitor.watch(worker)
        monitor.watch(beat)
        monitor.start()
        server_processes = [gunicorn, worker, beat]

        locust_env = {**env, "LOADTEST_SPOOL": str(spool)}
        if NEW_COHORT_EVERY > 0:
            advisor = Advisor(NEW_COHORT_EVERY)
            advisor.start()
        log(f"locust: {USERS} users for {DURATION} against {host}")
        monitor.begin()
        locust_prefix = workdir / "loadtest"
        outcomes_path = workdir / "outcomes.json"
        run_locust(
            processes,
            locust_env,
            name="locust",
            host=host,
            users=str(USERS),
            duration=DURATION,
            prefix=locust_prefix,
            outcomes=outcomes_path,
            monitor=monitor,
        )
        monitor.end()
        if advisor:
            advisor.stop_event.set()
            advisor.join()
        log("load done; waiting for the worker to send every email")
        quiet = wait_until_quiet(app, smtp)

        ratelimit = None
        rl_outcomes: dict = {}
        if RATELIMIT_PHASE not in ("", "0") and seconds(RATELIMIT_PHASE) > 0:
            log(f"phase 2: rate limits on, {RATELIMIT_USERS} users for {RATELIMIT_PHASE}")
            processes.stop(gunicorn)
            rl_env = portal_env(port=port, smtp_port=smtp_port, static_root=static_root, ratelimit=True)
            ratelimit, rl_outcomes, gunicorn_rl = ratelimit_phase(
                processes, locust_env, rl_env, port=port, workdir=workdir
            )
            server_processes.append(gunicorn_rl)
            quiet = wait_until_quiet(app, smtp) and quiet

        log("final sweep")
        from leerlab.services import sweep

        sweep()
        quiet = wait_until_quiet(app, smtp) and quiet
        monitor.stop_event.set()

        outcomes = json.loads(outcomes_path.read_text()) if outcomes_path.exists() else {}
        accepted = outcomes.get("signup accepted", 0) + rl_outcomes.get("signup accepted", 0)
        newly = sum(
            n for k, n in (Counter(outcomes) + Counter(rl_outcomes)).items() if k.startswith("confirmed:")
        )
        checks, facts = check_rules(smtp, accepted, newly)
        stats = read_stats(locust_prefix)
        statuses = access_log_statuses(workdir / "access.log")
        five_xx = sum(n for s, n in statuses.items() if s >= 500)
        failed_requests = int(stats[0]["Failure Count"])
        checks.insert(0, Check("no 5xx response (gunicorn access log)", five_xx == 0, f"{five_xx} responses"))
        checks.insert(
            1, Check("no failed request (locust)", failed_requests == 0, f"{failed_requests} failures")
        )
        if ratelimit:
            checks.insert(
                2,
                Check(
                    "rate limits on: 429s, no 5xx, no failed request",
                    ratelimit["5xx"] == 0 and ratelimit["failures"] == 0,
                    f"{ratelimit['5xx']} 5xx, {ratelimit['failures']} failures",
                ),
            )
        checks.append(Check("every email left the outbox in time", quiet, "the worker did not become idle"))
        if advisor and advisor.errors:
            checks.append(Check("the advisor could open cohorts", False, "; ".join(advisor.errors[:3])))
        server_errors = sum(p.log_text().count("Traceback") for p in server_processes)
        checks.append(
            Check(
                "no traceback in the gunicorn, worker and beat logs",
                server_errors == 0,
                f"{server_errors} tracebacks",
            )
        )

        commit = git_commit()
        text = report(
            {
                "started": started,
                "commit": commit,
                "stats": stats,
                "statuses": statuses,
                "facts": facts,
                "cpu": {"busy": monitor.busy, "seconds": monitor.cpu_seconds()},
                "outcomes": outcomes,
                "cohorts_created": advisor.created if advisor else 0,
                "ratelimit": ratelimit,
                "checks": checks,
            }
        )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        print(text, flush=True)
        failed = [c for c in checks if not c.ok and c.fatal]
        log(f"report written to {RESULTS}")
        if failed:
            log(f"{len(failed)} check(s) FAILED; logs kept in {workdir}")
            return 1
        succeeded = True
        log("all checks passed")
        return 0
    finally:
        if advisor:
            advisor.stop_event.set()
        if monitor:
            monitor.stop_event.set()
        processes.stop_all()
        if controller is not None:
            controller.stop()
        if succeeded and os.environ.get("LOADTEST_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        elif not succeeded:
            log(f"logs kept in {workdir}")


if __name__ == "__main__":
    sys.exit(main())
