"""Loading the reference data in municipalities/data/ (see its README for
sources and licence). Idempotent: run at every migrate and after a yearly
update of the CSV files (`manage.py load_municipalities`)."""

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from django.db import transaction

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass
class LoadResult:
    created: int = 0
    updated: int = 0
    domains_added: int = 0
    merged: int = 0


def _read(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def municipalities_load(
    *, data_dir: Path = DATA_DIR, municipality_model=None, domain_model=None
) -> LoadResult:
    """Create or update every municipality, add known email domains (never
    removing ones advisors added) and mark merged municipalities inactive.

    The model classes can be passed in so a data migration can use its
    historical models."""
    if municipality_model is None or domain_model is None:
        from .models import EmailDomain, Municipality

        municipality_model, domain_model = Municipality, EmailDomain

    result = LoadResult()
    national = _read(data_dir / "gemeenten-2025.csv")
    provincial = _read(data_dir / "noord-holland-domeinen.csv")
    mergers = _read(data_dir / "herindelingen-noord-holland-sinds-2021.csv")
    merged_away = {row["old_cbs_code"] for row in mergers}

    wanted: dict[str, dict] = {}
    for row in national:
        wanted[row["cbs_code"]] = {"name": row["name"], "province": row["province"], "is_active": True}
    for row in provincial:
        entry = wanted.setdefault(row["cbs_code"], {"name": row["name"], "province": "Noord-Holland"})
        entry["is_active"] = row["active"].strip().lower() == "yes" and row["cbs_code"] not in merged_away
        entry["website"] = row["website"].strip()

    with transaction.atomic():
        existing = {m.cbs_code: m for m in municipality_model.objects.all()}
        for code, fields in wanted.items():
            current = existing.get(code)
            if current is None:
                existing[code] = municipality_model.objects.create(cbs_code=code, **fields)
                result.created += 1
                continue
            changed = [name for name, value in fields.items() if getattr(current, name) != value]
            if changed:
                for name in changed:
                    setattr(current, name, fields[name])
                current.save(update_fields=changed)
                result.updated += 1

        for row in provincial:
            municipality = existing[row["cbs_code"]]
            for domain in {row["email_domain"].strip().lower(), row["website_domain"].strip().lower()} - {""}:
                _, created = domain_model.objects.get_or_create(municipality=municipality, domain=domain)
                result.domains_added += created

        for row in mergers:
            old, new = existing[row["old_cbs_code"]], existing[row["new_cbs_code"]]
            merged_on = date.fromisoformat(row["effective_date"])
            if old.merged_into_id != new.pk or old.merged_on != merged_on or old.is_active:
                old.merged_into, old.merged_on, old.is_active = new, merged_on, False
                old.save(update_fields=["merged_into", "merged_on", "is_active"])
                result.merged += 1
    return result
