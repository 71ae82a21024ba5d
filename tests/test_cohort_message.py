"""A message from an advisor to a whole cohort, with a preview (issue #6):
the admin page in two steps, sent through the outbox once per recipient,
in the recipient's language, never twice for one form."""

import re
import uuid
from unittest import mock

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.core import mail
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext

from leerlab import messaging
from leerlab.models import CohortEvent, CohortEventAction, CohortMessage, CohortStatus
from municipalities.models import Municipality
from outbox.models import OutboxMessage
from privacy.services import person_erase
from registrations.models import RegistrationStatus
from tests.factories import CohortFactory, RegistrationFactory, UserFactory

COHORTS = reverse("admin:leerlab_cohort_changelist")
SUBJECT = "Eerste bijeenkomst: voorbereiding"
BODY = "Goedemorgen allemaal,\n\nNeem uw casus mee naar de eerste bijeenkomst.\nTot dan!"


def _page(cohort) -> str:
    return reverse("admin:leerlab_cohort_message", args=[cohort.pk])


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _municipality(cbs_code: str) -> Municipality:
    return Municipality.objects.get(cbs_code=cbs_code)


@pytest.fixture
def advisor(db):
    user = UserFactory(
        staff=True,
        username="adviseur-bericht",
        email="adviseur-bericht@servicepunt.example",
        first_name="Anne",
        last_name="de Adviseur",
    )
    user.groups.add(Group.objects.get(name="Servicepunt-adviseurs"))
    return user


@pytest.fixture
def advisor_client(client, advisor):
    client.force_login(advisor)
    return client


@pytest.fixture
def participants(cohort, advisor):
    """Two confirmed (one English), one waitlisted, and registrations that
    never get a message: pending, withdrawn, anonymised."""
    colleague = UserFactory(staff=True, username="collega", email="collega@servicepunt.example")
    cohort.advisors.add(advisor, colleague)
    haarlem = RegistrationFactory(
        cohort=cohort,
        confirmed=True,
        municipality=_municipality("GM0392"),
        contact_name="Zoë van Eëkelen",
        contact_email="zoe@haarlem.nl",
    )
    alkmaar = RegistrationFactory(
        cohort=cohort,
        confirmed=True,
        municipality=_municipality("GM0361"),
        contact_name="Mary O'Brien",
        contact_email="mary@alkmaar.nl",
        language="en",
    )
    waiting = RegistrationFactory(
        cohort=cohort,
        waitlisted=True,
        municipality=_municipality("GM0479"),
        contact_name="Inès Bakker",
        contact_email="ines@zaanstad.nl",
    )
    RegistrationFactory(
        cohort=cohort, municipality=_municipality("GM0358"), contact_email="pending@aalsmeer.nl"
    )
    RegistrationFactory(
        cohort=cohort,
        municipality=_municipality("GM0362"),
        status=RegistrationStatus.WITHDRAWN,
        contact_email="weg@amstelveen.nl",
    )
    RegistrationFactory(
        cohort=cohort, confirmed=True, municipality=_municipality("GM0363"), contact_email="piet@amsterdam.nl"
    )
    person_erase(email="piet@amsterdam.nl", actor="test")
    return {"haarlem": haarlem, "alkmaar": alkmaar, "waiting": waiting, "colleague": colleague}


def _form_key(client, cohort) -> str:
    response = client.get(_page(cohort))
    assert response.status_code == 200
    return str(response.context["form"].initial["form_key"])


def _post(client, cohort, button, *, form_key, subject=SUBJECT, body=BODY, include_waitlist=False):
    data = {"subject": subject, "body": body, "form_key": form_key, button: "1"}
    if include_waitlist:
        data["include_waitlist"] = "on"
    return client.post(_page(cohort), data)


# --- The page ------------------------------------------------------------------------


def test_form_page_has_breadcrumbs_and_a_fresh_key(advisor_client, cohort, participants):
    response = advisor_client.get(_page(cohort))

    content = response.content.decode()
    assert reverse("admin:leerlab_cohort_change", args=[cohort.pk]) in content
    assert 'class="breadcrumbs"' in content
    assert 'name="form_key"' in content
    assert "<style" not in content and "style=" not in content  # CSP: no inline styles
    assert uuid.UUID(_form_key(advisor_client, cohort)) != uuid.UUID(_form_key(advisor_client, cohort))


