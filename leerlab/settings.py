"""Settings for the Leer Lab portal.

Everything that differs between a laptop and production comes from the
environment (see the README and ../shared/DESIGN.md). Unset variables fall
back to the embedded defaults: SQLite, tasks run in-process, email on the
console. Secrets have no default outside debug mode: production refuses to
start without them.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)

if DEBUG:
    SECRET_KEY = env("DJANGO_SECRET_KEY", default="local-debug-only-not-secret-leerlab")
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
else:
    try:
        SECRET_KEY = env("DJANGO_SECRET_KEY")
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.") from exc
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    # The admin with the portal's own site: two-factor login when
    # LEERLAB_ADMIN_2FA is on, rate-limited login (leerlab/admin_site.py).
    "leerlab.security.LeerLabAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    # Security (issue #3): one-time passwords for advisors (TOTP apps and
    # printed backup codes), login lock-out, rate limits, CSP.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "django_ratelimit",
    "csp",
    # Exports of a cohort as CSV and Excel from the admin (issue #6).
    "import_export",
    "municipalities",
    "leerlab",
    "registrations",
    "outbox",
    "selfservice",
    "privacy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before WhiteNoise, so static files carry the policy as well.
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Sets request.user.is_verified() from the session's OTP device.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a Ratelimited exception into the friendly 429 page.
    "django_ratelimit.middleware.RatelimitMiddleware",
    # Last, as django-axes asks: turns a lock-out into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "leerlab.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "leerlab.wsgi.application"

# --- Database -------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
# Reuse connections between requests but check them first, so a PostgreSQL
# restart or a terminated backend costs no failed request.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = False

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Language and time ----------------------------------------------------
LANGUAGE_CODE = "nl"
LANGUAGES = [("nl", _("Nederlands")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Amsterdam"
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed, cache-busted files in production; plain files while
    # debugging so `make run` needs no collectstatic.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Redis: Celery broker and cache ---------------------------------------
REDIS_URL = env("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "leerlab",
            "OPTIONS": {
                # Short timeouts and ignored errors: a dead Redis makes the
                # cache (and the rate limits built on it) miss, never fail
                # a request.
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Without a broker every task runs in-process right after the commit that
# enqueued it: the embedded default needs no Redis and no worker.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
# A task is acknowledged only when done, so a killed worker's task runs
# again; therefore every task is idempotent.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing must fail fast when Redis is down: the request has already
# committed and the sweep will pick the work up. One retry reconnects a
# pooled connection that a Redis restart broke.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 1,
    # A Redis that hangs costs a publish (with its retry) about three of
    # these; Redis answers in microseconds when it is well. The worker's
    # BRPOP is read only once Redis has answered, so it is not cut short.
    "socket_timeout": 1,
    # Longer than any task may run, so acks_late never redelivers a task
    # that is still running.
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=600),
}
CELERY_TIMEZONE = TIME_ZONE

LEERLAB_SWEEP_INTERVAL = env.int("LEERLAB_SWEEP_INTERVAL", default=300)
CELERY_BEAT_SCHEDULE = {
    "leerlab-sweep": {
        "task": "leerlab.tasks.sweep",
        "schedule": LEERLAB_SWEEP_INTERVAL,
        # A sweep that could not run in time is superseded by the next one.
        "options": {"expires": LEERLAB_SWEEP_INTERVAL},
    },
    # Reminders of a cohort's sessions (issue #6), LEERLAB_SESSION_REMINDER_DAYS
    # before each; hourly, so a session planned at short notice is not missed.
    "session-reminders": {
        "task": "leerlab.tasks.send_session_reminders",
        "schedule": env.int("LEERLAB_SESSION_REMINDER_INTERVAL", default=60 * 60),
        "options": {"expires": 30 * 60},
    },
    # Anonymise what is past its retention period (issue #5), once a day.
    "privacy-retention": {
        "task": "privacy.tasks.run_retention",
        "schedule": 24 * 60 * 60,
        "options": {"expires": 60 * 60},
    },
}

# --- Email ----------------------------------------------------------------
EMAIL_HOST = env("EMAIL_HOST", default="")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env.int("EMAIL_PORT", default=25)
    EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
    EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Servicepunt Leer Labs <leerlabs@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- The portal's own rules ------------------------------------------------
# Only active municipalities of this province may take part.
LEERLAB_PROVINCE = env("LEERLAB_PROVINCE", default="Noord-Holland")
# Unconfirmed signups expire after this many days.
LEERLAB_CONFIRMATION_DAYS = env.int("LEERLAB_CONFIRMATION_DAYS", default=7)
# Outbox: attempts before a message counts as failed, and after how many
# seconds a message that is still queued counts as stuck for the sweep.
LEERLAB_MAIL_MAX_ATTEMPTS = env.int("LEERLAB_MAIL_MAX_ATTEMPTS", default=8)
LEERLAB_MAIL_STUCK_AFTER = env.int("LEERLAB_MAIL_STUCK_AFTER", default=120)
# The version of the privacy statement an officer consents to.
LEERLAB_PRIVACY_VERSION = "2026-11"
# Months after a cohort was completed or cancelled before the personal data
# of its registrations is anonymised (issue #5; the privacy statement says it).
LEERLAB_RETENTION_MONTHS = env.int("LEERLAB_RETENTION_MONTHS", default=12)
# "Mijn aanmeldingen" (issue #5): the emailed link is single use and valid
# this many minutes; the session it opens ends after this many idle
# minutes; a handover link to a colleague is valid this many days.
LEERLAB_SELFSERVICE_LINK_MINUTES = env.int("LEERLAB_SELFSERVICE_LINK_MINUTES", default=60)
LEERLAB_SELFSERVICE_SESSION_MINUTES = env.int("LEERLAB_SELFSERVICE_SESSION_MINUTES", default=30)
LEERLAB_SELFSERVICE_HANDOVER_DAYS = env.int("LEERLAB_SELFSERVICE_HANDOVER_DAYS", default=7)

# The cohort journey (issue #6): participants get a reminder this many days
# before each session of their cohort (0 turns reminders off).
LEERLAB_SESSION_REMINDER_DAYS = env.int("LEERLAB_SESSION_REMINDER_DAYS", default=2)
# Exports: a cell starting with =, +, - or @ is written as text, so a case
# title cannot run as a formula in Excel (CSV/formula injection).
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = True

# --- Security (issue #3) ----------------------------------------------------
# Production (DJANGO_DEBUG off) is strict by default; every switch below
# exists for one reason, named in its comment. `manage.py check --deploy`
# is clean with the defaults (tests/test_security.py runs it).

# HTTPS: redirect plain http (off only for a local load test over http,
# DJANGO_SSL_REDIRECT=0). The proxy in front says which scheme the visitor
# used; it must set (not pass on) X-Forwarded-Proto.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HSTS: one year in production. includeSubDomains covers only hosts under
# the portal's own host name, which are ours as well. No preload by default:
# the preload list is a commitment for the whole registrable domain
# (e.g. the province's), to be made by its owner, so it is opt-in
# (DJANGO_HSTS_PRELOAD=1) and its deploy check W021 is silenced below.
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)

# Cookies: Secure in production (off only for http load tests,
# DJANGO_SECURE_COOKIES=0), never readable from JavaScript (the portal's
# scripts read none), not sent on cross-site POSTs.
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_SAMESITE = "Lax"
# An admin session ends after an hour without a request. The public signup
# session is a browser-session cookie (set_expiry(0) in the signup view);
# on the server it now also ends after an idle hour instead of two weeks.
SESSION_COOKIE_AGE = 3600
SESSION_SAVE_EVERY_REQUEST = True

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Content-Security-Policy on every response (django-csp 4 format). Only our
# own files: no inline scripts or style attributes anywhere (the public
# templates and Django's admin need none), no plugins, no framing, forms
# post only to us. data: images are Bootstrap's inline SVG icons in CSS.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

# Two-factor login for the admin (TOTP app or a printed backup code). On in
# production; off while debugging so `make run` works with just the
# printed password. Read per request (leerlab/admin_site.py).
LEERLAB_ADMIN_2FA = env.bool("LEERLAB_ADMIN_2FA", default=not DEBUG)
# The issuer an authenticator app shows next to the account.
OTP_TOTP_ISSUER = "Leer Labs Servicepunt"

# Where the client's address comes from, for rate limits and lock-outs
# (leerlab/security.py:client_ip). 0: REMOTE_ADDR, gunicorn is reached
# directly. N > 0: N reverse proxies of ours append to X-Forwarded-For, so
# the address N hops from the right is the one our outermost proxy saw;
# everything left of it was sent by the client and may be forged.
LEERLAB_TRUSTED_PROXIES = env.int("LEERLAB_TRUSTED_PROXIES", default=0)

# Rate limits per client address (django-ratelimit, counted in the cache):
# signups, confirmation links (token guessing) and admin logins.
RATELIMIT_ENABLE = env.bool("LEERLAB_RATELIMIT_ENABLED", default=True)
LEERLAB_RATELIMIT_SIGNUP = env("LEERLAB_RATELIMIT_SIGNUP", default="10/10m")
LEERLAB_RATELIMIT_CONFIRM = env("LEERLAB_RATELIMIT_CONFIRM", default="30/10m")
LEERLAB_RATELIMIT_LOGIN = env("LEERLAB_RATELIMIT_LOGIN", default="10/10m")
# Requests for a "mijn aanmeldingen" link (each may send an email).
LEERLAB_RATELIMIT_SELFSERVICE = env("LEERLAB_RATELIMIT_SELFSERVICE", default="5/10m")
RATELIMIT_VIEW = "leerlab.security.ratelimited"
# A dead Redis means no counting, not refusing everyone: the django-redis
# cache ignores its errors and returns None, which django-ratelimit then
# treats as "not limited". Lock-outs (in the database) still apply.
RATELIMIT_FAIL_OPEN = True

# Admin login lock-out (django-axes): 5 failures (a wrong password or a
# wrong verification code) lock that username from that address for 30
# minutes. By the combination, so that nobody can lock an advisor out from
# elsewhere by guessing at their username; spraying many usernames from one
# address is what the per-address login rate limit above stops.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = True
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LEERLAB_LOCKOUT_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "leerlab.security.lockout"
AXES_CLIENT_IP_CALLABLE = "leerlab.security.client_ip"
# Not verbose: axes would log user agents; usernames and addresses it masks.
AXES_VERBOSE = False

SILENCED_SYSTEM_CHECKS = []
if not SECURE_HSTS_PRELOAD:
    # Preloading is opt-in, see SECURE_HSTS_PRELOAD above.
    SILENCED_SYSTEM_CHECKS.append("security.W021")
if CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    # Without REDIS_URL (`make run`, the test suite) rate limits count per
    # process in the local memory cache, which django-ratelimit flags as not
    # shared. That is the embedded default's known limit, not an error;
    # production runs with REDIS_URL and gets django-redis, which it supports.
    SILENCED_SYSTEM_CHECKS += ["django_ratelimit.E003", "django_ratelimit.W001"]

LOGIN_URL = "admin:login"
# Where a login lands when its ?next= is missing or points off-site.
LOGIN_REDIRECT_URL = "admin:index"

# --- Logging: no personal data, ever; ids only. -----------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's request logger prints POST data of failed requests in
        # some versions; keep it at ERROR without bodies.
        "django.request": {"level": "ERROR"},
        # At DEBUG these print personal data even with DJANGO_LOG_LEVEL=DEBUG
        # meant for our own code: the template engine logs whole template
        # contexts (a form with the officer's name in it), the database
        # layer SQL with its parameters (issue #3).
        "django.template": {"level": "INFO"},
        "django.db.backends": {"level": "INFO"},
    },
}
