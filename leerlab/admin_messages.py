"""A message from an advisor to a whole cohort, with a preview (issue #6).

`/admin/leerlab/cohort/<id>/bericht/`, in two steps:

1. the form (subject, body, "ook aan de wachtlijst") with a hidden key made
   when the form is first shown; "Voorbeeld bekijken" validates and shows
   the email as the first recipient gets it, text and HTML, with the list
   of recipients;
2. "Versturen" sends through leerlab.messaging.cohort_message_send, which
   uses the key to send each message once; "Aanpassen" goes back to the
   form with the same key.

The HTML version of the preview is shown in a sandboxed frame from its own
URL: the email's inline styles need a Content-Security-Policy of their own,
which the admin page (no inline styles) must not have.
"""

import uuid
from functools import partial

from csp.constants import NONE, SELF, UNSAFE_INLINE
from csp.decorators import csp
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.clickjacking import xframe_options_sameorigin

from registrations.models import RegistrationStatus

from . import messaging
from .admin_utils import ReadOnlyAdminMixin
from .models import Cohort, CohortMessage, CohortStatus

PREVIEWS_SESSION_KEY = "leerlab_cohort_message_previews"
# Previews kept in the session (several tabs may be open at once).
PREVIEWS_KEPT = 5


# --- Permissions -------------------------------------------------------------------


def user_may_message(user) -> bool:
    return user.has_perm("leerlab.add_cohortmessage") and user.has_perm("leerlab.view_cohort")


def _check_permission(model_admin, request, cohort: Cohort) -> None:
    if not (user_may_message(request.user) and model_admin.has_view_permission(request, cohort)):
        raise PermissionDenied


# --- Form ----------------------------------------------------------------------------


class MultilineCharField(forms.CharField):
    """Line breaks count as one character, as the browser counts them."""

    def to_python(self, value):
        value = super().to_python(value)
        return value.replace("\r\n", "\n").replace("\r", "\n") if value else value


class CohortMessageForm(forms.Form):
    required_css_class = "required"

    subject = forms.CharField(
        label=_("Onderwerp"),
        max_length=messaging.SUBJECT_MAX,
        validators=[messaging.validate_subject],
        error_messages={
            "required": _("Vul een onderwerp in."),
            "max_length": _(
                "Het onderwerp mag ten hoogste %(limit_value)d tekens hebben (nu %(show_value)d)."
            ),
        },
        widget=forms.TextInput(attrs={"class": "vTextField", "autocomplete": "off"}),
    )
    body = MultilineCharField(
        label=_("Bericht"),
        max_length=messaging.BODY_MAX,
        validators=[messaging.validate_body],
        error_messages={
            "required": _("Schrijf een bericht."),
            "max_length": _("Het bericht mag ten hoogste %(limit_value)d tekens hebben (nu %(show_value)d)."),
        },
        help_text=_(
            "Platte tekst; witregels blijven staan. De aanhef (Beste …) en de ondertekening zet het portaal "
            "erbij, in de taal van de ontvanger. Uw tekst gaat mee zoals u hem schrijft."
        ),
        widget=forms.Textarea(attrs={"rows": 14, "class": "vLargeTextField"}),
    )
    include_waitlist = forms.BooleanField(
        label=_("Ook aan de wachtlijst"),
        required=False,
        help_text=_("Ook de gemeenten op de wachtlijst van dit cohort krijgen het bericht."),
    )
    form_key = forms.UUIDField(
        widget=forms.HiddenInput,
        error_messages={
            "required": _("Het formulier is niet volledig verstuurd. Open het opnieuw."),
            "invalid": _("Het formulier is niet volledig verstuurd. Open het opnieuw."),
        },
    )


def _form_from_post(data) -> CohortMessageForm:
    """The form filled in as posted, without errors (step "Aanpassen")."""
    return CohortMessageForm(
        initial={
            "subject": data.get("subject", ""),
            "body": data.get("body", ""),
            "include_waitlist": data.get("include_waitlist") in ("on", "true", "True", "1"),
            "form_key": data.get("form_key") or uuid.uuid4(),
        }
    )


# --- Views ---------------------------------------------------------------------------


