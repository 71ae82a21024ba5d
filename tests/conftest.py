import pytest
from django.conf import settings

from leerlab.models import Cohort, LeerLab


@pytest.fixture(scope="session", autouse=True)
def compiled_translations():
    """Compile locale/*/LC_MESSAGES/*.po before the first test (issue #4), as
    `make run` does before serving: the suite never runs on a missing .mo or
    on one left over from another checkout. Babel, no GNU gettext needed."""
    from django.core.management import call_command
    from django.test.utils import override_settings

    call_command("compile_translations", verbosity=0)
    # Entering and leaving override_settings(LOCALE_PATHS) fires Django's
    # setting_changed handler, which drops any catalog read before now.
    with override_settings(LOCALE_PATHS=settings.LOCALE_PATHS):
        pass


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
