"""Public information pages. Reads go through leerlab.selectors, so each
page costs a fixed number of queries."""

from email.utils import parseaddr

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_safe

from .selectors import lab_state, lab_states


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
            # Questions about personal data go to the address our mail comes from.
            "contact_address": parseaddr(settings.DEFAULT_FROM_EMAIL)[1],
        },
    )
