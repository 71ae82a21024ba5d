"""Helpers for the browser tests (issue #4): axe-core, focus, reflow, the
signup form, and a tour of every public page in one language."""

import re
from collections.abc import Callable
from dataclasses import dataclass

from axe_playwright_python.sync_playwright import Axe
from django.db import transaction

from leerlab.models import Cohort, CohortStatus
from municipalities.models import Municipality
from registrations.models import Registration
from tests.factories import RegistrationFactory

# WCAG 2.1 level A and AA, as EN 301 549 requires of Dutch public bodies.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# axe-core as shipped inside the axe-playwright-python wheel: injected into
# the page from disk, nothing fetched (the context fixture refuses any
# request that leaves the machine).
AXE = Axe()

NARROW = {"width": 320, "height": 800}
DESKTOP = {"width": 1280, "height": 900}
CONFIRM_LINK = re.compile(r"https?://\S+/aanmelding/bevestig/[A-Za-z0-9_-]+/")
ACCESS_LINK = re.compile(r"https?://\S+/mijn-aanmeldingen/toegang/[A-Za-z0-9_-]+/")

# Seeded labs (leerlab/migrations/0002_seed_labs.py), one per situation.
LAB_OPEN = "verhaal-warmtetransitie"
LAB_FULL = "startplan-wijkaanpak-aardgasvrij"
LAB_UNAVAILABLE = "organisatie-inrichting-warmtetransitie"
LAB_OTHER = "doelgroepgerichte-aanpak-aardgasvrij-ready"


# --- axe ---------------------------------------------------------------------------


# axe's "best practice" rules on the page's structure: one <main>, one <h1>,
# headings in order, all content inside landmarks, landmarks with unique
# names, a working skip link. Not WCAG success criteria by themselves, but
# how screen reader users find their way around (WCAG 1.3.1, 2.4.1, 2.4.6).
STRUCTURE_RULES = [
    "heading-order",
    "empty-heading",
    "page-has-heading-one",
    "landmark-one-main",
    "landmark-unique",
    "landmark-no-duplicate-banner",
    "landmark-no-duplicate-contentinfo",
    "landmark-banner-is-top-level",
    "landmark-contentinfo-is-top-level",
    "landmark-main-is-top-level",
    "region",
    "skip-link",
]


def axe_violations(page, *, rules: list[str] | None = None) -> list[dict]:
    """Violations of WCAG 2.1 A/AA on the page as it is now, or of the
    given axe rules."""
    run_only = {"type": "rule", "values": rules} if rules else {"type": "tag", "values": WCAG_TAGS}
    results = AXE.run(page, options={"runOnly": run_only, "resultTypes": ["violations"]})
    return results.response["violations"]


def describe_violations(where: str, violations: list[dict]) -> str:
    lines = [f"{where}: {len(violations)} axe violation(s)"]
    for violation in violations:
        lines.append(f"  - {violation['id']} ({violation.get('impact')}): {violation['help']}")
        lines.append(f"    {violation['helpUrl']}")
        for node in violation["nodes"][:5]:
            lines.append(f"      at {', '.join(map(str, node['target']))}: {node['html'][:160]}")
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            if summary:
                lines.append(f"        {summary[:300]}")
    return "\n".join(lines)


# --- focus, reflow -------------------------------------------------------------------

