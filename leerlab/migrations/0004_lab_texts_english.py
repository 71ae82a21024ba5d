"""English texts of the labs, for the pages under /en/ and the email to
officers who signed up in English (issue #4)."""

from django.db import migrations, models


def fill_english(apps, schema_editor):
    from leerlab.labs_seed import seed_labs_english

    seed_labs_english(lab_model=apps.get_model("leerlab", "LeerLab"))


class Migration(migrations.Migration):
    dependencies = [("leerlab", "0003_advisors_group")]

    operations = [
        migrations.AddField(
            model_name="leerlab",
            name="title_en",
            field=models.CharField(blank=True, max_length=200, verbose_name="titel (Engels)"),
        ),
        migrations.AddField(
            model_name="leerlab",
            name="summary_en",
            field=models.TextField(blank=True, verbose_name="samenvatting (Engels)"),
        ),
        migrations.AddField(
            model_name="leerlab",
            name="description_en",
            field=models.TextField(blank=True, verbose_name="beschrijving (Engels)"),
        ),
        migrations.AddField(
            model_name="leerlab",
            name="duration_en",
            field=models.CharField(blank=True, max_length=100, verbose_name="duur (Engels)"),
        ),
        # Reversing drops the columns; nothing to undo in the data.
        migrations.RunPython(fill_english, migrations.RunPython.noop),
    ]
