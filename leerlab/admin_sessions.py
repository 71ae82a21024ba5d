"""The plan of a cohort's sessions in the admin (issue #6).

An inline on the cohort page. Saving goes through leerlab.sessions inside
the admin's transaction: a new session is planned (invitations), a change
is announced (new SEQUENCE, updated invitation) unless only the notes
changed, and a session is called off with the "afgelast" box, never
deleted (participants get a cancellation that clears their calendar).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminTimeWidget
from django.core.exceptions import ValidationError
from django.utils import formats, timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from . import sessions
from .history import actor_for
from .models import CohortSession


def _https_by_default(db_field, **kwargs):
    # A link typed without a scheme is a https link (Django 6's default).
    if db_field.name == "online_url":
        kwargs["assume_scheme"] = "https"
    return db_field.formfield(**kwargs)


class CohortSessionForm(forms.ModelForm):
    called_off = forms.BooleanField(
        label=_("afgelast"),
        required=False,
        help_text=_(
            "Vink aan om de bijeenkomst af te lassen. Wie een uitnodiging had, krijgt bericht met een "
            "afzegging voor de agenda. Een afgelaste bijeenkomst kan niet meer worden gewijzigd."
        ),
    )

    class Meta:
        model = CohortSession
        fields = sessions.EDITABLE_FIELDS
        formfield_callback = _https_by_default
        help_texts = {
            "topic": _(
                "Is het cohort gestart, dan krijgen de deelnemers en adviseurs bij het opslaan een "
                "uitnodiging met een agenda-afspraak (.ics), en na een wijziging van onderwerp, datum, "
                "tijd, plaats of link een bijgewerkte. Vóór de start wordt niets verstuurd; bij de start "
                "krijgt iedereen de komende bijeenkomsten."
            ),
            "notes": _(
                "Staat in de uitnodiging, de agenda-afspraak en op Mijn aanmeldingen. Verandert alleen de "
                "toelichting, dan wordt daarover niet gemaild."
            ),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            # A session that does not exist yet cannot be called off.
            self.fields["called_off"].disabled = True
        elif self.instance.cancelled_at is not None:
            for field in self.fields.values():
                field.disabled = True
            self.fields["called_off"].initial = True

    def clean(self):
        cleaned = super().clean()
        if not self.has_changed():
            return cleaned
        data = {name: cleaned[name] for name in sessions.EDITABLE_FIELDS if name in cleaned}
        # Until _post_clean runs, self.instance holds the stored values.
        stored = self.instance if self.instance.pk else None
        try:
            sessions.session_check(
                cohort=self.instance.cohort,
                session=stored,
                data=data,
                cancel=bool(cleaned.get("called_off")),
            )
        except ValidationError as exc:
            self.add_error(None, exc)
        return cleaned


class CohortSessionFormSet(forms.BaseInlineFormSet):
    def add_fields(self, form, index):
        super().add_fields(form, index)
        # The form's rules depend on the cohort: hand it the one in memory
        # instead of a query per form.
        form.instance.cohort = self.instance


class CohortSessionInline(admin.StackedInline):
    model = CohortSession
    form = CohortSessionForm
    formset = CohortSessionFormSet
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name = _("bijeenkomst")
    verbose_name_plural = _("bijeenkomsten")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "topic",
                    ("date", "start_time", "end_time"),
                    ("location", "online_url"),
                    "notes",
                    ("called_off", "state"),
                ),
            },
        ),
    )
    readonly_fields = ("state",)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "online_url":
            kwargs["assume_scheme"] = "https"
        if db_field.name in ("start_time", "end_time"):
            kwargs["widget"] = AdminTimeWidget(format="%H:%M")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description=_("stand"))
    def state(self, obj: CohortSession | None) -> str:
        if obj is None or obj.pk is None:
            return gettext("nieuw")
        if obj.cancelled_at is not None:
            return gettext("afgelast op %(date)s") % {
                "date": formats.date_format(timezone.localtime(obj.cancelled_at), "DATETIME_FORMAT")
            }
        if obj.ends_at <= timezone.now():
            return gettext("voorbij")
        return gettext("gepland (versie %(version)d)") % {"version": obj.sequence + 1}

    def has_delete_permission(self, request, obj=None):
        # Called off, never deleted: participants must hear of it.
        return False


def _tell(model_admin, request, outcome: "sessions.SessionOutcome", announces: bool, what: str) -> None:
    session = outcome.session
    if outcome.emails:
        text = ngettext(
            "%(what)s: “%(topic)s”; %(count)d e-mail wordt verstuurd.",
            "%(what)s: “%(topic)s”; %(count)d e-mails worden verstuurd.",
            outcome.emails,
        )
    elif not announces:
        text = gettext(
            "%(what)s: “%(topic)s”. Het cohort is nog niet gestart: de deelnemers krijgen de uitnodiging "
            "bij de start."
        )
    else:
        text = gettext("%(what)s: “%(topic)s”; er is geen e-mail verstuurd.")
    model_admin.message_user(
        request,
        text % {"what": what, "topic": session.topic, "count": outcome.emails},
        level=messages.SUCCESS,
    )


def save_session_formset(model_admin, request, form, formset, change) -> None:
    """Save the sessions inline through the services (invitations,
    changes, cancellations), in the admin's transaction. Sets the lists
    the admin's change message reads, as formset.save() would."""
    actor = actor_for(request.user)
    cohort = form.instance
    announces = sessions.cohort_announces(cohort)
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    for session_form in formset.initial_forms:
        if not session_form.has_changed():
            continue
        cleaned = session_form.cleaned_data
        data = {name: cleaned[name] for name in sessions.EDITABLE_FIELDS}
        pk = session_form.instance.pk
        if cleaned.get("called_off"):
            outcome = sessions.session_cancel(session_id=pk, actor=actor, notes=data["notes"])
            _tell(model_admin, request, outcome, announces, gettext("Bijeenkomst afgelast"))
        else:
            outcome = sessions.session_update(session_id=pk, actor=actor, **data)
            if outcome.fields and set(outcome.fields) <= {"notes"}:
                model_admin.message_user(
                    request,
                    gettext(
                        "Alleen de toelichting van “%(topic)s” is gewijzigd: daarover krijgen de "
                        "deelnemers geen e-mail."
                    )
                    % {"topic": outcome.session.topic},
                    level=messages.INFO,
                )
            elif outcome.fields:
                _tell(model_admin, request, outcome, announces, gettext("Bijeenkomst gewijzigd"))
        session_form.instance = outcome.session
        if outcome.fields:
            formset.changed_objects.append((outcome.session, list(outcome.fields)))
    for session_form in formset.extra_forms:
        if not session_form.has_changed():
            continue
        cleaned = session_form.cleaned_data
        data = {name: cleaned[name] for name in sessions.EDITABLE_FIELDS}
        outcome = sessions.session_plan(cohort_id=cohort.pk, actor=actor, **data)
        _tell(model_admin, request, outcome, announces, gettext("Bijeenkomst gepland"))
        session_form.instance = outcome.session
        formset.new_objects.append(outcome.session)