# The focused element and whether its focus can be seen: an outline (not
# "none", wider than 0) or a box-shadow, as leerlab.css draws it.
FOCUS_STATE = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
  const shadow = style.boxShadow && style.boxShadow !== "none";
  const box = el.getBoundingClientRect();
  return {
    tag: el.tagName.toLowerCase(),
    id: el.id,
    name: el.getAttribute("name"),
    text: (el.innerText || el.value || "").trim().slice(0, 60),
    href: el.getAttribute("href"),
    visible: outline || Boolean(shadow),
    // In the page, not hidden off it (as the skip link is until focused);
    // measured in page coordinates, so a smooth scroll still under way
    // does not matter.
    onScreen: box.width > 0 && box.height > 0 && box.bottom + scrollY > 0 && box.right + scrollX > 0
      && box.left + scrollX < document.documentElement.scrollWidth,
    focusVisible: el.matches(":focus-visible"),
    outline: style.outlineStyle + " " + style.outlineWidth,
    shadow: style.boxShadow,
  };
}"""


def focus_state(page) -> dict | None:
    return page.evaluate(FOCUS_STATE)


def page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def too_wide(page) -> list[str]:
    """Elements sticking out to the right of the viewport, for the message."""
    return page.evaluate(
        """() => {
      const limit = document.documentElement.clientWidth + 0.5;
      const out = [];
      for (const el of document.querySelectorAll("body *")) {
        const r = el.getBoundingClientRect();
        const name = `${el.tagName.toLowerCase()}.${el.className}`;
        if (r.right > limit) out.push(`${name} (${Math.round(r.right)}px)`);
        // Content wider than its box, e.g. a long word in a heading.
        else if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === "visible")
          out.push(`${name} (content ${el.scrollWidth}px in ${el.clientWidth}px)`);
      }
      return out.slice(0, 10);
    }"""
    )


# --- data ------------------------------------------------------------------------------


def municipalities(count: int, *, skip: int = 0) -> list[Municipality]:
    """Active Noord-Holland municipalities from the reference data."""
    found = list(
        Municipality.objects.filter(province="Noord-Holland", is_active=True).order_by("name")[
            skip : skip + count
        ]
    )
    assert len(found) == count, "the data migration should have loaded the municipalities"
    return found


def current_cohort(slug: str) -> Cohort:
    return Cohort.objects.filter(lab__slug=slug, status__in=[CohortStatus.OPEN, CohortStatus.STARTED]).get()


def confirmed_registrations(slug: str, count: int, *, skip: int = 0) -> list:
    """`count` municipalities with a seat in the lab's current cohort,
    written as the confirmation service leaves them (factory trait)."""
    cohort = current_cohort(slug)
    with transaction.atomic():
        return [
            RegistrationFactory(cohort=cohort, municipality=municipality, confirmed=True)
            for municipality in municipalities(count, skip=skip)
        ]


def make_unavailable(slug: str) -> None:
    """No cohort of this lab takes signups (the last one was completed)."""
    Cohort.objects.filter(lab__slug=slug).update(status=CohortStatus.COMPLETED)


# --- the signup form ------------------------------------------------------------------


@dataclass(frozen=True)
class Officer:
    municipality: str  # CBS code
    name: str
    email: str
    role: str = "Beleidsmedewerker warmtetransitie"
    phone: str = "023 511 5115"


def fill_signup(page, officer: Officer, *, case_title: str, contact: bool = True) -> None:
    if contact:
        page.select_option("#id_municipality", officer.municipality)
        page.fill("#id_contact_name", officer.name)
        page.fill("#id_contact_email", officer.email)
        page.fill("#id_contact_role", officer.role)
        page.fill("#id_contact_phone", officer.phone)
    page.fill("#id_case_title", case_title)
    page.fill("#id_case_description", "Een wijk met veel naoorlogse rijwoningen die aardgasvrij wordt.")
    page.fill("#id_learning_needs", "Hoe betrekken we de bewoners?")
    page.check("#id_privacy_consent")


def submit_signup(page) -> None:
    """The signup form's own submit button (the language switch has submit
    buttons too)."""
    with page.expect_navigation():
        page.click("form.signup-form button[type=submit]")


def confirmation_link(smtp, email: str) -> str:
    messages = smtp.to(email)
    assert len(messages) == 1, f"expected one email to the officer, got {[m.subject for m in messages]}"
    match = CONFIRM_LINK.search(messages[0].text)
    assert match, "no confirmation link in the email"
    return match.group(0)


def prefix(language: str) -> str:
    return "" if language == "nl" else f"/{language}"


# --- a tour of every public page ------------------------------------------------------


def _started_with_sessions(cohort_id: int) -> None:
    from datetime import time, timedelta

    from django.utils import timezone

    from leerlab.models import CohortSession
    from leerlab.services import cohort_start_now

    cohort_start_now(cohort_id=cohort_id)
    today = timezone.localdate()
    CohortSession.objects.create(
        cohort_id=cohort_id,
        topic="Aftrap: kennismaken met elkaars wijk",
        date=today + timedelta(days=14),
        start_time=time(14, 0),
        end_time=time(16, 30),
        location="Provinciehuis, Dreef 3, Haarlem",
        online_url="https://meet.example.nl/leerlab",
    )
    CohortSession.objects.create(
        cohort_id=cohort_id,
        topic="Werksessie warmtevisie",
        date=today + timedelta(days=28),
        start_time=time(9, 30),
        end_time=time(12, 0),
        location="Gemeentehuis Zaanstad",
        cancelled_at=timezone.now(),
    )


def tour_public_pages(page, smtp, *, language: str, settings, check: Callable[[str], None]) -> list[str]:
    """Open every public page of the portal in `language`, in every state an
    officer can meet, and call `check(name)` on each. Returns the names.

    Sets up: a lab that takes signups (LAB_OPEN), one that is full
    (LAB_FULL, 5 seats taken) and one without a cohort (LAB_UNAVAILABLE).
    """
    base = prefix(language)
    seen: list[str] = []

    def visit(name: str, path: str | None = None, status: int = 200) -> None:
        if path is not None:
            response = page.goto(base + path)
            assert response.status == status, f"{name}: {base + path} answered {response.status}"
        assert page.evaluate("document.documentElement.lang") == language, f"{name}: <html lang> is wrong"
        check(name)
        seen.append(name)

    confirmed_registrations(LAB_FULL, 5)
    make_unavailable(LAB_UNAVAILABLE)
    officer = Officer(
        municipality=municipalities(1, skip=10)[0].cbs_code,
        name="Sanne de Vries",
        email=f"sanne.{language}@example.nl",
    )
    waitlisted = RegistrationFactory(
        cohort=current_cohort(LAB_FULL), municipality=municipalities(1, skip=11)[0]
    )

    visit("home", "/")
    visit("lab", f"/leerlabs/{LAB_OPEN}/")
    visit("lab-full", f"/leerlabs/{LAB_FULL}/")
    visit("lab-unavailable", f"/leerlabs/{LAB_UNAVAILABLE}/")
    visit("signup", f"/leerlabs/{LAB_OPEN}/aanmelden/")
    submit_signup(page)
    page.wait_for_selector("[data-error-summary]")
    visit("signup-errors")
    fill_signup(page, officer, case_title="Wijkaanpak Schalkwijk")
    submit_signup(page)
    visit("signup-sent")
    page.goto(confirmation_link(smtp, officer.email))
    visit("confirm")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    page.wait_for_selector("[data-outcome=seat]")
    visit("seat")
    visit("signup-full", f"/leerlabs/{LAB_FULL}/aanmelden/")
    visit("signup-unavailable", f"/leerlabs/{LAB_UNAVAILABLE}/aanmelden/")
    visit("confirm-waitlist", f"/aanmelding/bevestig/{waitlisted.token}/")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    page.wait_for_selector("[data-outcome=waitlist]")
    visit("waitlist")
    visit("confirm-error", "/aanmelding/bevestig/dit-is-geen-geldige-link/", status=404)
    visit("privacy", "/privacy/")
    visit("accessibility", "/toegankelijkheid/")
    visit("not-found", "/deze-pagina-bestaat-niet/", status=404)

    # Self-service (issue #5): the officer asks for a link, opens it and
    # visits every page of their registration, and the erasure page.
    visit("selfservice-request", "/mijn-aanmeldingen/")
    page.fill("#id_email", officer.email)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    visit("selfservice-sent")
    access = [m for m in smtp.to(officer.email) if ACCESS_LINK.search(m.text)]
    assert len(access) == 1, "expected one email with a self-service link"
    page.goto(ACCESS_LINK.search(access[0].text).group(0))
    visit("selfservice-access")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    visit("selfservice-overview")
    registration = Registration.objects.get(contact_email=officer.email)
    # Issue #6: the cohort starts and has a plan of sessions, one called off.
    _started_with_sessions(registration.cohort_id)
    visit("selfservice-plan", "/mijn-aanmeldingen/")
    visit("selfservice-case", f"/mijn-aanmeldingen/{registration.pk}/case/")
    visit("selfservice-handover", f"/mijn-aanmeldingen/{registration.pk}/overdragen/")
    visit("selfservice-withdraw", f"/mijn-aanmeldingen/{registration.pk}/afmelden/")
    visit("privacy-forget", "/privacy/vergeet-mij/")

    # Too many attempts: the confirmation links' rate limit, set to one.
    settings.RATELIMIT_ENABLE = True
    settings.LEERLAB_RATELIMIT_CONFIRM = "1/h"
    for _ in range(2):
        response = page.goto(f"{base}/aanmelding/bevestig/nog-een-ongeldige-link/")
    assert response.status == 429, f"expected the 429 page, got {response.status}"
    visit("too-many-requests")
    return seen


# --- the keyboard ---------------------------------------------------------------------


def tab_to(page, selector: str, *, backwards: bool = False, limit: int = 40) -> list[dict]:
    """Press Tab (or Shift+Tab) until the element matching `selector` has
    the focus. Every stop on the way must show where the focus is.
    Returns the stops."""
    key = "Shift+Tab" if backwards else "Tab"
    stops = []
    for _ in range(limit):
        page.keyboard.press(key)
        state = focus_state(page)
        assert state is not None, f"focus left the page while tabbing to {selector}; stops: {stops}"
        assert state["visible"] and state["onScreen"], f"focus not visible on {state}"
        stops.append(state)
        if page.evaluate("(selector) => document.activeElement.matches(selector)", selector):
            return stops
    raise AssertionError(
        f"{selector} not reached with {key} in {limit} stops: {[s['id'] or s['text'] for s in stops]}"
    )


def active_matches(page, selector: str) -> bool:
    return page.evaluate("(selector) => document.activeElement.matches(selector)", selector)
