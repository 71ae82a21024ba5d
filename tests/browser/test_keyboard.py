"""Keyboard only (issue #4): the whole signup with Tab, Shift+Tab, typing,
Space and Enter; the focus always visible; after a failed submit the focus
on the error summary, whose links lead to their fields (the pattern of the
NL Design System and GOV.UK)."""

import pytest

from registrations.models import Registration, RegistrationStatus

from .support import (
    LAB_OPEN,
    active_matches,
    confirmation_link,
    focus_state,
    municipalities,
    tab_to,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(120),
]

SIGNUP = f"/leerlabs/{LAB_OPEN}/aanmelden/"
SUMMARY = "[data-error-summary]"


def test_skip_link_is_the_first_stop_and_jumps_to_the_content(page, portal):
    """Issue #4: the first Tab shows the skip link; Enter moves the focus to
    the main content, so the next Tab is in the page, not the header."""
    page.goto(SIGNUP)
    page.keyboard.press("Tab")
    state = focus_state(page)
    assert state["href"] == "#main"
    assert state["visible"] and state["onScreen"], state
    page.keyboard.press("Enter")
    assert active_matches(page, "#main")
    page.keyboard.press("Tab")
    assert active_matches(page, "main *"), focus_state(page)


def test_the_whole_signup_works_with_the_keyboard_alone(page, portal):
    """Issue #4: no mouse. A failed submit puts the focus on the error
    summary at the top; each of its links puts the focus on its field; then
    the form is filled in and sent, and the signup confirmed, with Tab,
    typing, Space and Enter."""
    municipality = municipalities(1, skip=20)[0]
    page.goto(SIGNUP)

    # Submit the empty form: Tab to the button, Enter.
    tab_to(page, "form.signup-form button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector(SUMMARY)
    assert active_matches(page, SUMMARY), (
        f"focus is not on the error summary but on {focus_state(page) or '<body>'}"
    )
    assert page.locator(SUMMARY).evaluate("(el) => el.getBoundingClientRect().top < 400")

    # Every link in the summary leads to its field.
    targets = [
        href[1:]
        for href in page.locator(f"{SUMMARY} a").evaluate_all("(els) => els.map(e => e.getAttribute('href'))")
    ]
    assert targets == [
        "id_municipality",
        "id_contact_name",
        "id_contact_email",
        "id_case_title",
        "id_case_description",
        "id_privacy_consent",
    ]
    for index, target in enumerate(targets):
        link = f"{SUMMARY} li:nth-child({index + 1}) a"
        tab_to(page, link, backwards=index > 0)
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == target
        state = focus_state(page)
        assert state["visible"] and state["onScreen"], state

    # Now fill it in from the top of the form, field by field.
    tab_to(page, "#id_municipality", backwards=True)
    page.keyboard.type(municipality.name)  # a closed <select> picks by typing
    assert page.input_value("#id_municipality") == municipality.cbs_code
    for selector, text in [
        ("#id_contact_name", "Joost van Dam"),
        ("#id_contact_email", "j.vandam@example.nl"),
        ("#id_contact_role", "Projectleider warmte"),
        ("#id_contact_phone", "+31 20 123 4567"),
        ("#id_case_title", "Aardgasvrij Centrum"),
        ("#id_case_description", "Een binnenstad met monumenten."),
        ("#id_learning_needs", "Hoe pakken we monumenten aan?"),
    ]:
        stops = tab_to(page, selector)
        assert len(stops) == 1, f"{selector}: extra Tab stops {stops[:-1]}"
        page.keyboard.type(text)
    tab_to(page, "#id_privacy_consent")
    page.keyboard.press("Space")
    assert page.is_checked("#id_privacy_consent")
    tab_to(page, "form.signup-form button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")

    assert "/aanmelden/verzonden/" in page.url
    registration = Registration.objects.get(contact_email="j.vandam@example.nl")
    assert registration.municipality_id == municipality.pk
    assert registration.contact_phone == "+31 20 123 4567"

    # The emailed link opens the confirmation page; the button by keyboard.
    page.goto(confirmation_link(portal, "j.vandam@example.nl"))
    tab_to(page, "main form button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_attribute("[data-outcome]", "data-outcome") == "seat"
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.CONFIRMED


# The page types whose Tab stops are walked; the signup form's own stops
# are walked above as well.
FOCUS_PAGES = ["/", f"/leerlabs/{LAB_OPEN}/", SIGNUP, "/privacy/", "/toegankelijkheid/", "/en/"]


def test_focus_is_visible_on_every_tab_stop(page, portal):
    """Issue #4 (WCAG 2.4.7): Tab through each whole page, from the skip
    link to the footer; every stop shows a focus indicator and is on screen."""
    for path in FOCUS_PAGES:
        page.goto(path)
        stops = []
        for _ in range(120):
            page.keyboard.press("Tab")
            state = focus_state(page)
            if state is None or (stops and state == stops[0]):
                break  # back at the start: the whole page was visited
            assert state["visible"] and state["onScreen"], (
                f"{path}: focus not visible at stop {len(stops) + 1}: {state}"
            )
            stops.append(state)
        assert stops and stops[0]["href"] == "#main", f"{path}: the skip link must be the first stop"
        assert len(stops) > 5, f"{path}: only {len(stops)} stops"
