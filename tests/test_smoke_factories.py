from registrations.models import RegistrationStatus
from tests.factories import RegistrationFactory


def test_registration_factory_traits(db):
    registration = RegistrationFactory(confirmed=True)
    assert registration.status == RegistrationStatus.CONFIRMED
    assert registration.token and len(registration.token_hash) == 64
