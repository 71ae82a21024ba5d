import pytest

from leerlab.models import Cohort, LeerLab


@pytest.fixture
def lab(db) -> LeerLab:
    """A seeded lab (from the data migration) with its open cohort."""
    return LeerLab.objects.get(slug="verhaal-warmtetransitie")


@pytest.fixture
def cohort(lab) -> Cohort:
    return lab.cohorts.get(number=1)


@pytest.fixture(autouse=True)
def dutch():
    """Every test starts in Dutch: a request under /en/ must not leave
    English active for the next test's reverse() and texts."""
    from django.utils import translation

    with translation.override("nl"):
        yield
