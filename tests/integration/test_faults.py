"""The portal survives production faults (#3), proven against real
processes: a private redis-server that is killed, frozen and restarted, an
SMTP server that refuses or stalls, Celery workers that are SIGKILLed,
PostgreSQL backends that are terminated under gunicorn and the worker, two
beats running at once, a double submit fired from ten threads, and a
confirmation racing the cohort's evaluation for the locks.

Nothing here is mocked (the lock race only gets a pause, to force the
interleaving). The emails counted are the ones the SMTP server received;
the rows are the ones in the real PostgreSQL test database.
Every process a test starts runs in its own process group and is ended at
teardown, whatever happened (tests/integration/faults_support.py).
"""

import logging
import re
import shutil
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse
from django.utils import timezone

from leerlab import tasking
from leerlab.celery import app as celery_app
from leerlab.models import CohortStatus
from leerlab.services import cohort_evaluate, cohort_lock
from leerlab.tasks import sweep
from municipalities.models import Municipality
from outbox.models import MessageStatus, OutboxMessage
from registrations import services as registration_services
from registrations.models import Registration, RegistrationStatus
from registrations.services import ConfirmationResult, registration_confirm
from tests.factories import RegistrationFactory, UserFactory

from .conftest import _reset_broker_connections, wait_until
from .faults_support import FaultySmtp, Processes, RedisServer, database_url, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(120),
]

# Subjects as fixed in DESIGN.md and the email templates.
CONFIRM_REQUEST = "Bevestig"
STARTED = "van start"
SEAT = "Aanmelding geslaagd"
# The confirmation pages (templates/registrations/confirm_seat.html).
SEAT_OUTCOME = 'data-outcome="seat"'
ALREADY_CONFIRMED = "al eerder bevestigd"
CONFIRM_PATH = re.compile(r"/aanmelding/bevestig/([A-Za-z0-9_-]+)/")

SEND = "outbox.tasks.send_message"
EVALUATE = "leerlab.tasks.evaluate_cohort"
SWEEP = "leerlab.tasks.sweep"

# The longest a signup or confirmation may take while Redis is down: the
# change is committed before anything is published, so a broker problem
# may cost a moment, never the officer's request.
MAX_REQUEST_SECONDS = 2.0
# A Redis that hangs is worse: the first request that publishes waits for
# the socket timeouts; every other one only for the cache's.
HUNG_REDIS_FIRST_PUBLISH_SECONDS = 4.0
HUNG_REDIS_REQUEST_SECONDS = 1.5


