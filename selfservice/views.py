"""Mijn aanmeldingen (issue #5): officers manage their registrations without
an account. A single-use emailed link opens a session that ends after
LEERLAB_SELFSERVICE_SESSION_MINUTES idle minutes. Views only translate
between HTTP and the services."""

import logging
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_ratelimit.decorators import ratelimit

from leerlab.errors import LeerLabError
from leerlab.ics import cohort_filename, session_filename, sessions_calendar
from leerlab.security import confirm_rate, ratelimit_key, selfservice_rate
from registrations.services import (
    ACTOR_SELFSERVICE,
    handover_for_token,
    registration_handover_confirm,
    registration_handover_request,
    registration_update_case,
    registration_withdraw,
)
from registrations.views import SESSION_CONTACT

from .forms import AccessRequestForm, CaseForm, HandoverForm
from .selectors import registration_for_email, registration_views_for_email, session_plan_for_email
from .services import AccessLinkInvalid, access_link_check, access_link_request, access_link_use

logger = logging.getLogger(__name__)

SESSION_EMAIL = "selfservice_email"
SESSION_UNTIL = "selfservice_until"
SESSION_NOTICE = "selfservice_notice"


def _session_email(request) -> str | None:
    """The verified address while the session is fresh; each use extends it."""
    email = request.session.get(SESSION_EMAIL)
    until = request.session.get(SESSION_UNTIL)
    if not isinstance(email, str) or not isinstance(until, (int, float)) or until < time.time():
        _logout(request)
        return None
    request.session[SESSION_UNTIL] = time.time() + settings.LEERLAB_SELFSERVICE_SESSION_MINUTES * 60
    return email


def _logout(request) -> None:
    for key in (SESSION_EMAIL, SESSION_UNTIL, SESSION_NOTICE):
        request.session.pop(key, None)


def _notice(request, text) -> None:
    request.session[SESSION_NOTICE] = str(text)


def _own_registration(request, registration_id: int):
    email = _session_email(request)
    if email is None:
        return None, redirect("selfservice:request")
    registration = registration_for_email(email=email, registration_id=registration_id)
    if registration is None:
        raise Http404()
    return registration, None


def _add_errors(form, exc) -> None:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        for field, messages in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
    elif isinstance(exc, ValidationError):
        form.add_error(None, exc.messages)
    else:
        field = getattr(exc, "field", None)
        form.add_error(field if field in form.fields else None, exc.message)


@require_http_methods(["GET", "HEAD", "POST"])
@ratelimit(group="selfservice", key=ratelimit_key, rate=selfservice_rate, method="POST")
@never_cache
def request_link(request):
    if request.method == "POST":
        form = AccessRequestForm(request.POST)
        if form.is_valid():
            # The same answer whether the address is known or not.
            access_link_request(email=form.cleaned_data["email"], language=request.LANGUAGE_CODE)
            return redirect("selfservice:sent")
    else:
        if _session_email(request) is not None:
            return redirect("selfservice:overview")
        form = AccessRequestForm()
    return render(
        request,
        "selfservice/request.html",
        {"form": form, "error_summary": form.error_summary() if form.is_bound else []},
    )


@require_http_methods(["GET", "HEAD"])
def sent(request):
    return render(request, "selfservice/sent.html", {"minutes": settings.LEERLAB_SELFSERVICE_LINK_MINUTES})


@require_http_methods(["GET", "HEAD", "POST"])
# Every look at a token counts: guessing tokens is what this stops.
@ratelimit(group="confirm", key=ratelimit_key, rate=confirm_rate)
@never_cache
def access(request, token):
    try:
        if request.method != "POST":
            # Mail scanners follow links: a GET shows a button only.
            access_link_check(token=token)
            return render(request, "selfservice/access.html")
        email = access_link_use(token=token)
    except AccessLinkInvalid as exc:
        return render(request, "selfservice/link_error.html", {"message": exc.message}, status=410)
    # A new session key: whatever session id the browser had before (it
    # may have been planted) does not get the access.
    request.session.cycle_key()
    # Personal data in the session lasts no longer than the browser does.
    request.session.set_expiry(0)
    request.session[SESSION_EMAIL] = email
    request.session[SESSION_UNTIL] = time.time() + settings.LEERLAB_SELFSERVICE_SESSION_MINUTES * 60
    return redirect("selfservice:overview")


@require_http_methods(["GET", "HEAD"])
@never_cache
def overview(request):
    email = _session_email(request)
    if email is None:
        return redirect("selfservice:request")
    return render(
        request,
        "selfservice/overview.html",
        {
            "items": registration_views_for_email(email=email),
            "notice": request.session.pop(SESSION_NOTICE, None),
            "session_minutes": settings.LEERLAB_SELFSERVICE_SESSION_MINUTES,
        },
    )


