"""registration_submit and registration_confirm (issue #2)."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from leerlab.models import CohortStatus
from municipalities.models import Municipality
from outbox.models import OutboxMessage
from registrations import errors, services
from registrations.models import Registration, RegistrationStatus
from tests.factories import CohortFactory, RegistrationFactory


def submit(cohort, municipality, **overrides):
    data = {
        "cohort": cohort,
        "municipality": municipality,
        "contact_name": "Anna de Vries",
        "contact_email": "a.devries@haarlem.nl",
        "case_title": "Wijkaanpak Schalkwijk",
        "case_description": "We willen Schalkwijk aardgasvrij-ready maken.",
        "privacy_consent": True,
    }
    data.update(overrides)
    return services.registration_submit(**data)


@pytest.fixture
def haarlem(db):
    return Municipality.objects.get(cbs_code="GM0392")


def test_submit_stores_pending_and_queues_confirmation(
    cohort, haarlem, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        registration = submit(cohort, haarlem)
    assert registration.status == RegistrationStatus.PENDING
    assert registration.privacy_version and registration.privacy_consent_at
    assert registration.email_domain_flagged is False
    assert registration.token_expires_at > timezone.now() + timedelta(days=6)
    message = OutboxMessage.objects.get(registration=registration)
    assert "Bevestig" in message.subject
    assert "/aanmelding/bevestig/" in message.body_text
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["a.devries@haarlem.nl"]
    # Only the hash is stored: the token in the mail is not in the row.
    token = message.body_text.split("/aanmelding/bevestig/")[1].split("/")[0]
    assert token not in registration.token_hash
    assert services.token_hash(token) == registration.token_hash


def test_submit_flags_foreign_email_domain_without_blocking(cohort, haarlem):
    registration = submit(cohort, haarlem, contact_email="adviseur@ingenieursbureau.example")
    assert registration.email_domain_flagged is True


def test_submit_accepts_subdomain_of_known_domain(cohort, haarlem):
    registration = submit(cohort, haarlem, contact_email="a@mail.haarlem.nl")
    assert registration.email_domain_flagged is False


def test_submit_english_uses_english_link(cohort, haarlem):
    registration = submit(cohort, haarlem, language="en")
    message = OutboxMessage.objects.get(registration=registration)
    assert "/en/aanmelding/bevestig/" in message.body_text


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("GM0344", errors.MunicipalityOutsideProvince),  # Utrecht
        ("GM0457", errors.MunicipalityInactive),  # Weesp, merged into Amsterdam
    ],
)
def test_submit_refuses_non_participating(cohort, code, error):
    with pytest.raises(error):
        submit(cohort, Municipality.objects.get(cbs_code=code))
    assert Registration.objects.count() == 0


def test_outside_province_message_mentions_noord_holland():
    assert "Noord-Holland" in str(errors.MunicipalityOutsideProvince().message)


def test_submit_requires_consent(cohort, haarlem):
    with pytest.raises(errors.ConsentMissing):
        submit(cohort, haarlem, privacy_consent=False)
    assert Registration.objects.count() == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"contact_email": "geen-adres"},
        {"contact_name": "x" * 101},
        {"case_title": "x" * 151},
        {"case_description": "x" * 4001},
        {"contact_name": "Anna\x00"},
        {"case_title": "Titel\u202e"},
        {"case_description": "tekst\x1b[31m"},
        {"contact_phone": "bel me"},
        {"case_title": "   "},
    ],
)
def test_submit_validates_fields(cohort, haarlem, overrides):
    with pytest.raises(ValidationError):
        submit(cohort, haarlem, **overrides)
    assert Registration.objects.count() == 0
    assert OutboxMessage.objects.count() == 0


def test_multiline_text_keeps_line_breaks(cohort, haarlem):
    registration = submit(cohort, haarlem, case_description="regel 1\r\nregel 2\ttab")
    assert "\n" in registration.case_description


def test_submit_refuses_municipality_with_live_registration(cohort, haarlem):
    RegistrationFactory(cohort=cohort, municipality=haarlem, confirmed=True)
    with pytest.raises(errors.AlreadyRegistered) as caught:
        submit(cohort, haarlem, contact_email="iemand.anders@haarlem.nl")
    assert "@" not in str(caught.value.message)


def test_submit_refuses_finished_cohort(haarlem):
    cohort = CohortFactory(status=CohortStatus.COMPLETED)
    with pytest.raises(errors.SignupClosed):
        submit(cohort, haarlem)


def test_confirm_gives_seat_then_waitlist(cohort):
    for _ in range(5):
        pending = RegistrationFactory(cohort=cohort)
        result = services.registration_confirm(token=pending.token)
        assert result.has_seat and result.newly_confirmed
    # The cohort closes through the evaluate task run eagerly on commit in
    # production; here the seat count alone must send the 6th to the waitlist.
    sixth = RegistrationFactory(cohort=cohort)
    result = services.registration_confirm(token=sixth.token)
    assert result.registration.status == RegistrationStatus.WAITLISTED
    assert services.waitlist_position(registration=result.registration) == 1
    seventh = RegistrationFactory(cohort=cohort)
    result = services.registration_confirm(token=seventh.token)
    assert services.waitlist_position(registration=result.registration) == 2
    assert OutboxMessage.objects.filter(subject__contains="wachtlijst").count() == 2


def test_confirm_on_closed_cohort_waitlists(db):
    cohort = CohortFactory(closed=True)
    pending = RegistrationFactory(cohort=cohort)
    result = services.registration_confirm(token=pending.token)
    assert result.registration.status == RegistrationStatus.WAITLISTED


def test_confirm_twice_is_single_use_and_shows_outcome_again(cohort):
    pending = RegistrationFactory(cohort=cohort)
    first = services.registration_confirm(token=pending.token)
    again = services.registration_confirm(token=pending.token)
    assert first.newly_confirmed and not again.newly_confirmed
    assert again.registration.status == RegistrationStatus.CONFIRMED
    assert OutboxMessage.objects.filter(registration=pending, kind="seat_confirmed").count() == 1


def test_confirm_expired_token(cohort):
    pending = RegistrationFactory(cohort=cohort, expired=True)
    with pytest.raises(errors.TokenExpired):
        services.registration_confirm(token=pending.token)
    pending.refresh_from_db()
    assert pending.status == RegistrationStatus.PENDING


@pytest.mark.parametrize("token", ["", "onbekend", "x" * 500, "\x00", "ünïcødé"])
def test_confirm_unknown_token(db, token):
    with pytest.raises(errors.InvalidToken):
        services.registration_confirm(token=token)


def test_confirm_refuses_second_live_registration_of_municipality(cohort, haarlem):
    first = RegistrationFactory(cohort=cohort, municipality=haarlem)
    second = RegistrationFactory(cohort=cohort, municipality=haarlem)
    services.registration_confirm(token=first.token)
    with pytest.raises(errors.AlreadyRegistered):
        services.registration_confirm(token=second.token)
    second.refresh_from_db()
    assert second.status == RegistrationStatus.PENDING


def test_confirm_refused_when_cohort_cancelled(db):
    cohort = CohortFactory(status=CohortStatus.CANCELLED)
    pending = RegistrationFactory(cohort=cohort)
    with pytest.raises(errors.SignupClosed):
        services.registration_confirm(token=pending.token)


def test_confirm_enqueues_evaluation_after_commit(cohort, django_capture_on_commit_callbacks):
    pendings = [RegistrationFactory(cohort=cohort) for _ in range(3)]
    for pending in pendings:
        with django_capture_on_commit_callbacks(execute=True):
            services.registration_confirm(token=pending.token)
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED


def test_token_for_get_page_changes_nothing(cohort):
    pending = RegistrationFactory(cohort=cohort)
    found = services.registration_for_token(token=pending.token)
    assert found.pk == pending.pk
    pending.refresh_from_db()
    assert pending.status == RegistrationStatus.PENDING and pending.token_used_at is None


def test_resend_confirmation_rotates_token(cohort):
    pending = RegistrationFactory(cohort=cohort)
    assert services.registration_resend_confirmation(registration_id=pending.pk) is True
    with pytest.raises(errors.InvalidToken):
        services.registration_confirm(token=pending.token)
    message = OutboxMessage.objects.get(registration=pending, kind="confirm_request")
    new_token = message.body_text.split("/aanmelding/bevestig/")[1].split("/")[0]
    assert services.registration_confirm(token=new_token).has_seat


def test_resend_confirmation_ignores_confirmed(cohort):
    confirmed = RegistrationFactory(cohort=cohort, confirmed=True)
    assert services.registration_resend_confirmation(registration_id=confirmed.pk) is False


def test_reflag_after_advisor_adds_domain(cohort, haarlem):
    registration = submit(cohort, haarlem, contact_email="a@ijmond-samen.example")
    assert registration.email_domain_flagged
    haarlem.email_domains.create(domain="ijmond-samen.example")
    assert services.registrations_reflag_email_domains(municipality_id=haarlem.pk) == 1
    registration.refresh_from_db()
    assert registration.email_domain_flagged is False


def test_waitlist_position_breaks_ties_by_id(db):
    cohort = CohortFactory(closed=True)
    moment = timezone.now()
    first = RegistrationFactory(cohort=cohort, waitlisted=True, confirmed_at=moment)
    second = RegistrationFactory(cohort=cohort, waitlisted=True, confirmed_at=moment)
    assert services.waitlist_position(registration=first) == 1
    assert services.waitlist_position(registration=second) == 2


def test_purge_expired_removes_unconfirmed_signups_and_their_mail(cohort, haarlem):
    expired = submit(cohort, haarlem)
    Registration.objects.filter(pk=expired.pk).update(token_expires_at=timezone.now() - timedelta(minutes=1))
    fresh = RegistrationFactory(cohort=cohort)
    confirmed = RegistrationFactory(cohort=cohort, confirmed=True, expired=True)
    assert OutboxMessage.objects.filter(registration_id=expired.pk).exists()
    assert services.registrations_purge_expired() == 1
    assert set(Registration.objects.values_list("pk", flat=True)) == {fresh.pk, confirmed.pk}
    assert not OutboxMessage.objects.filter(to="a.devries@haarlem.nl").exists()


def test_double_signup_by_same_person_confirms_to_the_existing_outcome(cohort, haarlem):
    """Issue #2: a double submit gives two links; the second shows the first's outcome."""
    first = RegistrationFactory(cohort=cohort, municipality=haarlem, contact_email="a@haarlem.nl")
    second = RegistrationFactory(cohort=cohort, municipality=haarlem, contact_email="A@Haarlem.nl")
    services.registration_confirm(token=first.token)
    result = services.registration_confirm(token=second.token)
    assert result.registration.pk == first.pk and result.has_seat and not result.newly_confirmed
    assert Registration.objects.filter(status__in=["confirmed", "waitlisted"]).count() == 1


