from pathlib import Path

from django.core.management.base import BaseCommand

from municipalities.services import DATA_DIR, municipalities_load


class Command(BaseCommand):
    help = "Load or update municipalities, email domains and mergers from the CSV files (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="folder with the three CSV files")

    def handle(self, *args, data_dir: Path, **options):
        result = municipalities_load(data_dir=data_dir)
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.created} created, {result.updated} updated, "
                f"{result.domains_added} email domains added, {result.merged} mergers applied"
            )
        )