def test_cohort_page_links_to_the_message_and_the_learning_needs(advisor_client, cohort):
    response = advisor_client.get(reverse("admin:leerlab_cohort_change", args=[cohort.pk]))

    content = response.content.decode()
    assert _page(cohort) in content
    assert "Bericht aan het cohort" in content
    assert reverse("admin:dashboard_learning_needs", args=[cohort.pk]) in content


# --- Step 1: preview --------------------------------------------------------------------


def test_preview_shows_the_email_and_sends_nothing(
    advisor_client, cohort, participants, django_capture_on_commit_callbacks
):
    form_key = _form_key(advisor_client, cohort)

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(advisor_client, cohort, "_preview", form_key=form_key)

    assert response.status_code == 200
    assert response.context["step"] == "preview"
    preview = response.context["preview"]
    # The first recipient: Alkmaar (by name), in English.
    assert preview.sample == participants["alkmaar"]
    assert preview.subject == SUBJECT
    assert BODY in preview.text
    content = response.content.decode()
    assert "Tot dan!" in content
    assert "Versturen" in content and "Aanpassen" in content
    # The recipient list: municipality, contact, and the count.
    assert [r.municipality.name for r in preview.recipients] == ["Alkmaar", "Haarlem"]
    assert "Zoë van Eëkelen" in content and "2 ontvangers" in content
    assert "Inès Bakker" not in content  # waitlist not ticked
    # Sends nothing.
    assert mail.outbox == []
    assert not OutboxMessage.objects.exists()
    assert not CohortMessage.objects.exists()

    html = advisor_client.get(response.context["preview_html_url"])
    assert html.status_code == 200
    assert "Neem uw casus mee" in html.content.decode()
    policy = html["Content-Security-Policy"]
    assert "sandbox" in policy and "script-src" not in policy and "default-src 'none'" in policy
    assert html["X-Frame-Options"] == "SAMEORIGIN"


def test_preview_is_exactly_what_the_first_recipient_gets(
    advisor_client, cohort, participants, django_capture_on_commit_callbacks
):
    form_key = _form_key(advisor_client, cohort)
    preview = _post(advisor_client, cohort, "_preview", form_key=form_key)
    frame = advisor_client.get(preview.context["preview_html_url"]).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        _post(advisor_client, cohort, "_send", form_key=form_key)

    sent = next(m for m in mail.outbox if m.to == ["mary@alkmaar.nl"])
    shown = preview.context["preview"]
    assert (shown.subject, shown.text, shown.html) == (sent.subject, sent.body, sent.alternatives[0][0])
    assert frame == sent.alternatives[0][0]


def test_preview_html_needs_the_preview_in_the_session(advisor_client, cohort, participants):
    url = reverse("admin:leerlab_cohort_message_preview", args=[cohort.pk, uuid.uuid4()])
    assert advisor_client.get(url).status_code == 404


def test_edit_keeps_the_text_and_the_key(advisor_client, cohort, participants):
    form_key = _form_key(advisor_client, cohort)

    response = _post(advisor_client, cohort, "_edit", form_key=form_key, include_waitlist=True)

    assert response.context["step"] == "edit"
    form = response.context["form"]
    assert form.initial["subject"] == SUBJECT
    assert form.initial["include_waitlist"] is True
    assert str(form.initial["form_key"]) == form_key
    assert not OutboxMessage.objects.exists()


# --- Step 2: send ------------------------------------------------------------------------