# --- Fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_redis(postgres, tmp_path_factory):
    """A redis-server of this module's own, to kill and freeze at will
    without touching the Redis that other tests (or people) use."""
    if shutil.which("redis-server") is None:
        pytest.skip("the fault tests start their own redis-server: install Redis")
    server = RedisServer(directory=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def broker(private_redis) -> str:
    """While this module runs, the test process publishes tasks to the
    private Redis instead of running them eagerly."""
    saved = {"task_always_eager": celery_app.conf.task_always_eager, "broker_url": celery_app.conf.broker_url}
    _reset_broker_connections(celery_app)
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = private_redis.url()
    yield private_redis.url()
    _reset_broker_connections(celery_app)
    celery_app.conf.task_always_eager = saved["task_always_eager"]
    celery_app.conf.broker_url = saved["broker_url"]


@pytest.fixture(scope="module")
def mail_server():
    # aiosmtpd logs every SMTP command (addresses included) at INFO.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    server = FaultySmtp(port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(mail_server) -> FaultySmtp:
    """The SMTP server, empty and accepting everything."""
    mail_server.reset()
    yield mail_server
    mail_server.reset()


@pytest.fixture(autouse=True)
def healthy_redis(private_redis, broker, monkeypatch):
    """Each test starts with a running, empty Redis and fresh broker
    connections, whatever the test before did to them."""
    # A test with a hanging Redis pauses publishing in this process.
    monkeypatch.setattr(tasking, "_paused_until", 0.0)
    if private_redis.frozen:
        private_redis.thaw()
    if not private_redis.running:
        private_redis.start()
    private_redis.flush()
    _reset_broker_connections(celery_app)
    yield private_redis
    _reset_broker_connections(celery_app)


@pytest.fixture
def processes(private_redis, broker, mailbox, tmp_path):
    """Starts workers, beats and gunicorn for a test; stops them all after
    it, even when it failed (their logs then show in the report)."""
    registry = Processes(app=celery_app, smtp=mailbox, broker_url=broker, tmp_path=tmp_path)
    yield registry
    if private_redis.frozen:
        private_redis.thaw()
    registry.stop_all()


@pytest.fixture(scope="module")
def static_root(tmp_path_factory):
    """collectstatic for gunicorn's DJANGO_DEBUG=0 (the manifest storage
    needs its manifest). Without compression: same manifest, a tenth of the
    time."""
    from django.core.management import call_command

    root = tmp_path_factory.mktemp("static")
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    with override_settings(STATIC_ROOT=root, STORAGES=storages):
        call_command("collectstatic", interactive=False, verbosity=0)
    return root


# --- Helpers ---------------------------------------------------------------------


def _municipalities(count: int) -> list[Municipality]:
    found = list(
        Municipality.objects.filter(province="Noord-Holland", is_active=True).order_by("cbs_code")[:count]
    )
    assert len(found) == count
    return found


def _contact_email(municipality: Municipality) -> str:
    return f"ambtenaar.{municipality.cbs_code.lower()}@example.nl"


def _signup_data(municipality: Municipality) -> dict[str, str]:
    return {
        "municipality": municipality.cbs_code,
        "contact_name": f"Contactpersoon {municipality.name}",
        "contact_email": _contact_email(municipality),
        "contact_role": "Beleidsmedewerker warmtetransitie",
        "case_title": f"Wijkaanpak {municipality.name}",
        "case_description": "Een wijk die stap voor stap aardgasvrij wordt.",
        "privacy_consent": "on",
    }


def _confirmed(cohort, municipality) -> Registration:
    """A pending signup, confirmed through the service in this process."""
    registration = RegistrationFactory(
        cohort=cohort, municipality=municipality, contact_email=_contact_email(municipality)
    )
    result = registration_confirm(token=registration.token)
    assert result.newly_confirmed and result.has_seat
    return result.registration


def _token_in(text: str) -> str:
    match = CONFIRM_PATH.search(text)
    assert match, "the confirmation email carries the confirmation link"
    return match.group(1)


def _outbox_kinds() -> dict[str, int]:
    return dict(Counter(OutboxMessage.objects.values_list("kind", flat=True)))


def _recipients(mailbox, subject: str) -> Counter:
    return Counter(r for m in mailbox.with_subject(subject) for r in m.recipients)


def _make_due() -> None:
    """Skip the backoff instead of waiting for it."""
    OutboxMessage.objects.filter(status=MessageStatus.QUEUED).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def _settle(worker) -> None:
    """Until the worker is idle and a straggler would have arrived."""
    worker.wait_idle()
    time.sleep(1)
    worker.wait_idle()


def _sweep_and_wait(worker) -> None:
    swept = worker.received(SWEEP)
    sweep.delay()
    wait_until(lambda: worker.received(SWEEP) > swept, timeout=15, message="the worker to receive the sweep")
    worker.wait_idle()


def _assert_each_email_once(mailbox, participants: list[str], advisors: list[str], *, confirm_requests=False):
    """Exactly the expected emails arrived, each exactly once."""
    assert _recipients(mailbox, STARTED) == Counter({r: 1 for r in [*participants, *advisors]})
    assert _recipients(mailbox, SEAT) == Counter({r: 1 for r in participants})
    expected = 2 * len(participants) + len(advisors)
    if confirm_requests:
        assert _recipients(mailbox, CONFIRM_REQUEST) == Counter({r: 1 for r in participants})
        expected += len(participants)
    assert len(mailbox.messages) == expected, [m.subject for m in mailbox.messages]
    message_ids = [m.message_id for m in mailbox.messages]
    assert len(set(message_ids)) == len(message_ids)


def _redis_cache(url: str) -> dict:
    """The production cache (leerlab/settings.py) at the private Redis."""
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "leerlab",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5, "IGNORE_EXCEPTIONS": True},
        }
    }


# --- 1. Redis down ---------------------------------------------------------------