@require_POST
def logout(request):
    _logout(request)
    return redirect("selfservice:request")


@require_http_methods(["GET", "HEAD", "POST"])
@never_cache
def edit_case(request, pk):
    registration, response = _own_registration(request, pk)
    if response:
        return response
    if request.method == "POST":
        form = CaseForm(request.POST)
        if form.is_valid():
            try:
                registration_update_case(
                    registration_id=registration.pk, actor=ACTOR_SELFSERVICE, **form.cleaned_data
                )
            except (LeerLabError, ValidationError) as exc:
                _add_errors(form, exc)
            else:
                _notice(request, _("Uw case is opgeslagen."))
                return redirect("selfservice:overview")
    else:
        form = CaseForm(initial={name: getattr(registration, name) for name in CaseForm.base_fields})
    return render(
        request,
        "selfservice/case.html",
        {
            "registration": registration,
            "form": form,
            "error_summary": form.error_summary() if form.is_bound else [],
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
@never_cache
def handover(request, pk):
    registration, response = _own_registration(request, pk)
    if response:
        return response
    if request.method == "POST":
        form = HandoverForm(request.POST)
        if form.is_valid():
            try:
                registration_handover_request(
                    registration_id=registration.pk,
                    actor=ACTOR_SELFSERVICE,
                    language=request.LANGUAGE_CODE,
                    **form.cleaned_data,
                )
            except (LeerLabError, ValidationError) as exc:
                _add_errors(form, exc)
            else:
                _notice(
                    request,
                    _(
                        "Uw collega heeft een e-mail gekregen. Zodra uw collega bevestigt, "
                        "neemt hij of zij de aanmelding over."
                    ),
                )
                return redirect("selfservice:overview")
    else:
        form = HandoverForm()
    return render(
        request,
        "selfservice/handover.html",
        {
            "registration": registration,
            "form": form,
            "error_summary": form.error_summary() if form.is_bound else [],
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
@never_cache
def withdraw(request, pk):
    registration, response = _own_registration(request, pk)
    if response:
        return response
    error = None
    if request.method == "POST":
        try:
            registration_withdraw(registration_id=registration.pk, actor=ACTOR_SELFSERVICE)
        except LeerLabError as exc:
            error = exc.message
        else:
            _notice(request, _("Uw aanmelding is afgemeld."))
            return redirect("selfservice:overview")
    return render(
        request,
        "selfservice/withdraw.html",
        {"registration": registration, "error": error},
        status=409 if error else 200,
    )


@require_POST
def another_lab(request, pk):
    """Sign up for another lab with this registration's contact details
    filled in: the signup form reads them from its session key."""
    registration, response = _own_registration(request, pk)
    if response:
        return response
    request.session[SESSION_CONTACT] = {
        "municipality": registration.municipality.cbs_code,
        "contact_name": registration.contact_name,
        "contact_email": registration.contact_email,
        "contact_role": registration.contact_role,
        "contact_phone": registration.contact_phone,
    }
    return redirect(f"{reverse('home')}#leerlabs")


@require_http_methods(["GET", "HEAD", "POST"])
@ratelimit(group="confirm", key=ratelimit_key, rate=confirm_rate)
@never_cache
def handover_confirm(request, token):
    try:
        if request.method != "POST":
            handover = handover_for_token(token=token)
            return render(
                request,
                "selfservice/handover_confirm.html",
                {"handover": handover, "registration": handover.registration},
            )
        registration = registration_handover_confirm(token=token)
    except LeerLabError as exc:
        return render(request, "selfservice/link_error.html", {"message": exc.message}, status=410)
    return render(request, "selfservice/handover_done.html", {"registration": registration})


def _calendar_response(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


@require_http_methods(["GET", "HEAD"])
@never_cache
def plan_ics(request, pk, session_pk=None):
    """The session plan of one's own registration as a calendar file (issue
    #6): the whole plan, or one session. Anyone else's: 404."""
    email = _session_email(request)
    if email is None:
        return redirect("selfservice:request")
    found = session_plan_for_email(email=email, registration_id=pk, session_id=session_pk)
    if found is None:
        raise Http404()
    registration, sessions = found
    cohort = registration.cohort
    if session_pk is not None:
        return _calendar_response(sessions_calendar(sessions), session_filename(sessions[0]))
    name = _("%(lab)s, cohort %(number)d") % {"lab": cohort.lab.local_title, "number": cohort.number}
    return _calendar_response(sessions_calendar(sessions, name=name), cohort_filename(cohort))
