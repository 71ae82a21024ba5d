"""factory_boy factories with traits, e.g. RegistrationFactory(confirmed=True)."""

import hashlib
import secrets
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.text import slugify

from leerlab.models import Cohort, CohortStatus, LeerLab
from municipalities.models import EmailDomain, Municipality
from registrations.models import Registration, RegistrationStatus


class MunicipalityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Municipality
        django_get_or_create = ("cbs_code",)

    cbs_code = factory.Sequence(lambda n: f"GM9{n:03d}")
    name = factory.Sequence(lambda n: f"Testgemeente {n:03d}")
    province = "Noord-Holland"
    is_active = True

    class Params:
        outside = factory.Trait(province="Utrecht")
        inactive = factory.Trait(is_active=False)


class EmailDomainFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EmailDomain

    municipality = factory.SubFactory(MunicipalityFactory)
    domain = factory.Sequence(lambda n: f"gemeente{n}.nl")


class LeerLabFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LeerLab
        django_get_or_create = ("slug",)

    title = factory.Sequence(lambda n: f"Test Leer Lab {n}")
    slug = factory.LazyAttribute(lambda o: slugify(o.title))
    summary = "Samenvatting van het Leer Lab."
    description = "Beschrijving van het Leer Lab."
    min_municipalities = 3
    max_municipalities = 5
    position = factory.Sequence(lambda n: 100 + n)


class CohortFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cohort
        skip_postgeneration_save = True

    lab = factory.SubFactory(LeerLabFactory)
    number = factory.Sequence(lambda n: n + 1)
    status = CohortStatus.OPEN

    class Params:
        started = factory.Trait(status=CohortStatus.STARTED, started_at=factory.LazyFunction(timezone.now))
        closed = factory.Trait(
            status=CohortStatus.CLOSED,
            started_at=factory.LazyFunction(timezone.now),
            closed_at=factory.LazyFunction(timezone.now),
        )

    @factory.post_generation
    def advisors(self, create, extracted, **kwargs):
        if create and extracted:
            self.advisors.add(*extracted)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"adviseur{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@servicepunt.example")
    first_name = "Adviseur"
    password = factory.django.Password("een-lang-testwachtwoord")

    class Params:
        staff = factory.Trait(is_staff=True)
        superuser = factory.Trait(is_staff=True, is_superuser=True)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RegistrationFactory(factory.django.DjangoModelFactory):
    """A pending registration by default. Its plain token is on `.token`."""

    class Meta:
        model = Registration

    cohort = factory.SubFactory(CohortFactory)
    municipality = factory.SubFactory(MunicipalityFactory)
    status = RegistrationStatus.PENDING
    contact_name = factory.Faker("name", locale="nl_NL")
    contact_email = factory.Sequence(lambda n: f"ambtenaar{n}@example.nl")
    contact_role = "Beleidsmedewerker warmtetransitie"
    case_title = factory.Sequence(lambda n: f"Case {n}")
    case_description = "Een wijk die aardgasvrij wordt."
    learning_needs = "Hoe betrekken we bewoners?"
    privacy_consent_at = factory.LazyFunction(timezone.now)
    privacy_version = "2026-11"
    token = factory.LazyFunction(lambda: secrets.token_urlsafe(32))
    token_hash = factory.LazyAttribute(lambda o: _hash(o.token))
    token_expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))

    class Params:
        confirmed = factory.Trait(
            status=RegistrationStatus.CONFIRMED,
            confirmed_at=factory.LazyFunction(timezone.now),
            token_used_at=factory.LazyFunction(timezone.now),
        )
        waitlisted = factory.Trait(
            status=RegistrationStatus.WAITLISTED,
            confirmed_at=factory.LazyFunction(timezone.now),
            token_used_at=factory.LazyFunction(timezone.now),
        )
        expired = factory.Trait(
            token_expires_at=factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=1))
        )

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        token = kwargs.pop("token")
        obj = super()._create(model_class, *args, **kwargs)
        obj.token = token
        return obj

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        token = kwargs.pop("token")
        obj = super()._build(model_class, *args, **kwargs)
        obj.token = token
        return obj