def _sign_up_and_confirm_through_the_views(client, cohort, municipalities) -> list[tuple[str, float]]:
    """Three officers sign up and confirm through the real views; every
    response is the normal one. Returns (request, seconds) per request."""
    lab = cohort.lab
    signup_url = reverse("registrations:signup", kwargs={"slug": lab.slug})
    sent_url = reverse("registrations:signup_sent", kwargs={"slug": lab.slug})
    timings = []
    for municipality in municipalities:
        started = time.monotonic()
        response = client.post(signup_url, _signup_data(municipality))
        timings.append(("signup", time.monotonic() - started))
        assert response.status_code == 302, response.status_code
        assert response["Location"] == sent_url
        assert client.get(sent_url).status_code == 200

    registrations = list(Registration.objects.filter(cohort=cohort).order_by("pk"))
    assert [r.municipality_id for r in registrations] == [m.pk for m in municipalities]
    assert {r.status for r in registrations} == {RegistrationStatus.PENDING}
    for registration in registrations:
        # The confirmation email never left: its link is read from the outbox.
        request_email = OutboxMessage.objects.get(kind="confirm_request", registration=registration)
        confirm_url = reverse("registrations:confirm", kwargs={"token": _token_in(request_email.body_text)})
        started = time.monotonic()
        response = client.post(confirm_url)
        timings.append(("confirm", time.monotonic() - started))
        assert response.status_code == 200, response.status_code
        assert SEAT_OUTCOME in response.content.decode()
    return timings


def _recover_after_redis_outage(cohort, mailbox, processes, municipalities, advisor) -> None:
    """Redis is back: a worker starts and one sweep, published through the
    test process' own (stale) broker connections, finds all the work."""
    worker = processes.worker(env={"LEERLAB_MAIL_STUCK_AFTER": "1"})
    sweep.delay()
    contacts = [_contact_email(m) for m in municipalities]
    wait_until(
        lambda: len(mailbox.messages) >= 3 * len(contacts) + 1,
        message="confirmation, seat and start emails after Redis is back",
    )
    _settle(worker)
    # More sweeps find nothing left to do.
    _sweep_and_wait(worker)
    _settle(worker)

    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED
    _assert_each_email_once(mailbox, contacts, [advisor.email], confirm_requests=True)
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {(MessageStatus.SENT, 1)}
    assert worker.received(SEND) >= len(mailbox.messages)


def test_officers_sign_up_and_confirm_while_redis_is_down(
    client, cohort, settings, private_redis, mailbox, processes
):
    """#3: with Redis (Celery's broker and the cache) dead, three officers
    sign up and confirm through the views and get the normal pages, fast;
    rows and outbox messages are stored. When Redis is back (empty) a
    worker and the sweep send the confirmation, seat and "van start"
    emails, each exactly once."""
    settings.CACHES = _redis_cache(private_redis.url(1))
    # The rate limits count in that cache: a dead cache must not refuse anyone.
    settings.RATELIMIT_ENABLE = True
    advisor = UserFactory(staff=True)
    cohort.advisors.add(advisor)
    municipalities = _municipalities(3)

    private_redis.kill()
    timings = _sign_up_and_confirm_through_the_views(client, cohort, municipalities)

    print("Redis down, seconds per request:", [(name, round(s, 3)) for name, s in timings])
    assert max(seconds for _, seconds in timings) < MAX_REQUEST_SECONDS, timings
    assert set(Registration.objects.values_list("status", flat=True)) == {RegistrationStatus.CONFIRMED}
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.OPEN  # its evaluation never reached a broker
    assert _outbox_kinds() == {"confirm_request": 3, "seat_confirmed": 3}
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {(MessageStatus.QUEUED, 0)}
    assert mailbox.messages == []

    private_redis.start()  # same port, empty: nothing was persisted
    _recover_after_redis_outage(cohort, mailbox, processes, municipalities, advisor)


def test_officers_sign_up_and_confirm_while_redis_hangs(
    client, cohort, settings, private_redis, mailbox, processes
):
    """#3: a Redis that accepts connections but never answers (hung, or a
    network that drops packets) costs a signup or confirmation at most a
    moment, not the socket timeouts of every publish; once it answers again
    nothing is lost and nothing is sent twice."""
    settings.CACHES = _redis_cache(private_redis.url(1))
    settings.RATELIMIT_ENABLE = True
    advisor = UserFactory(staff=True)
    cohort.advisors.add(advisor)
    municipalities = _municipalities(3)

    private_redis.freeze()
    timings = _sign_up_and_confirm_through_the_views(client, cohort, municipalities)
    private_redis.thaw()

    print("Redis hanging, seconds per request:", [(name, round(s, 3)) for name, s in timings])
    # The first publish waits for its socket timeouts (1 s, one retry); then
    # this process stops publishing for a while (leerlab/tasking.py) and a
    # request costs only the cache's timeouts (0.5 s per rate-limit lookup).
    slow = [seconds for _, seconds in timings if seconds >= HUNG_REDIS_REQUEST_SECONDS]
    assert len(slow) <= 1 and max(slow, default=0) < HUNG_REDIS_FIRST_PUBLISH_SECONDS, timings
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.OPEN
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {(MessageStatus.QUEUED, 0)}

    # Publishes that timed out may still land now that Redis answers: they
    # run like any other task, and change nothing twice.
    _recover_after_redis_outage(cohort, mailbox, processes, municipalities, advisor)