def test_identical_submit_within_window_is_one_signup_and_one_email(cohort, haarlem):
    """Issue #3 (double submit): the second submit returns the first signup."""
    first = submit(cohort, haarlem)
    second = submit(cohort, haarlem, contact_email="A.DeVries@haarlem.nl")
    assert second.pk == first.pk
    assert Registration.objects.count() == 1
    assert OutboxMessage.objects.filter(kind="confirm_request").count() == 1


def test_submit_after_window_makes_a_new_link(cohort, haarlem):
    first = submit(cohort, haarlem)
    Registration.objects.filter(pk=first.pk).update(created_at=timezone.now() - services.RESUBMIT_WINDOW)
    second = submit(cohort, haarlem)
    assert second.pk != first.pk
    assert OutboxMessage.objects.filter(kind="confirm_request").count() == 2


def test_other_person_of_same_municipality_gets_own_signup(cohort, haarlem):
    first = submit(cohort, haarlem)
    second = submit(cohort, haarlem, contact_email="collega@haarlem.nl")
    assert second.pk != first.pk


def test_used_token_is_removed_from_sent_confirmation_email(
    cohort, haarlem, django_capture_on_commit_callbacks
):
    """Issue #3: tokens are kept only as hashes; the outbox copy goes once used."""
    with django_capture_on_commit_callbacks(execute=True):
        registration = submit(cohort, haarlem)
    message = OutboxMessage.objects.get(registration=registration, kind="confirm_request")
    token = message.body_text.split("/aanmelding/bevestig/")[1].split("/")[0]
    services.registration_confirm(token=token)
    message.refresh_from_db()
    assert token not in message.body_text and token not in message.body_html
    assert "[gebruikt]" in message.body_text


def test_second_click_after_a_new_cohort_opened_is_still_one_signup(cohort, haarlem):
    """Issue #3 (found by the load test): a double submit straddling a new cohort."""
    from leerlab.services import cohort_create

    first = submit(cohort, haarlem)
    newer = cohort_create(lab_id=cohort.lab_id)
    second = submit(newer, haarlem)
    assert second.pk == first.pk
    assert Registration.objects.count() == 1


def test_municipality_with_a_place_in_one_run_cannot_join_another_current_run(cohort, haarlem):
    from leerlab.services import cohort_create

    RegistrationFactory(cohort=cohort, municipality=haarlem, confirmed=True)
    newer = cohort_create(lab_id=cohort.lab_id)
    with pytest.raises(errors.AlreadyRegistered):
        submit(newer, haarlem, contact_email="collega@haarlem.nl")
    pending = RegistrationFactory(cohort=newer, municipality=haarlem)
    with pytest.raises(errors.AlreadyRegistered):
        services.registration_confirm(token=pending.token)
