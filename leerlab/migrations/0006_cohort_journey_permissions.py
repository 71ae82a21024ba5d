"""Issue #6: what advisors may do with the cohort journey, and the end
moment of cohorts that ended before `ended_at` existed.

Added to the "Servicepunt-adviseurs" group (see 0003 for the rest):

- leerlab.CohortSession: view, add, change. Advisors plan a cohort's
  sessions; a session that was announced is called off ("afgelast", a
  change), never deleted, so participants get a cancellation.
- leerlab.CohortMessage: view, add. A message to a cohort is sent once and
  is then a record: no change or delete.
- leerlab.CohortEvent: view. The history is written by the services.
"""

from django.db import migrations
from django.db.models import F
from django.db.models.functions import Coalesce

GROUP_NAME = "Servicepunt-adviseurs"
ADDED = [
    "view_cohortsession",
    "add_cohortsession",
    "change_cohortsession",
    "view_cohortmessage",
    "add_cohortmessage",
    "view_cohortevent",
]


def add_permissions(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    using = schema_editor.connection.alias
    app_config = apps.get_app_config("leerlab")
    previous = getattr(app_config, "models_module", None)
    app_config.models_module = True
    try:
        create_permissions(app_config, verbosity=0, interactive=False, using=using, apps=apps)
    finally:
        app_config.models_module = previous

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    found = list(
        Permission.objects.using(using).filter(content_type__app_label="leerlab", codename__in=ADDED)
    )
    missing = set(ADDED) - {p.codename for p in found}
    if missing:
        raise RuntimeError(f"permissions missing for leerlab: {sorted(missing)}")
    group, _ = Group.objects.using(using).get_or_create(name=GROUP_NAME)
    group.permissions.add(*found)


def remove_permissions(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    using = schema_editor.connection.alias
    group = Group.objects.using(using).filter(name=GROUP_NAME).first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.using(using).filter(content_type__app_label="leerlab", codename__in=ADDED)
        )


def backfill_ended_at(apps, schema_editor):
    Cohort = apps.get_model("leerlab", "Cohort")
    Cohort.objects.using(schema_editor.connection.alias).filter(
        status__in=["completed", "cancelled"], ended_at__isnull=True
    ).update(ended_at=Coalesce(F("closed_at"), F("started_at"), F("created_at")))


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("leerlab", "0005_cohort_journey"),
    ]

    operations = [
        migrations.RunPython(add_permissions, remove_permissions),
        migrations.RunPython(backfill_ended_at, migrations.RunPython.noop),
    ]
