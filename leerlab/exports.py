"""Exports of a cohort's participants, cases and learning needs (issue #6).

One row per live registration (confirmed or waitlisted) of the selected
cohorts, as CSV or Excel, through django-import-export. Choices, so that
advisors and reviewers need not read the code to know them:

- Pending signups are left out: their address is not confirmed and they
  hold no seat; withdrawn registrations are left out too.
- Anonymised registrations (AVG) stay in the list with municipality,
  status and dates, their contact details and case texts blank: the
  municipality still holds its seat or waitlist place, so the counts match
  the cohort page, and the placeholders the anonymiser leaves are noise.
- CSV: UTF-8 with a byte order mark and semicolons between the fields, as
  Excel with Dutch regional settings expects when the file is double-clicked
  (with commas it puts every row in one column; without the BOM it garbles
  ë and é).
- Formula injection: a text cell that a spreadsheet would run as a formula
  is written with a leading apostrophe. In CSV that is every cell starting
  with =, +, -, @, a tab or a carriage return (OWASP); in Excel files only
  cells starting with = (openpyxl would store those as formulas; other
  cells are typed text there). django-import-export's own escaping
  (IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT) strips one "=" only, so "==..."
  would still become a formula; ours runs whatever that setting says.
- Every export is recorded per cohort (CohortEvent EXPORTED) with the
  format and the number of rows: who took personal data out, and when.
"""

import datetime
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import tablib
from django.db import transaction
from django.db.models import Case, F, When, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources
from import_export.formats import base_formats

from registrations.models import LIVE_STATUSES, Registration, RegistrationStatus

from .models import Cohort, CohortEvent, CohortEventAction

CSV_DELIMITER = ";"
XLSX_COLUMN_WIDTH = 32
CSV_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
XLSX_FORMULA_TRIGGERS = ("=",)


