"""Settings for the test suite: the real settings with test-only secrets
and fast hashing. DATABASE_URL and REDIS_URL still come from the
environment, so CI runs the suite on PostgreSQL and Redis."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-not-secret")

from .settings import *  # noqa: E402,F403

# Unit tests run tasks in-process; the integration tests start a real
# worker and switch the test process to the broker themselves.
CELERY_TASK_ALWAYS_EAGER = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Security (issue #3). The suite talks plain http to the test client, and
# the tests that are about rate limits, lock-outs and two-factor login
# switch them on themselves (tests/test_rate_limits.py,
# tests/test_two_factor.py); elsewhere they would only get in the way
# (hundreds of POSTs from one address; django-axes refuses client.login()
# without a request).
SECURE_SSL_REDIRECT = False
RATELIMIT_ENABLE = False
AXES_ENABLED = False
LEERLAB_ADMIN_2FA = False
