from celery import shared_task

from . import services


@shared_task(name="leerlab.tasks.evaluate_cohort")
def evaluate_cohort(cohort_id: int) -> None:
    services.cohort_evaluate(cohort_id=cohort_id)


@shared_task(name="leerlab.tasks.sweep")
def sweep() -> dict:
    return services.sweep()


@shared_task(name="leerlab.tasks.send_session_reminders")
def send_session_reminders() -> int:
    from .sessions import sessions_send_reminders

    return sessions_send_reminders()