# --- 2. SMTP refusing ------------------------------------------------------------


def test_email_refused_for_a_while_goes_out_once_when_the_server_accepts_again(cohort, mailbox, processes):
    """#3: an SMTP server that answers 451 (greylisting) and then 421
    (shutting down) to every recipient: each message records its attempts
    and the server's answer and waits; the lab starts regardless; once the
    server accepts again every email arrives exactly once."""
    advisor = UserFactory(staff=True)
    cohort.advisors.add(advisor)
    worker = processes.worker()
    mailbox.refuse_all = "451 4.7.1 Greylisted, please try again later"

    participants = [_confirmed(cohort, m) for m in _municipalities(3)]
    contacts = [r.contact_email for r in participants]
    expected = {"seat_confirmed": 3, "lab_started": 3, "lab_started_advisor": 1}

    def tried(times):
        messages = list(OutboxMessage.objects.all())
        return len(messages) == sum(expected.values()) and all(m.attempts >= times for m in messages)

    wait_until(lambda: tried(1), message="every email tried once against the greylisting server")
    worker.wait_idle()
    assert _outbox_kinds() == expected
    for message in OutboxMessage.objects.all():
        assert (message.status, message.attempts) == (MessageStatus.QUEUED, 1)
        assert "451" in message.last_error and "Greylisted" in message.last_error
        assert message.next_attempt_at > timezone.now()
    assert mailbox.messages == []
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED

    mailbox.refuse_all = "421 4.3.2 Service shutting down"
    _make_due()
    sweep.delay()
    wait_until(lambda: tried(2), message="every email tried again against the closing server")
    worker.wait_idle()
    for message in OutboxMessage.objects.all():
        assert (message.status, message.attempts) == (MessageStatus.QUEUED, 2)
        assert "421" in message.last_error
    assert mailbox.messages == []

    mailbox.refuse_all = None
    _make_due()
    sweep.delay()
    sweep.delay()
    wait_until(lambda: len(mailbox.messages) >= sum(expected.values()), message="the emails once accepted")
    _settle(worker)

    _assert_each_email_once(mailbox, contacts, [advisor.email])
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {(MessageStatus.SENT, 3)}


def test_a_recipient_refused_for_good_is_shown_to_advisors_and_others_are_unaffected(
    client, cohort, mailbox, processes
):
    """#3: the SMTP server refuses one recipient with a 550: that
    officer's messages record attempts and the error and end as failed
    (shown in the admin outbox with the error); everybody else's email goes
    out once. After the address is fixed, the admin's resend sends the
    failed ones exactly once and nothing else again."""
    advisor = UserFactory(staff=True)
    cohort.advisors.add(advisor)
    worker = processes.worker(env={"LEERLAB_MAIL_MAX_ATTEMPTS": "2"})
    municipalities = _municipalities(3)
    refused = _contact_email(municipalities[0])
    mailbox.refuse = {refused: f"550 5.1.1 <{refused}>: Recipient address rejected: User unknown"}

    participants = [_confirmed(cohort, m) for m in municipalities]
    contacts = [r.contact_email for r in participants]
    others = [c for c in contacts if c != refused]

    def refused_messages():
        return list(OutboxMessage.objects.filter(to=refused).order_by("pk"))

    wait_until(
        lambda: (
            len(mailbox.messages) >= 2 * len(others) + 1
            and len(refused_messages()) == 2
            and all(m.attempts >= 1 for m in refused_messages())
        ),
        message="the others' emails delivered and the refused ones tried",
    )
    worker.wait_idle()
    for message in refused_messages():
        assert (message.status, message.attempts) == (MessageStatus.QUEUED, 1)
        assert "550" in message.last_error and "User unknown" in message.last_error
    assert mailbox.to(refused) == []
    _assert_each_email_once(mailbox, others, [advisor.email])

    _make_due()
    _sweep_and_wait(worker)
    wait_until(
        lambda: all(m.status == MessageStatus.FAILED for m in refused_messages()),
        message="the refused messages to fail after the last attempt",
    )
    for message in refused_messages():
        assert message.attempts == 2 and "550" in message.last_error
    # The others were not touched by the retries.
    assert set(OutboxMessage.objects.exclude(to=refused).values_list("status", "attempts")) == {
        (MessageStatus.SENT, 1)
    }

    # The advisors' outbox shows the failures with the server's answer.
    client.force_login(UserFactory(superuser=True))
    changelist = reverse("admin:outbox_outboxmessage_changelist")
    response = client.get(changelist, {"status__exact": MessageStatus.FAILED})
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('class="outbox-failed"') == 2
    assert page.count(refused) >= 2
    short_errors = re.findall(r'<td class="field-short_error">([^<]*)', page)
    assert len(short_errors) == 2 and all("(550, " in error for error in short_errors), short_errors
    # The message's own page has the server's whole answer.
    failed = refused_messages()[0]
    response = client.get(reverse("admin:outbox_outboxmessage_change", args=[failed.pk]))
    assert response.status_code == 200
    assert "Recipient address rejected: User unknown" in response.content.decode()
    for other in others:
        assert other not in page

    # The address is fixed; an advisor resends everything at once.
    mailbox.refuse = {}
    response = client.post(
        changelist,
        {"action": "resend", "_selected_action": list(OutboxMessage.objects.values_list("pk", flat=True))},
    )
    assert response.status_code == 302
    wait_until(lambda: len(mailbox.to(refused)) >= 2, message="the resent emails")
    _settle(worker)
    _assert_each_email_once(mailbox, contacts, [advisor.email])
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {MessageStatus.SENT}