def test_send_queues_one_email_per_recipient_and_per_advisor(
    advisor_client, advisor, cohort, participants, django_capture_on_commit_callbacks
):
    form_key = _form_key(advisor_client, cohort)

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(advisor_client, cohort, "_send", form_key=form_key)

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:leerlab_cohort_change", args=[cohort.pk])
    assert _messages(response) == [
        "Bericht verstuurd aan 2 ontvangers. De 2 adviseurs van het cohort krijgen een kopie."
    ]
    message = CohortMessage.objects.get()
    assert (message.cohort, message.subject, message.body, message.sent_by) == (
        cohort,
        SUBJECT,
        BODY,
        advisor,
    )
    assert str(message.form_key) == form_key and message.recipients == 2
    keys = set(OutboxMessage.objects.values_list("dedupe_key", flat=True))
    assert keys == {
        f"cohort_message:{message.pk}:registration:{participants['haarlem'].pk}",
        f"cohort_message:{message.pk}:registration:{participants['alkmaar'].pk}",
        f"cohort_message:{message.pk}:advisor:{advisor.pk}",
        f"cohort_message:{message.pk}:advisor:{participants['colleague'].pk}",
    }
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        ["zoe@haarlem.nl", "mary@alkmaar.nl", advisor.email, participants["colleague"].email]
    )
    to_haarlem = next(m for m in mail.outbox if m.to == ["zoe@haarlem.nl"])
    assert to_haarlem.subject == SUBJECT
    assert to_haarlem.body.startswith("Beste Zoë van Eëkelen,\n\n" + BODY)
    assert "Anne de Adviseur" in to_haarlem.body
    copy = next(m for m in mail.outbox if m.to == [advisor.email])
    assert copy.subject == f"Kopie: {SUBJECT}"
    assert "Haarlem: Zoë van Eëkelen" in copy.body and BODY in copy.body
    event = CohortEvent.objects.get(cohort=cohort, action=CohortEventAction.MESSAGE_SENT)
    assert event.details == {
        "message": message.pk,
        "recipients": 2,
        "advisor_copies": 2,
        "include_waitlist": False,
    }
    assert event.actor == advisor.username


def test_waitlist_gets_it_when_ticked(
    advisor_client, cohort, participants, django_capture_on_commit_callbacks
):
    form_key = _form_key(advisor_client, cohort)

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(advisor_client, cohort, "_send", form_key=form_key, include_waitlist=True)

    assert _messages(response)[0].startswith("Bericht verstuurd aan 3 ontvangers.")
    to_waiting = next(m for m in mail.outbox if m.to == ["ines@zaanstad.nl"])
    assert "op de wachtlijst staat" in to_waiting.body
    recipients = {m.to[0] for m in mail.outbox}
    assert not recipients & {"pending@aalsmeer.nl", "weg@amstelveen.nl"}
    assert not any(address.endswith("anoniem.invalid") for address in recipients)


def test_resubmitting_the_same_form_sends_nothing_more(
    advisor_client, cohort, participants, django_capture_on_commit_callbacks
):
    form_key = _form_key(advisor_client, cohort)
    with django_capture_on_commit_callbacks(execute=True):
        _post(advisor_client, cohort, "_send", form_key=form_key)
    sent = len(mail.outbox)
    assert sent == 4

    with django_capture_on_commit_callbacks(execute=True):
        again = _post(advisor_client, cohort, "_send", form_key=form_key, subject="Ander onderwerp")
        # The back button to the preview, then "Voorbeeld bekijken" again.
        preview = _post(advisor_client, cohort, "_preview", form_key=form_key)

    for response in (again, preview):
        assert response.status_code == 302
        # (the first send's success message was never shown: it comes first)
        assert "al verstuurd" in _messages(response)[-1]
        assert "niets opnieuw verstuurd" in _messages(response)[-1]
    assert len(mail.outbox) == sent
    assert OutboxMessage.objects.count() == 4
    assert CohortMessage.objects.count() == 1
    assert CohortEvent.objects.filter(action=CohortEventAction.MESSAGE_SENT).count() == 1


def test_two_submits_at_once_send_once(db, cohort, participants, advisor, django_capture_on_commit_callbacks):
    """The second of two simultaneous submits passes the look-up, then
    finds the key taken by the unique index, and sends nothing."""
    form_key = uuid.uuid4()
    arguments = {
        "cohort_id": cohort.pk,
        "subject": SUBJECT,
        "body": BODY,
        "include_waitlist": False,
        "form_key": form_key,
        "sent_by": advisor,
    }
    first = messaging.cohort_message_send(**arguments)
    real_lookup = messaging.cohort_message_for_key
    calls = []

    def lookup_misses_once(**kwargs):
        calls.append(kwargs)
        return None if len(calls) == 1 else real_lookup(**kwargs)

    with mock.patch.object(messaging, "cohort_message_for_key", side_effect=lookup_misses_once):
        second = messaging.cohort_message_send(**arguments)

    assert not first.already_sent and second.already_sent
    assert second.message == first.message
    assert len(calls) == 2
    assert OutboxMessage.objects.count() == 4


