"""Public information pages. Reads go through leerlab.selectors, so each
page costs a fixed number of queries."""

from datetime import date
from email.utils import parseaddr
from urllib.parse import urlsplit

from django.conf import settings
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.http import require_safe
from django.views.i18n import set_language as django_set_language

from .security import drop_malformed_redirect_targets
from .selectors import lab_state, lab_states

# The day the accessibility statement was last reviewed; update it with the
# text whenever the portal's tests or known limitations change (issue #4).
ACCESSIBILITY_STATEMENT_DATE = date(2026, 11, 25)


def _contact_address() -> str:
    # Questions about personal data and accessibility go to the address our
    # mail comes from.
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1]


@require_safe
def home(request):
    return render(request, "leerlab/home.html", {"states": lab_states()})


@require_safe
def lab_detail(request, slug):
    state = lab_state(slug=slug)
    return render(request, "leerlab/lab_detail.html", {"state": state, "lab": state.lab})


@require_safe
def privacy(request):
    return render(
        request,
        "leerlab/privacy.html",
        {
            "privacy_version": settings.LEERLAB_PRIVACY_VERSION,
            "confirmation_days": settings.LEERLAB_CONFIRMATION_DAYS,
            "retention_months": settings.LEERLAB_RETENTION_MONTHS,
            "contact_address": _contact_address(),
        },
    )


@require_safe
def accessibility(request):
    """The accessibility statement (toegankelijkheidsverklaring) that Dutch
    public bodies must publish, after the model of digitoegankelijk.nl."""
    return render(
        request,
        "leerlab/accessibility.html",
        {
            "statement_date": ACCESSIBILITY_STATEMENT_DATE,
            "site_url": settings.SITE_URL,
            "contact_address": _contact_address(),
        },
    )


def set_language(request):
    """Django's set_language, with `next` resolved in the language it is
    written in (issue #4). Django resolves it in the request's language,
    which for /i18n/setlang/ (no prefix) is always Dutch: an English path
    such as /en/privacy/ did not resolve, so "Nederlands" led back to the
    English page."""
    drop_malformed_redirect_targets(request)
    target = request.POST.get("next", request.GET.get("next")) or request.headers.get("referer") or ""
    try:
        path = urlsplit(target).path
    except ValueError:  # e.g. a malformed IPv6 host; Django refuses it as well
        path = ""
    language = translation.get_language_from_path(path) or settings.LANGUAGE_CODE
    with translation.override(language):
        return django_set_language(request)