# --- 3. Worker killed ----------------------------------------------------------------


def _kill_worker_mid_send(cohort, mailbox, processes):
    """Three confirmations are queued; a worker takes the first email and
    is SIGKILLed (all of it) while the SMTP server has not yet answered
    MAIL FROM, so no message data went out. Returns the dead worker."""
    advisor = UserFactory(staff=True)
    cohort.advisors.add(advisor)
    participants = [_confirmed(cohort, m) for m in _municipalities(3)]

    mailbox.hold()
    # One pool process: the lifecycle stops right at the first email, with
    # the cohort's evaluation still waiting behind it.
    worker = processes.worker(concurrency=1)
    wait_until(lambda: mailbox.held >= 1, timeout=20, message="the worker to be mid-send")
    killed_at = time.monotonic()
    worker.kill()
    mailbox.release()

    assert mailbox.messages == []
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.OPEN
    # The killed send left no trace: its transaction died with the process.
    assert set(OutboxMessage.objects.values_list("status", "attempts", "last_error")) == {
        (MessageStatus.QUEUED, 0, "")
    }
    return worker, killed_at, [r.contact_email for r in participants], advisor


def test_a_worker_killed_mid_send_is_redelivered_by_redis(cohort, mailbox, processes):
    """#3: SIGKILL a worker in the middle of the lifecycle (sending the
    first email, before the cohort's evaluation ran): with acks_late the
    task was never acknowledged, so Redis delivers it again to the next
    worker after the visibility timeout (5 s here). The lab starts and every
    email arrives exactly once; no sweep is involved."""
    dead, killed_at, contacts, advisor = _kill_worker_mid_send(cohort, mailbox, processes)
    in_flight = set(dead.received_ids(SEND)) | set(dead.received_ids(EVALUATE))
    assert dead.received_ids(SEND), "the killed worker had taken an email"

    # Unacknowledged messages older than the visibility timeout go back to
    # the queue when the next worker starts consuming.
    time.sleep(max(0.0, killed_at + 5.5 - time.monotonic()))
    worker = processes.worker(env={"CELERY_VISIBILITY_TIMEOUT": "5"})
    wait_until(lambda: len(mailbox.messages) >= 7, message="all emails after the redelivery")
    _settle(worker)

    redelivered = in_flight & (set(worker.received_ids(SEND)) | set(worker.received_ids(EVALUATE)))
    print("redelivered by Redis after the kill:", len(redelivered), "of", len(in_flight), "tasks in flight")
    assert set(dead.received_ids(SEND)) <= redelivered
    assert worker.received(SWEEP) == 0
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED
    _assert_each_email_once(mailbox, contacts, [advisor.email])
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {(MessageStatus.SENT, 1)}