def test_cohort_without_recipients_sends_nothing(advisor_client, db, django_capture_on_commit_callbacks):
    empty = CohortFactory()
    RegistrationFactory(cohort=empty)  # pending: no recipient
    form_key = _form_key(advisor_client, empty)

    for button in ("_preview", "_send"):
        with django_capture_on_commit_callbacks(execute=True):
            response = _post(advisor_client, empty, button, form_key=form_key)
        assert response.status_code == 200
        assert "geen deelnemers die dit bericht kunnen ontvangen" in response.content.decode()

    assert mail.outbox == []
    assert not CohortMessage.objects.exists()


def test_a_cancelled_cohort_may_still_be_written_to(
    advisor_client, cohort, participants, django_capture_on_commit_callbacks
):
    cohort.status = CohortStatus.CANCELLED
    cohort.ended_at = timezone.now()
    cohort.save()
    page = advisor_client.get(_page(cohort))
    assert "Dit cohort is geannuleerd" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(advisor_client, cohort, "_send", form_key=_form_key(advisor_client, cohort))

    assert _messages(response)[0].startswith("Bericht verstuurd aan 2 ontvangers.")


# --- The text of the email -----------------------------------------------------------------


def test_body_is_escaped_in_html_and_keeps_its_line_breaks(
    advisor_client, cohort, participants, django_capture_on_commit_callbacks
):
    body = "<script>alert('x')</script>\nTweede regel & meer\n\nNieuwe alinea <b>vet</b>"
    with django_capture_on_commit_callbacks(execute=True):
        _post(advisor_client, cohort, "_send", form_key=_form_key(advisor_client, cohort), body=body)

    email = next(m for m in mail.outbox if m.to == ["zoe@haarlem.nl"])
    html = email.alternatives[0][0]
    assert "<script>" not in html and "<b>vet</b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;<br>Tweede regel &amp; meer</p>" in html
    assert "<p>Nieuwe alinea &lt;b&gt;vet&lt;/b&gt;</p>" in html
    # The text version is the advisor's text as written.
    assert body in email.body


def test_english_registrant_gets_the_frame_in_english(
    advisor_client, cohort, participants, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _post(advisor_client, cohort, "_send", form_key=_form_key(advisor_client, cohort))

    english = next(m for m in mail.outbox if m.to == ["mary@alkmaar.nl"])
    dutch = next(m for m in mail.outbox if m.to == ["zoe@haarlem.nl"])
    with translation.override("en"):
        kind_regards = gettext("Met vriendelijke groet,")
    assert kind_regards == "Kind regards,"
    assert english.body.startswith("Dear Mary O'Brien,\n\n" + BODY)  # the advisor's text as written
    assert kind_regards in english.body and "Met vriendelijke groet," not in english.body
    assert '<html lang="en">' in english.alternatives[0][0]
    assert cohort.lab.title_en and cohort.lab.title_en in english.body
    assert dutch.body.startswith("Beste ") and "Met vriendelijke groet," in dutch.body
    assert '<html lang="nl">' in dutch.alternatives[0][0]
    assert cohort.lab.title in dutch.body
    # Advisors' copies are in Dutch.
    copy = next(m for m in mail.outbox if m.to == ["collega@servicepunt.example"])
    assert copy.body.startswith("Beste ")


# --- Validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body", "error"),
    [
        ("", BODY, "Vul een onderwerp in."),
        ("Eerste regel\nBcc: iemand@example.com", BODY, "Het onderwerp moet op één regel staan."),
        ("Onderwerp\r", BODY, None),  # trailing whitespace is stripped: valid
        ("x" * 151, BODY, "Het onderwerp mag ten hoogste 150 tekens hebben (nu 151)."),
        ("Onderwerp met \x1b[31m", BODY, "Dit veld bevat ongeldige (onzichtbare) tekens."),
        (SUBJECT, "", "Schrijf een bericht."),
        (SUBJECT, "x" * 5001, "Het bericht mag ten hoogste 5000 tekens hebben (nu 5001)."),
    ],
)
def test_validation_errors_are_dutch(advisor_client, cohort, participants, subject, body, error):
    response = _post(
        advisor_client,
        cohort,
        "_preview",
        form_key=_form_key(advisor_client, cohort),
        subject=subject,
        body=body,
    )

    assert response.status_code == 200
    if error is None:
        assert response.context["step"] == "preview"
        return
    assert response.context["step"] == "edit"
    errors = [str(e) for field_errors in response.context["form"].errors.values() for e in field_errors]
    assert error in errors
    assert error in response.content.decode().replace("&#x27;", "'")
    assert not OutboxMessage.objects.exists()


