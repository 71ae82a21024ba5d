"""Signing up and confirming. The views translate between HTTP and the
services in registrations/services.py; every domain error becomes a
friendly page or a form error, never a 5xx."""

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe
from django_ratelimit.decorators import ratelimit

from leerlab.errors import CohortBusy, LeerLabError
from leerlab.security import confirm_rate, ratelimit_key, signup_rate
from leerlab.selectors import lab_state, lab_states

from . import errors
from .forms import CONTACT_FIELDS, SignupForm
from .services import (
    registration_confirm,
    registration_for_token,
    registration_submit,
    waitlist_position,
)

logger = logging.getLogger(__name__)

# Session keys: the contact details of the last signup (to pre-fill a
# signup for another lab) and the labs signed up for in this session.
SESSION_CONTACT = "leerlab_signup_contact"
SESSION_LABS = "leerlab_signup_labs"

# HTTP status of the confirmation error page per domain error. 4xx only:
# a bad or old link is the visitor's situation, not a server failure.
CONFIRM_ERROR_STATUS = {
    errors.InvalidToken: 404,
    errors.TokenExpired: 410,
    errors.TokenUsed: 410,
    errors.AlreadyRegistered: 409,
    errors.SignupClosed: 409,
    CohortBusy: 409,
}


def _contact_initial(request) -> dict:
    stored = request.session.get(SESSION_CONTACT)
    if not isinstance(stored, dict):
        return {}
    return {name: stored[name] for name in CONTACT_FIELDS if isinstance(stored.get(name), str)}


def _add_service_error(form: SignupForm, exc: LeerLabError) -> None:
    field = getattr(exc, "field", None)
    form.add_error(field if field in form.fields else None, exc.message)


def _add_model_errors(form: SignupForm, exc: ValidationError) -> None:
    """The model's full_clean() repeats the form's checks; should it still
    find something, show it rather than fail."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for field, messages in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, messages)


@require_http_methods(["GET", "HEAD", "POST"])
# Per client address (issue #3); over the limit: the 429 page
# (leerlab.security.ratelimited).
@ratelimit(group="signup", key=ratelimit_key, rate=signup_rate, method="POST")
def signup(request, slug):
    state = lab_state(slug=slug)
    if state.cohort is None:
        return render(request, "registrations/signup_unavailable.html", {"state": state, "lab": state.lab})

    initial = _contact_initial(request)
    if request.method == "POST":
        form = SignupForm(request.POST)
        if form.is_valid():
            try:
                registration = registration_submit(
                    cohort=state.cohort, language=request.LANGUAGE_CODE, **form.submit_kwargs()
                )
            except LeerLabError as exc:
                # RegistrationError carries the field it belongs to; others
                # (e.g. CohortBusy) are about the whole form.
                _add_service_error(form, exc)
            except ValidationError as exc:
                _add_model_errors(form, exc)
            else:
                request.session[SESSION_CONTACT] = form.contact_details()
                # Personal data in the session lasts as long as the browser
                # does (as the privacy statement says), not two weeks.
                request.session.set_expiry(0)
                labs = [s for s in request.session.get(SESSION_LABS, []) if isinstance(s, str)]
                if slug not in labs:
                    labs.append(slug)
                request.session[SESSION_LABS] = labs[-10:]
                logger.info("signup form accepted: registration %s", registration.pk)
                return redirect("registrations:signup_sent", slug=slug)
    else:
        form = SignupForm(initial=initial)

    return render(
        request,
        "registrations/signup.html",
        {
            "state": state,
            "lab": state.lab,
            "form": form,
            "error_summary": form.error_summary() if form.is_bound else [],
            "prefilled": bool(initial) and not form.is_bound,
        },
    )


@require_safe
def signup_sent(request, slug):
    state = lab_state(slug=slug)
    signed_up = set(request.session.get(SESSION_LABS, []))
    contact = request.session.get(SESSION_CONTACT) or {}
    other_states = [s for s in lab_states() if s.lab.pk != state.lab.pk]
    return render(
        request,
        "registrations/signup_sent.html",
        {
            "state": state,
            "lab": state.lab,
            "contact_email": contact.get("contact_email") if isinstance(contact, dict) else None,
            "confirmation_days": settings.LEERLAB_CONFIRMATION_DAYS,
            "other_states": [s for s in other_states if s.lab.slug not in signed_up],
            "signed_up_states": [s for s in other_states if s.lab.slug in signed_up],
        },
    )


def _confirm_error(request, exc: LeerLabError):
    status = next((code for cls, code in CONFIRM_ERROR_STATUS.items() if isinstance(exc, cls)), 409)
    return render(
        request,
        "registrations/confirm_error.html",
        {
            "message": exc.message,
            "retry": isinstance(exc, CohortBusy),
            "expired": isinstance(exc, errors.TokenExpired),
        },
        status=status,
    )


@require_http_methods(["GET", "HEAD", "POST"])
# Every look at a token counts, GET as well: guessing tokens is what this
# stops (issue #3).
@ratelimit(group="confirm", key=ratelimit_key, rate=confirm_rate)
# The page carries the link's token and personal data: no cache keeps it.
@never_cache
def confirm(request, token):
    if request.method != "POST":
        # Mail scanners follow links: a GET shows a button and changes nothing.
        try:
            registration = registration_for_token(token=token)
        except LeerLabError as exc:
            return _confirm_error(request, exc)
        return render(
            request,
            "registrations/confirm.html",
            {"registration": registration, "lab": registration.cohort.lab},
        )

    try:
        result = registration_confirm(token=token)
    except LeerLabError as exc:
        return _confirm_error(request, exc)

    registration = result.registration
    lab = registration.cohort.lab
    # The cohort as it is now (its evaluation may already have started it);
    # only meaningful when it is still the lab's current cohort.
    state = lab_state(slug=lab.slug)
    if state.cohort is None or state.cohort.pk != registration.cohort_id:
        state = None
    context = {
        "registration": registration,
        "lab": lab,
        "state": state,
        "newly_confirmed": result.newly_confirmed,
    }
    if result.has_seat:
        return render(request, "registrations/confirm_seat.html", context)
    context["waitlist_position"] = waitlist_position(registration=registration)
    return render(request, "registrations/confirm_waitlist.html", context)