def _change_url(cohort: Cohort) -> str:
    return reverse("admin:leerlab_cohort_change", args=[cohort.pk])


def _already_sent(request, message: CohortMessage) -> HttpResponseRedirect:
    messages.warning(
        request,
        gettext(
            "Dit bericht is al verstuurd op %(when)s, aan %(count)d ontvangers. Er is niets opnieuw "
            "verstuurd. Wilt u nog een bericht sturen? Open het formulier dan opnieuw."
        )
        % {
            "when": formats.date_format(timezone.localtime(message.created_at), "DATETIME_FORMAT"),
            "count": message.recipients,
        },
    )
    return HttpResponseRedirect(_change_url(message.cohort))


def _store_preview(request, cohort: Cohort, data: dict) -> None:
    previews = dict(request.session.get(PREVIEWS_SESSION_KEY, {}))
    previews.pop(str(data["form_key"]), None)
    previews[str(data["form_key"])] = {
        "cohort": cohort.pk,
        "subject": data["subject"],
        "body": data["body"],
        "include_waitlist": data["include_waitlist"],
    }
    request.session[PREVIEWS_SESSION_KEY] = dict(list(previews.items())[-PREVIEWS_KEPT:])


def _render(model_admin, request, cohort: Cohort, **context) -> TemplateResponse:
    counts = cohort.registrations.filter(anonymised_at__isnull=True).aggregate(
        confirmed=Count("pk", filter=Q(status=RegistrationStatus.CONFIRMED)),
        waitlisted=Count("pk", filter=Q(status=RegistrationStatus.WAITLISTED)),
    )
    title = gettext("Bericht aan %(cohort)s") % {"cohort": cohort}
    return TemplateResponse(
        request,
        "admin/leerlab/cohort_message.html",
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.model._meta,
            "cohort": cohort,
            "title": title,
            "confirmed_count": counts["confirmed"],
            "waitlisted_count": counts["waitlisted"],
            "cohort_ended": cohort.status in (CohortStatus.CANCELLED, CohortStatus.COMPLETED),
            **context,
        },
    )


def cohort_message_view(request, cohort_id: int, *, model_admin):
    cohort = get_object_or_404(Cohort.objects.select_related("lab"), pk=cohort_id)
    _check_permission(model_admin, request, cohort)

    if request.method != "POST":
        form = CohortMessageForm(initial={"form_key": uuid.uuid4()})
        return _render(model_admin, request, cohort, form=form, step="edit")

    if "_edit" in request.POST:
        return _render(model_admin, request, cohort, form=_form_from_post(request.POST), step="edit")

    form = CohortMessageForm(request.POST)
    if not form.is_valid():
        return _render(model_admin, request, cohort, form=form, step="edit")
    data = form.cleaned_data

    existing = messaging.cohort_message_for_key(form_key=data["form_key"])
    if existing is not None:
        return _already_sent(request, existing)

    if "_send" in request.POST:
        try:
            result = messaging.cohort_message_send(
                cohort_id=cohort.pk,
                subject=data["subject"],
                body=data["body"],
                include_waitlist=data["include_waitlist"],
                form_key=data["form_key"],
                sent_by=request.user,
            )
        except messaging.NoRecipients as exc:
            form.add_error(None, exc.message)
            return _render(model_admin, request, cohort, form=form, step="edit")
        except ValidationError as exc:
            form.add_error(None, exc)
            return _render(model_admin, request, cohort, form=form, step="edit")
        if result.already_sent:
            return _already_sent(request, result.message)
        request.session.get(PREVIEWS_SESSION_KEY, {}).pop(str(data["form_key"]), None)
        request.session.modified = True
        text = ngettext(
            "Bericht verstuurd aan %(count)d ontvanger.",
            "Bericht verstuurd aan %(count)d ontvangers.",
            result.recipients,
        ) % {"count": result.recipients}
        if result.advisor_copies:
            text += " " + ngettext(
                "De adviseur van het cohort krijgt een kopie.",
                "De %(count)d adviseurs van het cohort krijgen een kopie.",
                result.advisor_copies,
            ) % {"count": result.advisor_copies}
        messages.success(request, text)
        return HttpResponseRedirect(_change_url(cohort))

    # "Voorbeeld bekijken" (also any other POST: it never sends).
    try:
        preview = messaging.cohort_message_preview(
            cohort=cohort,
            subject=data["subject"],
            body=data["body"],
            include_waitlist=data["include_waitlist"],
            sender=request.user,
        )
    except messaging.NoRecipients as exc:
        form.add_error(None, exc.message)
        return _render(model_admin, request, cohort, form=form, step="edit")
    _store_preview(request, cohort, data)
    return _render(
        model_admin,
        request,
        cohort,
        form=form,
        step="preview",
        preview=preview,
        preview_html_url=reverse(
            "admin:leerlab_cohort_message_preview",
            kwargs={"cohort_id": cohort.pk, "form_key": data["form_key"]},
        ),
    )