def test_body_of_5000_characters_with_windows_line_breaks_is_accepted(advisor_client, cohort, participants):
    body = ("x" * 98 + "\r\n") * 50  # 5000 characters once a line break counts as one
    body = body[: 5000 + 49]

    response = _post(
        advisor_client, cohort, "_preview", form_key=_form_key(advisor_client, cohort), body=body
    )

    assert response.context["step"] == "preview", response.context["form"].errors


def test_tampered_form_key_is_refused(advisor_client, cohort, participants):
    response = _post(advisor_client, cohort, "_send", form_key="geen-sleutel")

    assert response.status_code == 200
    assert "Het formulier is niet volledig verstuurd" in response.content.decode()
    assert not OutboxMessage.objects.exists()


# --- Who may ---------------------------------------------------------------------------------------


def test_staff_without_message_permission_gets_403(client, cohort, participants):
    user = UserFactory(staff=True, username="alleen-lezen")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_cohort", "view_registration"]))
    client.force_login(user)

    assert client.get(_page(cohort)).status_code == 403
    actions = dict(client.get(COHORTS).context["action_form"].fields["action"].choices)
    assert "send_cohort_message" not in actions and "export_participants_csv" in actions
    response = _post(client, cohort, "_send", form_key=str(uuid.uuid4()))
    assert response.status_code == 403
    assert not OutboxMessage.objects.exists()
    page = client.get(reverse("admin:leerlab_cohort_change", args=[cohort.pk]))
    assert _page(cohort) not in page.content.decode()


def test_non_staff_is_sent_to_the_login(client, cohort, participants):
    client.force_login(UserFactory(username="ambtenaar"))

    response = client.get(_page(cohort))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_unknown_cohort_is_404(advisor_client, db):
    assert advisor_client.get(reverse("admin:leerlab_cohort_message", args=[999999])).status_code == 404


# --- The admin action -------------------------------------------------------------------------------


def test_action_on_one_cohort_opens_the_page(advisor_client, cohort):
    response = advisor_client.post(
        COHORTS, {"action": "send_cohort_message", "_selected_action": [cohort.pk]}
    )

    assert response.status_code == 302
    assert response["Location"] == _page(cohort)


def test_action_on_two_cohorts_warns(advisor_client, cohort):
    other = CohortFactory()

    response = advisor_client.post(
        COHORTS, {"action": "send_cohort_message", "_selected_action": [cohort.pk, other.pk]}, follow=True
    )

    assert "Kies precies één cohort om een bericht aan te sturen." in _messages(response)
    assert response.redirect_chain[-1][0].startswith(COHORTS)


# --- Sent messages in the admin -------------------------------------------------------------------------


def test_sent_messages_are_listed_read_only(advisor_client, advisor, cohort, participants):
    messaging.cohort_message_send(
        cohort_id=cohort.pk,
        subject=SUBJECT,
        body=BODY,
        include_waitlist=False,
        form_key=uuid.uuid4(),
        sent_by=advisor,
    )
    message = CohortMessage.objects.get()

    listing = advisor_client.get(reverse("admin:leerlab_cohortmessage_changelist"))
    assert listing.status_code == 200
    assert SUBJECT in listing.content.decode()
    detail = advisor_client.get(reverse("admin:leerlab_cohortmessage_change", args=[message.pk]))
    assert detail.status_code == 200
    assert re.search(r"Neem uw casus mee", detail.content.decode())
    assert 'name="_save"' not in detail.content.decode()
    assert advisor_client.get(reverse("admin:leerlab_cohortmessage_add")).status_code == 403
