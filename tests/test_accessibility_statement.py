"""The accessibility statement (toegankelijkheidsverklaring) that Dutch
public bodies must publish (issue #4), after the model statement of
digitoegankelijk.nl. Its claims about testing are backed by
tests/browser/."""

import html

import pytest
from django.urls import reverse

from leerlab.views import ACCESSIBILITY_STATEMENT_DATE


def text(response) -> str:
    return html.unescape(response.content.decode())


def test_statement_has_the_parts_of_the_model_statement(client, db, settings):
    """Issue #4: organisation, website, standard, compliance status, how it
    was tested, known limitations, how to report a problem, the date."""
    settings.DEFAULT_FROM_EMAIL = "Servicepunt Leer Labs <toegankelijkheid@servicepunt.example>"
    settings.SITE_URL = "https://leerlabs.servicepunt.example"

    response = client.get(reverse("accessibility"))

    assert response.status_code == 200
    body = text(response)
    for words in [
        "Servicepunt warmtetransitie Noord-Holland",
        "https://leerlabs.servicepunt.example",
        "WCAG",
        "2.1",
        "EN 301 549",
        "voldoet gedeeltelijk",
        "axe-core",
        "toetsenbord",
        "320 pixels",
        "Bekende beperkingen",
        "beheergedeelte",
        "e-mails",
        'href="mailto:toegankelijkheid@servicepunt.example"',
        f"{ACCESSIBILITY_STATEMENT_DATE.day} november {ACCESSIBILITY_STATEMENT_DATE.year}",
    ]:
        assert words in body, words


@pytest.mark.parametrize("path", ["/", "/privacy/", "/en/"])
def test_every_page_links_to_the_statement_in_its_language(client, db, path):
    """Issue #4: the statement is one click away from every page."""
    prefix = "/en" if path.startswith("/en/") else ""

    body = text(client.get(path))

    assert f'href="{prefix}/toegankelijkheid/"' in body


def test_statement_in_english_under_the_prefix(client, db):
    response = client.get("/en/toegankelijkheid/")

    assert response.status_code == 200
    assert '<html lang="en"' in response.content.decode()