# The email's own styles, nothing else: no scripts, no forms, no requests
# but images of our own, a unique origin (sandbox), framed by us only.
_PREVIEW_POLICY = {
    "default-src": [NONE],
    "style-src": [UNSAFE_INLINE],
    "img-src": [SELF, "data:"],
    "base-uri": [NONE],
    "form-action": [NONE],
    "frame-ancestors": [SELF],
    "sandbox": True,
}


@xframe_options_sameorigin
@csp(_PREVIEW_POLICY)
def cohort_message_preview_html_view(request, cohort_id: int, form_key: uuid.UUID, *, model_admin):
    cohort = get_object_or_404(Cohort.objects.select_related("lab"), pk=cohort_id)
    _check_permission(model_admin, request, cohort)
    stored = request.session.get(PREVIEWS_SESSION_KEY, {}).get(str(form_key))
    if not stored or stored.get("cohort") != cohort.pk:
        raise Http404
    try:
        preview = messaging.cohort_message_preview(
            cohort=cohort,
            subject=stored["subject"],
            body=stored["body"],
            include_waitlist=stored["include_waitlist"],
            sender=request.user,
        )
    except (messaging.NoRecipients, ValidationError) as exc:
        raise Http404 from exc
    return HttpResponse(preview.html, content_type="text/html; charset=utf-8")


def message_urls(model_admin) -> list:
    """URLs before CohortAdmin's own (see its get_urls): the message pages
    and the export downloads (leerlab.admin_exports)."""
    from .admin_exports import export_urls

    wrap = model_admin.admin_site.admin_view
    return [
        path(
            "<int:cohort_id>/bericht/",
            wrap(partial(cohort_message_view, model_admin=model_admin)),
            name="leerlab_cohort_message",
        ),
        path(
            "<int:cohort_id>/bericht/voorbeeld/<uuid:form_key>/",
            wrap(partial(cohort_message_preview_html_view, model_admin=model_admin)),
            name="leerlab_cohort_message_preview",
        ),
        *export_urls(model_admin),
    ]


# --- Admin action ---------------------------------------------------------------------


@admin.action(description=_("Bericht aan het cohort sturen"), permissions=["cohort_message"])
def send_cohort_message(model_admin, request, queryset):
    cohort_ids = list(queryset.order_by().values_list("pk", flat=True)[:2])
    if len(cohort_ids) != 1:
        model_admin.message_user(
            request,
            gettext("Kies precies één cohort om een bericht aan te sturen."),
            level=messages.WARNING,
        )
        return None
    return HttpResponseRedirect(reverse("admin:leerlab_cohort_message", args=[cohort_ids[0]]))


# --- Sent messages, to read -------------------------------------------------------------


@admin.register(CohortMessage)
class CohortMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Messages sent to cohorts, to read. They are written only by the
    message page; the emails themselves are in the outbox."""

    list_display = ("subject", "cohort", "sent_by", "recipients", "include_waitlist", "created_at")
    list_filter = ("cohort__lab", "include_waitlist")
    list_select_related = ("cohort__lab", "sent_by")
    search_fields = ("subject",)
    date_hierarchy = "created_at"
    fields = ("cohort", "subject", "body", "include_waitlist", "recipients", "sent_by", "created_at")
    readonly_fields = fields
