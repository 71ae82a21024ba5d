"""What the signup form tells browsers and assistive technology (issue #4):
input types and autocomplete tokens (WCAG 1.3.5), hints and errors tied to
their fields (aria-describedby, aria-invalid), a named language switch that
says which language is current."""

import pytest

from .support import LAB_OPEN, submit_signup

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(60),
]

# What Chromium computes for each field: type, autocomplete, the texts its
# aria-describedby points to, aria-invalid, and its label.
FIELD_STATE = """(id) => {
  const el = document.getElementById(id);
  const described = (el.getAttribute("aria-describedby") || "").split(/\\s+/).filter(Boolean)
    .map((ref) => { const d = document.getElementById(ref); return d ? d.innerText.trim() : `missing #${ref}`; });
  return {
    type: el.type,
    autocomplete: el.getAttribute("autocomplete"),
    described,
    invalid: el.getAttribute("aria-invalid"),
    labels: Array.from(el.labels || []).map((l) => l.innerText.trim()),
  };
}"""


def field(page, name: str) -> dict:
    return page.evaluate(FIELD_STATE, f"id_{name}")


def test_fields_have_types_autocomplete_hints_and_errors(page, portal):
    """Issue #4: the contact fields carry the autocomplete tokens name,
    email, organization-title and tel and the input types email and tel;
    after a failed submit each field with an error is aria-invalid and
    described by its error and its hint."""
    page.goto(f"/leerlabs/{LAB_OPEN}/aanmelden/")
    expected = {
        "contact_name": ("text", "name"),
        "contact_email": ("email", "email"),
        "contact_role": ("text", "organization-title"),
        "contact_phone": ("tel", "tel"),
    }
    for name, (input_type, token) in expected.items():
        state = field(page, name)
        assert (state["type"], state["autocomplete"]) == (input_type, token), (name, state)
        assert state["labels"], f"{name} has no label"
    assert field(page, "municipality")["described"] == [
        "De gemeente die u aanmeldt. Alleen gemeenten in Noord-Holland kunnen meedoen."
    ]

    page.fill("#id_contact_email", "geen-adres")
    submit_signup(page)

    email = field(page, "contact_email")
    assert email["invalid"] == "true"
    assert any("geldig e-mailadres" in text for text in email["described"]), email
    assert any("bevestigingslink" in text for text in email["described"]), email
    for name in ("municipality", "contact_name", "case_title", "case_description", "privacy_consent"):
        state = field(page, name)
        assert state["invalid"] == "true", (name, state)
        assert state["described"], (name, state)
        assert not any(text.startswith("missing #") for text in state["described"]), (name, state)
    # Optional fields left empty are not marked as wrong.
    assert field(page, "contact_role")["invalid"] is None


def test_language_switch_is_named_and_shows_the_current_language(page, portal):
    """Issue #4: the language switch is a group with a name (its legend);
    each button names its language in that language (lang attribute) and
    the current one is marked aria-current."""
    for path, current in [("/", "nl"), ("/en/", "en")]:
        page.goto(path)
        group = page.locator(".lang-switch fieldset")
        assert group.locator("legend").text_content().strip()
        buttons = group.locator("button")
        assert buttons.count() == 2
        for index in range(2):
            button = buttons.nth(index)
            code = button.get_attribute("value")
            assert button.get_attribute("lang") == code
            assert button.inner_text().strip()
            assert button.get_attribute("aria-current") == ("true" if code == current else None), (path, code)
