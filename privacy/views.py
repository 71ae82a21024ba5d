"""The AVG views for a person whose address the self-service page verified
(issue #5): download all their data (JSON, CSV) and ask to be forgotten.
The verified address is in the session under SESSION_EMAIL, set by the
self-service app; without it the views answer 403 with a way back."""

import json
import time

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from registrations.models import LIVE_STATUSES

from .services import person_erase, person_registrations, personal_data_csv, personal_data_export

SESSION_EMAIL = "selfservice_email"
# Until when (epoch seconds) the self-service session counts as verified.
SESSION_UNTIL = "selfservice_until"
SELFSERVICE_PATH = "/mijn-aanmeldingen/"


def verified_email(request) -> str | None:
    value = request.session.get(SESSION_EMAIL)
    until = request.session.get(SESSION_UNTIL)
    if not isinstance(value, str) or "@" not in value:
        return None
    if not isinstance(until, (int, float)) or until < time.time():
        return None
    return value


def _selfservice_url() -> str | None:
    try:
        resolve(SELFSERVICE_PATH)
    except Resolver404:
        return None
    return SELFSERVICE_PATH


def _not_verified(request):
    return render(request, "privacy/not_verified.html", {"selfservice_url": _selfservice_url()}, status=403)


def _filename(extension: str) -> str:
    return f"leerlab-mijn-gegevens-{timezone.localdate().isoformat()}.{extension}"


def _attachment(content: str, content_type: str, extension: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{_filename(extension)}"'
    return response


@never_cache
@require_safe
def export_json(request):
    email = verified_email(request)
    if email is None:
        return _not_verified(request)
    data = personal_data_export(email=email)
    return _attachment(
        json.dumps(data, ensure_ascii=False, indent=2), "application/json; charset=utf-8", "json"
    )


@never_cache
@require_safe
def export_csv(request):
    email = verified_email(request)
    if email is None:
        return _not_verified(request)
    # With a byte order mark, so spreadsheet programs read the accents.
    content = "\ufeff" + personal_data_csv(personal_data_export(email=email))
    return _attachment(content, "text/csv; charset=utf-8", "csv")


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def forget(request):
    email = verified_email(request)
    if email is None:
        return _not_verified(request)
    if request.method == "POST":
        person_erase(email=email, actor="self-service")
        # The erasure deleted every session holding the address, this one
        # included; start a clean one.
        request.session.flush()
        return redirect("privacy:forgotten")
    registrations = list(person_registrations(email=email))
    return render(
        request,
        "privacy/forget.html",
        {
            "registrations": registrations,
            "has_seat": any(r.status in LIVE_STATUSES for r in registrations),
        },
    )


@never_cache
@require_safe
def forgotten(request):
    return render(request, "privacy/forgotten.html")
