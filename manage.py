#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    """Run administrative tasks."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leerlab.settings")
    # With no configuration at all, management commands use the embedded
    # defaults (SQLite, console email), as `make run` does, so that
    # `python manage.py migrate` works on a fresh clone. A deployment sets
    # DJANGO_SECRET_KEY and so gets the strict settings; gunicorn and Celery
    # do not pass through here and refuse to start without the key.
    if "DJANGO_SECRET_KEY" not in os.environ:
        os.environ.setdefault("DJANGO_DEBUG", "1")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Are you sure it's installed and "
            "available on your PYTHONPATH environment variable? Did you "
            "forget to activate a virtual environment?"
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
