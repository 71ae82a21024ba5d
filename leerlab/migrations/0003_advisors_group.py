"""The "Servicepunt-adviseurs" group: what a Servicepunt advisor may do in
the admin (issue #2, point 8).

Permissions are normally created by a post_migrate signal, i.e. after all
migrations ran, so on a fresh database they do not exist yet when this
migration runs. It therefore creates them itself for the apps it needs.

The permission set, and why:

- leerlab.Cohort: view, change, add. Advisors form cohorts, set the start
  date and the advisors, and move a cohort through its lifecycle with the
  admin actions ("Nu starten", "Aanmelding sluiten", "Heropenen"), which
  require the change permission. Status fields themselves are read-only in
  the form: transitions only go through leerlab.services. No delete: a
  cohort with registrations is history.
- leerlab.LeerLab: view, change. Titles, texts and minimum/maximum per lab.
  No add or delete: the four labs are fixed (DESIGN.md).
- registrations.Registration: view only. Registrations are written by
  officers and by the services; advisors read them. The "E-mail opnieuw
  versturen" action needs only the view permission: it changes no data an
  advisor could edit, it runs the same service the automatic path runs
  (a fresh confirmation link, or re-queueing an email that should have gone
  out already). No delete: withdrawals are a status, not a deletion.
- municipalities.Municipality: view, change. The change permission is what
  lets an advisor save the email-domain inline on a municipality; the
  municipality's reference data (CBS code, name, province, active, merger)
  stays read-only in the admin because it is loaded from CBS data.
- municipalities.EmailDomain: view, add, change, delete. Advisors keep the
  municipalities' email domains up to date; a registration from an unknown
  domain is flagged, never refused.
- outbox.OutboxMessage: view only. The outbox is a log; its "Opnieuw
  versturen" action needs only the view permission, like the one above.

No permissions on auth (users, groups): account management stays with
administrators.
"""

from django.db import migrations

GROUP_NAME = "Servicepunt-adviseurs"

ADVISOR_PERMISSIONS = {
    "leerlab": ["view_cohort", "change_cohort", "add_cohort", "view_leerlab", "change_leerlab"],
    "registrations": ["view_registration"],
    "municipalities": [
        "view_municipality",
        "change_municipality",
        "view_emaildomain",
        "add_emaildomain",
        "change_emaildomain",
        "delete_emaildomain",
    ],
    "outbox": ["view_outboxmessage"],
}


def _create_permissions(apps, using):
    from django.contrib.auth.management import create_permissions

    for app_label in ADVISOR_PERMISSIONS:
        app_config = apps.get_app_config(app_label)
        # Historical app configs have no models module; create_permissions
        # (and create_contenttypes) skip an app without one.
        previous = getattr(app_config, "models_module", None)
        app_config.models_module = True
        try:
            create_permissions(app_config, verbosity=0, interactive=False, using=using, apps=apps)
        finally:
            app_config.models_module = previous


def create_advisors_group(apps, schema_editor):
    using = schema_editor.connection.alias
    _create_permissions(apps, using)

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    permissions = []
    for app_label, codenames in ADVISOR_PERMISSIONS.items():
        found = list(
            Permission.objects.using(using).filter(content_type__app_label=app_label, codename__in=codenames)
        )
        missing = set(codenames) - {p.codename for p in found}
        if missing:
            raise RuntimeError(f"permissions missing for {app_label}: {sorted(missing)}")
        permissions += found

    group, _ = Group.objects.using(using).get_or_create(name=GROUP_NAME)
    group.permissions.set(permissions)


def remove_advisors_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name=GROUP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("leerlab", "0002_seed_labs"),
        ("municipalities", "0001_initial"),
        ("registrations", "0001_initial"),
        ("outbox", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_advisors_group, remove_advisors_group)]
