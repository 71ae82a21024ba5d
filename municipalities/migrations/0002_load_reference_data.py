from django.db import migrations


def load(apps, schema_editor):
    from municipalities.services import municipalities_load

    municipalities_load(
        municipality_model=apps.get_model("municipalities", "Municipality"),
        domain_model=apps.get_model("municipalities", "EmailDomain"),
    )


class Migration(migrations.Migration):
    dependencies = [("municipalities", "0001_initial")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