def test_a_worker_killed_mid_send_is_recovered_by_the_sweep(cohort, mailbox, processes):
    """#3: the same kill, but the next worker has the production visibility
    timeout (minutes away): the rest of the lifecycle goes on (the lab
    starts, its emails go out), the killed email waits as a queued outbox
    row, and the sweep sends it, once."""
    dead, _, contacts, advisor = _kill_worker_mid_send(cohort, mailbox, processes)
    (killed_send,) = dead.received_ids(SEND)
    stuck = OutboxMessage.objects.get(kind="seat_confirmed", to=contacts[0])

    worker = processes.worker(env={"LEERLAB_MAIL_STUCK_AFTER": "1"})
    wait_until(lambda: len(mailbox.messages) >= 6, message="the emails not lost with the worker")
    _settle(worker)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED
    stuck.refresh_from_db()
    assert (stuck.status, stuck.attempts) == (MessageStatus.QUEUED, 0)
    assert mailbox.to(contacts[0], SEAT) == []
    assert killed_send not in worker.received_ids(SEND)

    _sweep_and_wait(worker)
    wait_until(lambda: mailbox.to(contacts[0], SEAT), message="the stuck email, sent by the sweep")
    _settle(worker)

    assert killed_send not in worker.received_ids(SEND)  # a new task, not a redelivery
    _assert_each_email_once(mailbox, contacts, [advisor.email])
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {(MessageStatus.SENT, 1)}


# --- 4. PostgreSQL connections dropped ------------------------------------------


def _backends(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            [application_name],
        )
        return cursor.fetchone()[0]


def _terminate_other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_gunicorn_and_the_worker_survive_terminated_database_connections(
    cohort, mailbox, processes, static_root
):
    """#3: PostgreSQL drops every connection (a restart, a failover, an
    admin's pg_terminate_backend): gunicorn's persistent connections
    (CONN_MAX_AGE) are checked before use, so the very next requests, a
    signup with CSRF among them, succeed; so does the worker's next task."""
    web = "leerlab-faults-web"
    server = processes.gunicorn(
        DATABASE_URL=database_url(application_name=web),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SSL_REDIRECT="0",
        DJANGO_SECURE_COOKIES="0",
        DJANGO_STATIC_ROOT=str(static_root),
        LEERLAB_RATELIMIT_ENABLED="0",
    )
    worker = processes.worker(env={"DATABASE_URL": database_url(application_name="leerlab-faults-worker")})
    http = server.http()
    lab_page = reverse("leerlab:lab_detail", kwargs={"slug": cohort.lab.slug})
    signup_page = reverse("registrations:signup", kwargs={"slug": cohort.lab.slug})
    sent_page = reverse("registrations:signup_sent", kwargs={"slug": cohort.lab.slug})
    first, second, third = _municipalities(3)

    # Both gunicorn workers serve pages and keep their connection open.
    def warm():
        assert http.get("/").status == 200
        assert http.get(lab_page).status == 200
        return _backends(web) >= 2

    wait_until(warm, timeout=20, message="both gunicorn workers to hold a database connection")
    response = http.post_form(signup_page, _signup_data(first))
    assert (response.status, response.headers["Location"]) == (302, sent_page)
    wait_until(lambda: mailbox.to(_contact_email(first)), message="the first confirmation email")
    worker.wait_idle()

    terminated = _terminate_other_backends()
    print("terminated backends:", terminated)
    assert terminated >= 2
    wait_until(lambda: _backends(web) == 0, timeout=5, message="gunicorn's backends to be gone")

    # The next requests, whichever gunicorn worker takes them, succeed: keep
    # asking, two at a time so that both sync workers get requests (one
    # after the other, the same worker may take them all), until both have
    # reconnected.
    statuses = []
    clients = [server.http(), server.http()]
    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(max_workers=2) as pool:
        while time.monotonic() < deadline:
            statuses += list(
                pool.map(lambda pair: pair[0].get(pair[1]).status, zip(clients, ("/", lab_page), strict=True))
            )
            if _backends(web) >= 2:
                break
    assert set(statuses) == {200}, statuses
    assert _backends(web) >= 2
    response = http.post_form(signup_page, _signup_data(second))
    assert (response.status, response.headers["Location"]) == (302, sent_page)
    wait_until(lambda: mailbox.to(_contact_email(second)), message="the second confirmation email")
    worker.wait_idle()

    # Again, with a signup as the very first request after the drop.
    _terminate_other_backends()
    response = http.post_form(signup_page, _signup_data(third))
    assert (response.status, response.headers["Location"]) == (302, sent_page)

    wait_until(lambda: mailbox.to(_contact_email(third)), message="the third confirmation email")
    _settle(worker)
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {(MessageStatus.SENT, 1)}
    assert len(mailbox.messages) == 3
    assert Registration.objects.filter(status=RegistrationStatus.PENDING).count() == 3
    assert "Traceback" not in server.log()
    assert "OperationalError" not in worker.log() and "InterfaceError" not in worker.log()