def _escape_cell(value, triggers: tuple[str, ...]):
    """Make a cell inert; idempotent (an escaped cell starts with ')."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(triggers):
        return "'" + value
    return value


class _EscapingFormat:
    """Escapes formulae on every export, not only when the setting asks
    (see the module docstring); export_data of the library's format then
    finds nothing left to escape."""

    FORMULA_TRIGGERS: tuple[str, ...] = ()

    def _escape_formulae(self, dataset: tablib.Dataset) -> None:
        for index in range(len(dataset)):
            dataset[index] = [
                _escape_cell(self._cell(value), self.FORMULA_TRIGGERS) for value in dataset[index]
            ]

    def _cell(self, value):
        return value

    def export_data(self, dataset, **kwargs):
        self._escape_formulae(dataset)
        return super().export_data(dataset, **kwargs)


class ParticipantsCSV(_EscapingFormat, base_formats.CSV):
    FORMULA_TRIGGERS = CSV_FORMULA_TRIGGERS
    CONTENT_TYPE = "text/csv; charset=utf-8"

    def _cell(self, value):
        if isinstance(value, datetime.datetime):
            return value.strftime("%Y-%m-%d %H:%M")
        return value

    def export_data(self, dataset, **kwargs):
        text = super().export_data(dataset, delimiter=CSV_DELIMITER, **kwargs)
        return text.encode("utf-8-sig")


class ParticipantsXLSX(_EscapingFormat, base_formats.XLSX):
    FORMULA_TRIGGERS = XLSX_FORMULA_TRIGGERS

    def _cell(self, value):
        # Control characters the validators keep out of new texts: an
        # older row holding one must not fail the whole export.
        if isinstance(value, str):
            from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

            return ILLEGAL_CHARACTERS_RE.sub("\N{REPLACEMENT CHARACTER}", value)
        return value

    def export_data(self, dataset, **kwargs):
        # Adaptive widths would make a column as wide as the longest case
        # description (thousands of characters); texts with line breaks wrap.
        return super().export_data(dataset, column_width=XLSX_COLUMN_WIDTH, **kwargs)


FORMATS = {"csv": ParticipantsCSV, "xlsx": ParticipantsXLSX}


class RegistrationExportResource(resources.ModelResource):
    """The columns of the participants export, in Dutch. Export only."""

    lab = fields.Field(column_name=_("Leer Lab"))
    cohort = fields.Field(column_name=_("Cohort"))
    municipality = fields.Field(column_name=_("Gemeente"))
    cbs_code = fields.Field(column_name=_("CBS-code"))
    status = fields.Field(column_name=_("Status"))
    waitlist_place = fields.Field(column_name=_("Plaats op de wachtlijst"))
    contact_name = fields.Field(column_name=_("Contactpersoon"))
    contact_role = fields.Field(column_name=_("Functie"))
    contact_email = fields.Field(column_name=_("E-mailadres"))
    contact_phone = fields.Field(column_name=_("Telefoon"))
    case_title = fields.Field(column_name=_("Titel van de case"))
    case_description = fields.Field(column_name=_("Beschrijving van de case"))
    learning_needs = fields.Field(column_name=_("Leervragen"))
    confirmed_at = fields.Field(column_name=_("Bevestigd op"))

    class Meta:
        model = Registration
        fields = (
            "lab",
            "cohort",
            "municipality",
            "cbs_code",
            "status",
            "waitlist_place",
            "contact_name",
            "contact_role",
            "contact_email",
            "contact_phone",
            "case_title",
            "case_description",
            "learning_needs",
            "confirmed_at",
        )
        export_order = fields

    def dehydrate_lab(self, registration: Registration) -> str:
        return registration.cohort.lab.title

    def dehydrate_cohort(self, registration: Registration) -> int:
        return registration.cohort.number

    def dehydrate_municipality(self, registration: Registration) -> str:
        return registration.municipality.name

    def dehydrate_cbs_code(self, registration: Registration) -> str:
        return registration.municipality.cbs_code

    def dehydrate_status(self, registration: Registration) -> str:
        return str(registration.get_status_display())

    def dehydrate_waitlist_place(self, registration: Registration) -> int | str:
        place = getattr(registration, "waitlist_place", None)
        return place if place is not None else ""

    def _personal(self, registration: Registration, field: str) -> str:
        if registration.anonymised_at is not None:
            return ""
        return getattr(registration, field) or ""

    def dehydrate_contact_name(self, registration: Registration) -> str:
        return self._personal(registration, "contact_name")

    def dehydrate_contact_role(self, registration: Registration) -> str:
        return self._personal(registration, "contact_role")

    def dehydrate_contact_email(self, registration: Registration) -> str:
        return self._personal(registration, "contact_email")

    def dehydrate_contact_phone(self, registration: Registration) -> str:
        return self._personal(registration, "contact_phone")

    def dehydrate_case_title(self, registration: Registration) -> str:
        return self._personal(registration, "case_title")

    def dehydrate_case_description(self, registration: Registration) -> str:
        return self._personal(registration, "case_description")

    def dehydrate_learning_needs(self, registration: Registration) -> str:
        return self._personal(registration, "learning_needs")

    def dehydrate_confirmed_at(self, registration: Registration) -> datetime.datetime | str:
        if registration.confirmed_at is None:
            return ""
        # Local time without a zone: Excel has no time zones in cells.
        local = timezone.localtime(registration.confirmed_at)
        return local.replace(tzinfo=None, second=0, microsecond=0)


def participants_for_export(*, cohort_ids: Sequence[int]):
    """The live registrations of these cohorts in one query, ordered by
    lab, cohort, status (seats first), waitlist place and municipality.
    The waitlist place counts in the same order the waitlist moves up in
    (registrations.services.waitlist_position)."""
    place = Window(
        RowNumber(),
        partition_by=[F("cohort_id"), F("status")],
        order_by=[F("confirmed_at").asc(nulls_last=True), F("pk").asc()],
    )
    return (
        Registration.objects.filter(cohort_id__in=cohort_ids, status__in=LIVE_STATUSES)
        .select_related("cohort__lab", "municipality")
        .annotate(
            waitlist_place=Case(When(status=RegistrationStatus.WAITLISTED, then=place), default=None),
        )
        .order_by(
            "cohort__lab__position",
            "cohort__lab__title",
            "cohort__number",
            "status",
            F("waitlist_place").asc(nulls_first=True),
            "municipality__name",
        )
    )


@dataclass(frozen=True)
class ParticipantsExport:
    filename: str
    content: bytes
    content_type: str
    rows: int


def export_filename(*, cohorts: Sequence[Cohort], extension: str, today: datetime.date) -> str:
    if len(cohorts) == 1:
        cohort = cohorts[0]
        return f"leerlab-{cohort.lab.slug}-cohort-{cohort.number}-deelnemers-{today:%Y-%m-%d}.{extension}"
    return f"leerlab-deelnemers-{today:%Y-%m-%d}.{extension}"


def cohort_participants_export(
    *, cohort_ids: Sequence[int], file_format: str, actor: str
) -> ParticipantsExport:
    """Export the participants of these cohorts and record the export in
    each cohort's history. A fixed number of queries whatever the number
    of cohorts and registrations."""
    if file_format not in FORMATS:
        raise ValueError(f"unknown export format {file_format!r}")
    export_format = FORMATS[file_format]()
    cohorts = list(Cohort.objects.filter(pk__in=cohort_ids).select_related("lab").order_by("pk"))
    registrations = list(participants_for_export(cohort_ids=[c.pk for c in cohorts]))
    dataset = RegistrationExportResource().export(queryset=registrations)
    dataset.title = str(_("Deelnemers"))
    content = export_format.export_data(dataset)
    rows_per_cohort = Counter(r.cohort_id for r in registrations)
    with transaction.atomic():
        CohortEvent.objects.bulk_create(
            CohortEvent(
                cohort=cohort,
                action=CohortEventAction.EXPORTED,
                actor=actor[:150],
                details={"format": file_format, "rows": rows_per_cohort[cohort.pk]},
            )
            for cohort in cohorts
        )
    return ParticipantsExport(
        filename=export_filename(
            cohorts=cohorts, extension=export_format.get_extension(), today=timezone.localdate()
        ),
        content=content,
        content_type=export_format.get_content_type(),
        rows=len(registrations),
    )
