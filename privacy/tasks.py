from celery import shared_task

from . import services


@shared_task(name="privacy.tasks.run_retention")
def run_retention() -> dict:
    return services.retention_run()
