"""The Celery application: `celery -A leerlab worker` and `celery -A leerlab beat`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leerlab.settings")

app = Celery("leerlab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
