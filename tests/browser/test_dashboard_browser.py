"""The advisors' dashboard and learning-needs page in a real browser
(issue #6): an advisor (group "Servicepunt-adviseurs", not a superuser)
logs in through the admin's login page and opens both pages with cohorts,
waitlists, flagged domains and the map filled in.

- zero axe-core violations of WCAG 2.1 A/AA;
- no horizontal scrolling at 1280 CSS pixels (the admin with its sidebar);
- the Content-Security-Policy refuses nothing (no inline script or style);
- the map is drawn: one visible path per municipality, a tooltip title;
- screenshots in test-artifacts/screenshots/ for a person to look at.
"""

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from leerlab.models import Cohort, CohortStatus
from tests.factories import RegistrationFactory, UserFactory

from .support import (
    DESKTOP,
    LAB_FULL,
    LAB_OPEN,
    LAB_OTHER,
    axe_violations,
    confirmed_registrations,
    current_cohort,
    describe_violations,
    municipalities,
    page_width,
    too_wide,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(120),
]

PASSWORD = "een-lang-testwachtwoord"


def _log_in_as_advisor(page) -> None:
    advisor = UserFactory(
        staff=True, username="adviseur-dashboard", first_name="Dana", last_name="de Adviseur"
    )
    advisor.groups.add(Group.objects.get(name="Servicepunt-adviseurs"))
    for cohort in Cohort.objects.all():
        cohort.advisors.add(advisor)
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", advisor.username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("#login-form [type=submit]")
    assert "/admin/login/" not in page.url, page.locator(".errornote").all_inner_texts()


def _fill_portal() -> Cohort:
    """A full lab with a waitlist, a lab with two participants (one with a
    flagged domain and long texts), a completed cohort; returns the
    cohort whose learning needs the test opens."""
    confirmed_registrations(LAB_FULL, 5)
    full = current_cohort(LAB_FULL)
    Cohort.objects.filter(pk=full.pk).update(
        status=CohortStatus.CLOSED, started_at=timezone.now(), closed_at=timezone.now()
    )
    for municipality in municipalities(2, skip=20):
        RegistrationFactory(cohort=full, municipality=municipality, waitlisted=True)

    cohort = current_cohort(LAB_OPEN)
    first, second = municipalities(2, skip=30)
    RegistrationFactory(
        cohort=cohort,
        municipality=first,
        confirmed=True,
        email_domain_flagged=True,
        contact_email="projectleider@adviesbureau-voorbeeld.example",
        case_title="Wijkuitvoeringsplan voor de naoorlogse wijken",
        case_description="Een wijk met veel naoorlogse rijwoningen.\nEigenaar-bewoners en corporatiebezit door elkaar.",
        learning_needs="Hoe betrekken we bewoners <vroeg> in het proces & hoe houden we ze erbij?\n\n"
        + "Warmtetransitievisieuitvoeringsprogrammering " * 6,
    )
    RegistrationFactory(cohort=cohort, municipality=second, confirmed=True)
    RegistrationFactory(cohort=current_cohort(LAB_OTHER), municipality=first, confirmed=True)
    RegistrationFactory(cohort=current_cohort(LAB_OTHER), municipality=municipalities(1, skip=35)[0])
    Cohort.objects.create(
        lab=current_cohort(LAB_OTHER).lab, number=9, status=CohortStatus.COMPLETED, ended_at=timezone.now()
    )
    return cohort


def _check(page, name: str, screenshots, csp_refusals: list[str]) -> None:
    violations = axe_violations(page)
    assert not violations, describe_violations(f"{name} ({page.url})", violations)
    assert page_width(page) <= DESKTOP["width"], f"{name} scrolls sideways: {too_wide(page)}"
    assert not csp_refusals, f"{name}: the Content-Security-Policy refused {csp_refusals}"
    page.screenshot(path=screenshots / f"admin-{name}-1280.png", full_page=True)


def test_dashboard_and_learning_needs_for_an_advisor(page, portal, screenshots):
    """Issue #6: both pages as an advisor have no WCAG 2.1 A/AA violations,
    fit 1280 pixels and draw the map."""
    cohort = _fill_portal()
    csp_refusals: list[str] = []
    page.on(
        "console",
        lambda message: (
            csp_refusals.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    _log_in_as_advisor(page)

    # The admin home leads to the dashboard.
    _check(page, "home", screenshots, csp_refusals)
    with page.expect_navigation():
        page.click("[data-dashboard-link] a")
    assert page.url.endswith("/admin/dashboard/")
    assert page.locator("h1").inner_text() == "Dashboard Leer Labs"

    paths = page.locator("svg.participation-map-svg path[data-cbs-code]")
    assert paths.count() == 44
    box = page.locator("svg.participation-map-svg").bounding_box()
    assert box and box["width"] > 200 and box["height"] > 300, box
    assert page.locator("svg.participation-map-svg path.participation-2").count() == 1
    assert "Kaartgegevens: CBS / Kadaster (PDOK)" in page.locator("#kaart").inner_text()
    assert page.locator("[data-flagged] tbody tr").count() == 1
    assert "adviesbureau-voorbeeld.example" in page.locator("[data-flagged]").inner_text()
    assert page.locator("[data-waitlist] li").count() == 2
    page.locator(".ll-map-table summary").click()
    assert page.locator(".ll-map-table tbody tr").count() == 9
    _check(page, "dashboard", screenshots, csp_refusals)

    with page.expect_navigation():
        page.click(f"[data-cohort='{cohort.pk}'] a[href$='/leervragen/']")
    assert page.locator("[data-section=confirmed] .ll-card").count() == 2
    assert "<vroeg>" in page.locator("[data-section=confirmed]").inner_text()
    _check(page, "learning-needs", screenshots, csp_refusals)

    # Side by side: at 1280 pixels the two cards share a row.
    cards = page.locator("[data-section=confirmed] .ll-card")
    first, second = cards.nth(0).bounding_box(), cards.nth(1).bounding_box()
    assert first["y"] == second["y"] and first["x"] < second["x"]
