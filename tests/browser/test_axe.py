"""axe-core on every public page, in Dutch and in English (issue #4).

The portal must meet WCAG 2.1 level A and AA (EN 301 549). axe-core, as
bundled in the axe-playwright-python wheel, runs inside Debian's Chromium
on each page an officer can meet: the form empty and with errors, the
"check your email" page, the confirmation page, the seat and waitlist
outcomes, the error pages, the privacy and accessibility statements. Zero
violations for the tags wcag2a, wcag2aa, wcag21a and wcag21aa, and none of
axe's rules on headings and landmarks (support.STRUCTURE_RULES).

axe finds only part of what WCAG asks (no tool can judge whether a text
is clear); tests/browser/test_keyboard.py and test_reflow.py cover more.
"""

import pytest

from .support import STRUCTURE_RULES, axe_violations, describe_violations, tour_public_pages

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(120),
]

# Every public page the tour must reach; a page left out of the tour by a
# later change would otherwise silently drop out of the check.
PUBLIC_PAGES = {
    "home",
    "selfservice-plan",
    "lab",
    "lab-full",
    "lab-unavailable",
    "signup",
    "signup-errors",
    "signup-sent",
    "confirm",
    "seat",
    "signup-full",
    "signup-unavailable",
    "confirm-waitlist",
    "waitlist",
    "confirm-error",
    "privacy",
    "accessibility",
    "not-found",
    "too-many-requests",
    "selfservice-request",
    "selfservice-sent",
    "selfservice-access",
    "selfservice-overview",
    "selfservice-case",
    "selfservice-handover",
    "selfservice-withdraw",
    "privacy-forget",
}


@pytest.mark.parametrize("language", ["nl", "en"])
def test_every_public_page_has_no_wcag_violations(page, portal, settings, language):
    """Issue #4: zero axe-core violations of WCAG 2.1 A/AA on every public
    page, in Dutch and in English."""
    found: dict[str, str] = {}

    def check(name: str) -> None:
        violations = axe_violations(page) + axe_violations(page, rules=STRUCTURE_RULES)
        if violations:
            found[name] = describe_violations(f"{name} ({page.url})", violations)

    seen = tour_public_pages(page, portal, language=language, settings=settings, check=check)

    assert set(seen) == PUBLIC_PAGES
    assert not found, "\n\n".join(found.values())


def test_axe_check_can_fail(page, portal):
    """Issue #4: the check above is not blind. A page of the portal's own
    origin and style sheets with an image without alternative text, a field
    without a label, yellow text on white, a skipped heading level and text
    outside the landmarks must give those violations."""
    page.goto("/")
    # No style attributes: the portal's Content-Security-Policy, which still
    # applies to this document, would drop them.
    page.set_content(
        """<!DOCTYPE html><html lang="nl"><head><title>Opzettelijk fout</title>
        <link rel="stylesheet" href="/static/vendor/bootstrap/bootstrap.min.css"></head><body>
        <main><h1>Opzettelijk fout</h1>
        <img src="/static/does-not-matter.png">
        <form><input type="text" name="naam"></form>
        <p class="text-warning">Onleesbaar geel op wit</p>
        <h4>Een kop die twee niveaus overslaat</h4></main>
        <p>Tekst buiten elk landmark</p></body></html>"""
    )
    wcag = {violation["id"] for violation in axe_violations(page)}
    structure = {violation["id"] for violation in axe_violations(page, rules=STRUCTURE_RULES)}

    assert {"image-alt", "label", "color-contrast"} <= wcag, wcag
    assert {"heading-order", "region"} <= structure, structure