# --- 5. Beat twice -----------------------------------------------------------------


def test_two_beats_by_mistake_send_nothing_twice(cohort, mailbox, processes):
    """#3: two `celery beat` processes sweep every second, at the same
    time, against a cohort whose evaluation was lost (three confirmed
    registrations, never evaluated) and outbox messages that are stuck or
    due for a retry: the lab starts once and every email arrives once."""
    advisor = UserFactory(staff=True)
    cohort.advisors.add(advisor)
    participants = [
        RegistrationFactory(cohort=cohort, municipality=m, contact_email=_contact_email(m), confirmed=True)
        for m in _municipalities(3)
    ]
    contacts = [r.contact_email for r in participants]
    stuck = [f"wachtend{n}@example.nl" for n in range(3)]
    for n, to in enumerate(stuck):
        OutboxMessage.objects.create(
            dedupe_key=f"faults-stuck:{n}", kind="reminder", to=to, subject="Herinnering", body_text="Tekst."
        )
    OutboxMessage.objects.filter(kind="reminder").update(created_at=timezone.now() - timedelta(hours=1))
    OutboxMessage.objects.filter(to=stuck[0]).update(
        attempts=1, last_error="SMTPServerDisconnected", next_attempt_at=timezone.now() - timedelta(minutes=1)
    )
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.OPEN

    worker = processes.worker(env={"LEERLAB_MAIL_STUCK_AFTER": "1"})
    beats = [processes.beat(name=f"beat{n}", LEERLAB_SWEEP_INTERVAL="1") for n in range(2)]

    wait_until(
        lambda: len(mailbox.messages) >= len(contacts) + 1 + len(stuck), message="start and stuck emails"
    )
    # Several more rounds of both beats, with everything already sent.
    swept = worker.received(SWEEP)
    wait_until(
        lambda: all(beat.sent(SWEEP) >= 5 for beat in beats) and worker.received(SWEEP) >= swept + 6,
        timeout=30,
        message="several sweeps from each beat",
    )
    for beat in beats:
        beat.stop()
    _settle(worker)

    print("sweeps sent per beat:", [beat.sent(SWEEP) for beat in beats], "received:", worker.received(SWEEP))
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED
    assert _recipients(mailbox, STARTED) == Counter({r: 1 for r in [*contacts, advisor.email]})
    assert _recipients(mailbox, "Herinnering") == Counter({r: 1 for r in stuck})
    assert len(mailbox.messages) == len(contacts) + 1 + len(stuck)
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {MessageStatus.SENT}
    assert OutboxMessage.objects.get(to=stuck[0]).attempts == 2
    assert set(OutboxMessage.objects.exclude(to=stuck[0]).values_list("attempts", flat=True)) == {1}


# --- 6. Double submit ---------------------------------------------------------------


def _all_at_once(count: int, request) -> list:
    """Run request(client) in `count` threads released together, each with
    its own test client and database connection. Returns the responses."""
    barrier = threading.Barrier(count)
    results, raised = [], []
    lock = threading.Lock()

    def run():
        try:
            client = Client()
            barrier.wait(timeout=30)
            started = time.monotonic()
            response = request(client)
            with lock:
                results.append((response, time.monotonic() - started))
        except BaseException as exc:  # noqa: BLE001 - the test reports every one
            with lock:
                raised.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert raised == []
    return results


