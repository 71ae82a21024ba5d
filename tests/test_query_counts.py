"""The public pages cost a fixed number of queries whatever the number of
registrations (issue #2): counts are annotations, not loops."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from leerlab.models import Cohort
from municipalities.models import Municipality
from registrations.models import Registration, RegistrationStatus

# labs with their current cohorts (prefetch with annotated seat counts).
HOME_QUERIES = 2
LAB_QUERIES = 2
# The same two, plus the participating municipalities for the select.
SIGNUP_FORM_QUERIES = 3

STATUSES = [
    RegistrationStatus.CONFIRMED,
    RegistrationStatus.WAITLISTED,
    RegistrationStatus.PENDING,
    RegistrationStatus.WITHDRAWN,
]


def make_registrations(count: int) -> None:
    """`count` registrations spread over the four seeded cohorts, many
    municipalities and every status. Each municipality has at most one
    registration per cohort, so the live-registration constraint holds."""
    cohorts = list(Cohort.objects.order_by("pk"))
    municipalities_needed = -(-count // len(cohorts))
    Municipality.objects.bulk_create(
        Municipality(cbs_code=f"GM7{i:03d}", name=f"Querygemeente {i:03d}", province="Noord-Holland")
        for i in range(municipalities_needed)
    )
    municipalities = list(Municipality.objects.filter(cbs_code__startswith="GM7").order_by("cbs_code"))
    now = timezone.now()
    registrations = []
    for i in range(count):
        # Shifted per round so that every cohort gets every status.
        status = STATUSES[(i + i // len(cohorts)) % len(STATUSES)]
        live = status in (RegistrationStatus.CONFIRMED, RegistrationStatus.WAITLISTED)
        registrations.append(
            Registration(
                cohort=cohorts[i % len(cohorts)],
                municipality=municipalities[i // len(cohorts)],
                status=status,
                contact_name=f"Contact {i}",
                contact_email=f"contact{i}@example.nl",
                case_title=f"Case {i}",
                case_description="Beschrijving",
                privacy_consent_at=now,
                privacy_version="2026-11",
                token_hash=hashlib.sha256(f"query-count-{i}".encode()).hexdigest(),
                token_expires_at=now + timedelta(days=7),
                confirmed_at=now if live else None,
                token_used_at=now if live else None,
            )
        )
    Registration.objects.bulk_create(registrations, batch_size=250)
    assert Registration.objects.count() == count


@pytest.fixture(params=[10, 500], ids=["10-registrations", "500-registrations"])
def registrations(request, db):
    make_registrations(request.param)
    return request.param


def test_home_query_count_is_fixed(client, registrations, django_assert_num_queries):
    with django_assert_num_queries(HOME_QUERIES):
        response = client.get("/")
    assert response.status_code == 200
    assert response.content.count(b'class="card lab-card') == 4


def test_lab_page_query_count_is_fixed(client, registrations, django_assert_num_queries):
    with django_assert_num_queries(LAB_QUERIES):
        response = client.get("/leerlabs/verhaal-warmtetransitie/")
    assert response.status_code == 200
    state = response.context["state"]
    assert (
        state.seats_taken
        == Registration.objects.filter(cohort=state.cohort, status=RegistrationStatus.CONFIRMED).count()
    )
    assert (
        state.waitlisted
        == Registration.objects.filter(cohort=state.cohort, status=RegistrationStatus.WAITLISTED).count()
    )
    assert state.seats_taken > 0


def test_signup_form_query_count_is_fixed(client, registrations, django_assert_num_queries):
    with django_assert_num_queries(SIGNUP_FORM_QUERIES):
        response = client.get("/leerlabs/verhaal-warmtetransitie/aanmelden/")
    assert response.status_code == 200
