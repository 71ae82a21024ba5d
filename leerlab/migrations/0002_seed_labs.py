from django.db import migrations


def seed(apps, schema_editor):
    from leerlab.labs_seed import seed_labs

    seed_labs(
        lab_model=apps.get_model("leerlab", "LeerLab"), cohort_model=apps.get_model("leerlab", "Cohort")
    )


class Migration(migrations.Migration):
    dependencies = [("leerlab", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