def test_ten_identical_signups_and_confirmations_at_once_count_once(cohort, mailbox, processes):
    """#3: an officer's double (tenfold) click: ten identical signups at the
    same moment through the view leave one pending signup and one
    confirmation email, each answered with the normal redirect; ten
    confirmations of that link at once leave one seat and one seat email."""
    worker = processes.worker()
    municipality = _municipalities(1)[0]
    lab = cohort.lab
    signup_url = reverse("registrations:signup", kwargs={"slug": lab.slug})
    sent_url = reverse("registrations:signup_sent", kwargs={"slug": lab.slug})
    data = _signup_data(municipality)

    results = _all_at_once(10, lambda client: client.post(signup_url, data))

    print("signup seconds:", sorted(round(seconds, 3) for _, seconds in results))
    assert [(r.status_code, r["Location"]) for r, _ in results] == [(302, sent_url)] * 10
    (registration,) = Registration.objects.all()
    assert registration.status == RegistrationStatus.PENDING
    assert _outbox_kinds() == {"confirm_request": 1}
    wait_until(lambda: mailbox.with_subject(CONFIRM_REQUEST), message="the confirmation email")
    _settle(worker)
    (request_email,) = mailbox.messages
    confirm_url = reverse("registrations:confirm", kwargs={"token": _token_in(request_email.text)})

    results = _all_at_once(10, lambda client: client.post(confirm_url))

    statuses = Counter(r.status_code for r, _ in results)
    print("confirm statuses:", dict(statuses), "seconds:", sorted(round(s, 3) for _, s in results))
    assert set(statuses) <= {200, 410}, statuses
    # (The pages are told apart by their HTML: with requests in threads the
    # test client's template capture sees every thread's renders.)
    seat_pages = [response.content.decode() for response, _ in results if response.status_code == 200]
    assert seat_pages and all(SEAT_OUTCOME in page for page in seat_pages)
    # One of them confirmed; the others were shown the outcome it had.
    assert sum(ALREADY_CONFIRMED not in page for page in seat_pages) == 1
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.CONFIRMED
    assert Registration.objects.count() == 1
    assert _outbox_kinds() == {"confirm_request": 1, "seat_confirmed": 1}
    wait_until(lambda: mailbox.with_subject(SEAT), message="the seat email")
    _settle(worker)
    assert len(mailbox.messages) == 2
    assert len(mailbox.to(_contact_email(municipality), SEAT)) == 1


# --- 7. A confirmation and the cohort's evaluation at the same moment -----------


def test_a_confirmation_and_the_evaluation_at_the_same_moment_do_not_deadlock(cohort, monkeypatch):
    """#3 regression: a confirmation takes the lab lock and then the cohort
    lock; the worker's evaluation takes the cohort lock only. That lock used
    to take the lab row as well (FOR UPDATE on a join with the lab), after
    the cohort row: each side then waited for the other, and PostgreSQL
    ended the deadlock by failing one of them after a second: "busy, try
    again" for the officer, or an evaluation lost until the sweep. Here the
    two are interleaved exactly so, on the real PostgreSQL; the pause in the
    confirmation is the only thing added."""
    first, second, third = _municipalities(3)
    for municipality in (first, second):
        RegistrationFactory(cohort=cohort, municipality=municipality, confirmed=True)
    pending = RegistrationFactory(cohort=cohort, municipality=third)

    lab_held = threading.Event()
    go_on = threading.Event()

    def cohort_lock_once_the_evaluation_runs(*, cohort_id):
        lab_held.set()  # registration_confirm holds the lab lock by now
        assert go_on.wait(10)
        return cohort_lock(cohort_id=cohort_id)

    monkeypatch.setattr(registration_services, "cohort_lock", cohort_lock_once_the_evaluation_runs)
    outcome = {}

    def confirm():
        try:
            outcome["confirm"] = registration_confirm(token=pending.token)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["confirm"] = exc
        finally:
            connection.close()

    def evaluate():
        try:
            assert lab_held.wait(10)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                outcome["pid"] = cursor.fetchone()[0]
            cohort_evaluate(cohort_id=cohort.pk)
            outcome["evaluate"] = "done"
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["evaluate"] = exc
        finally:
            connection.close()

    def evaluation_waits_for_a_lock_or_is_done() -> bool:
        if "evaluate" in outcome:
            return True
        if "pid" not in outcome:
            return False
        with connection.cursor() as cursor:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [outcome["pid"]])
            row = cursor.fetchone()
        return row is not None and row[0] == "Lock"

    threads = [threading.Thread(target=confirm), threading.Thread(target=evaluate)]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            evaluation_waits_for_a_lock_or_is_done, timeout=10, interval=0.02, message="the evaluation"
        )
    finally:
        go_on.set()
        for thread in threads:
            thread.join(timeout=30)

    assert outcome["evaluate"] == "done", outcome["evaluate"]
    assert isinstance(outcome["confirm"], ConfirmationResult), outcome["confirm"]
    assert outcome["confirm"].newly_confirmed and outcome["confirm"].has_seat
    pending.refresh_from_db()
    assert pending.status == RegistrationStatus.CONFIRMED
