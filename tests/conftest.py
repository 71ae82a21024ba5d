import pytest

from leerlab.models import Cohort, LeerLab


@pytest.fixture
def lab(db) -> LeerLab:
    """A seeded lab (from the data migration) with its open cohort."""
    return LeerLab.objects.get(slug="verhaal-warmtetransitie")


@pytest.fixture
def cohort(lab) -> Cohort:
    return lab.cohorts.get(number=1)
