"""The portal in two languages (issue #4): Dutch by default, English under
/en/, a language switch on every page, the right <html lang>, English
emails for officers who signed up in English, and a complete English
catalog compiled by the project's own setup (Babel, no GNU gettext).

The catalogs are compiled before the first test of every run
(tests/conftest.py: compiled_translations), so a stale or missing .mo
cannot make these tests pass or fail."""

import html
import io
import os
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from django.conf import settings
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse as django_reverse
from django.utils import timezone, translation
from django.utils.translation.template import templatize

from leerlab.labs_seed import LABS_EN
from leerlab.management.commands.compile_translations import read_catalog
from leerlab.models import CohortStatus, LeerLab
from outbox.models import OutboxMessage
from outbox.services import render_email
from registrations.models import Registration, RegistrationStatus
from tests.factories import CohortFactory, MunicipalityFactory, RegistrationFactory, UserFactory

PO_PATH = Path(settings.BASE_DIR) / "locale" / "en" / "LC_MESSAGES" / "django.po"
SLUG = "verhaal-warmtetransitie"
TITLE_EN = LABS_EN[SLUG]["title_en"]

# Frequent Dutch words that no English text of the portal contains. Proper
# names (Leer Lab, Noord-Holland, municipality names, Dutch terms given in
# brackets such as "Transitievisies Warmte") contain none of them.
DUTCH_WORDS = {
    "het", "een", "uw", "u", "de", "gemeente", "gemeenten", "aanmelden", "aanmelding", "niet", "wij",
    "zijn", "voor", "naar", "deze", "dit", "bevestig", "bevestigen", "wachtlijst", "geen", "ook",
    "wordt", "van", "nog", "bij", "hier", "kunt", "heeft", "hebt", "plaatsen", "startdatum",
}  # fmt: skip


def text(response_or_html) -> str:
    body = response_or_html if isinstance(response_or_html, str) else response_or_html.content.decode()
    return html.unescape(body)


def visible_text(body: str) -> str:
    """What a reader sees or hears: text plus the attributes read out
    (title, aria-label, alt, placeholder, meta description). Left out:
    scripts, the municipality list (proper names) and anything marked as
    another language (the "Nederlands" button of the language switch)."""
    body = re.sub(r"<(script|style|select)\b.*?</\1>", " ", body, flags=re.S | re.I)
    body = re.sub(r'<(\w+)\b[^>]*\blang="(?!en")[^"]*"[^>]*>.*?</\1>', " ", body, flags=re.S)
    body = re.sub(r"<html\b[^>]*>", " ", body)
    attributes = re.findall(r'\b(?:title|aria-label|alt|placeholder|content)="([^"]*)"', body)
    body = re.sub(r"<[^>]+>", " ", body)
    # Addresses keep their Dutch paths in both languages (DESIGN.md).
    return re.sub(r"https?://\S+", " ", html.unescape(" ".join([body, *attributes])))


def dutch_words_in(body: str) -> set[str]:
    words = {w.lower() for w in re.findall(r"[A-Za-zÀ-ÿ]+", visible_text(body))}
    return words & DUTCH_WORDS


def assert_english_page(response, *expected: str) -> str:
    body = text(response)
    assert '<html lang="en">' in body
    assert not dutch_words_in(response.content.decode()), dutch_words_in(response.content.decode())
    for phrase in expected:
        assert phrase in body, phrase
    return body


def signup_data(**overrides) -> dict:
    data = {
        "municipality": "GM0392",  # Haarlem
        "contact_name": "Jane Smith",
        "contact_email": "j.smith@haarlem.nl",
        "contact_role": "Heat transition policy officer",
        "contact_phone": "023 511 5115",
        "case_title": "Schalkwijk step by step",
        "case_description": "We want to take the Schalkwijk district off natural gas.",
        "learning_needs": "How do we involve tenants?",
        "privacy_consent": "on",
    }
    data.update(overrides)
    return data


def reverse(name: str, **kwargs) -> str:
    """The Dutch path: a request under /en/ leaves English active in the
    test thread, and reverse() follows the active language."""
    with translation.override("nl"):
        return django_reverse(name, **kwargs)


def en(path: str) -> str:
    """The English version of a Dutch path."""
    return "/en" + path


def confirm_path(message: OutboxMessage) -> str:
    match = re.search(r"https?://[^/\s]+(/(?:en/)?aanmelding/bevestig/[^/\s]+/)", message.body_text)
    assert match, message.body_text
    return match.group(1)


def fill(cohort, count: int, **traits) -> list[Registration]:
    return [RegistrationFactory(cohort=cohort, **traits) for _ in range(count)]


# --- the catalog ------------------------------------------------------------


def _source_files():
    """The files `makemessages` reads (with the --ignore list of the
    extraction command in locale/README.md)."""
    ignored = {"loadtest", "tests", "staticfiles", "node_modules"}
    for root, dirs, files in os.walk(settings.BASE_DIR):
        dirs[:] = sorted(d for d in dirs if d not in ignored and not d.startswith("."))
        for name in sorted(files):
            if name.endswith((".py", ".html", ".txt")):
                yield Path(root) / name


# The gettext functions makemessages passes to xgettext.
KEYWORDS = {
    "_": None,
    "gettext": None,
    "gettext_lazy": None,
    "gettext_noop": None,
    "ngettext": (1, 2),
    "ngettext_lazy": (1, 2),
    "pgettext": ((1, "c"), 2),
    "pgettext_lazy": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3),
    "npgettext_lazy": ((1, "c"), 2, 3),
}


def extracted_msgids() -> dict:
    """Every translatable string of the code and templates, found the way
    makemessages finds them (Django's templatize for templates) but with
    Babel's extractor, so no GNU gettext is needed to check the catalog."""
    found = {}
    for path in _source_files():
        source = path.read_bytes()
        if path.suffix != ".py":
            # templatize() keeps the layout of the template; Babel's Python
            # tokenizer wants no indentation, xgettext does not care.
            code = templatize(source.decode("utf-8"), origin=str(path))
            source = "\n".join(line.lstrip() for line in code.splitlines()).encode("utf-8")
        for lineno, message, _comments, context in extract("python", io.BytesIO(source), keywords=KEYWORDS):
            key = (context, message if isinstance(message, str) else tuple(message))
            found.setdefault(key, f"{path.relative_to(settings.BASE_DIR)}:{lineno}")
    return found


def test_english_catalog_is_complete_and_not_fuzzy():
    """Issue #4: every entry of the English catalog is translated, none is
    fuzzy (fuzzy entries are left out of the compiled catalog) and every
    translation keeps the placeholders of its original."""
    with PO_PATH.open("rb") as handle:
        catalog = read_po(handle, locale="en")
    assert catalog.plural_forms == "nplurals=2; plural=(n != 1);"
    entries = [m for m in catalog if m.id]
    assert len(entries) > 400
    untranslated = [m.id for m in entries if not (all(m.string) if m.pluralizable else m.string)]
    fuzzy = [m.id for m in entries if m.fuzzy]
    assert untranslated == []
    assert fuzzy == []
    assert [(m.id, errors) for m, errors in catalog.check()] == []


def test_every_string_in_the_code_is_in_the_english_catalog():
    """Issue #4: nothing translatable was added to the code or templates
    without running makemessages and translating it (see locale/README.md)."""
    with PO_PATH.open("rb") as handle:
        catalog = read_po(handle, locale="en")
    translated = {
        (m.context, m.id if isinstance(m.id, str) else tuple(m.id))
        for m in catalog
        if m.id and not m.fuzzy and (all(m.string) if m.pluralizable else m.string)
    }
    found = extracted_msgids()
    assert len(found) > 400
    missing = {key: where for key, where in found.items() if key not in translated}
    assert missing == {}


def test_the_compiled_catalog_is_the_po_file_compiled():
    """Issue #4: Django reads a .mo that matches the .po of this checkout:
    compiled by the suite's setup, not left over from an older checkout."""
    buffer = io.BytesIO()
    write_mo(buffer, read_catalog(PO_PATH), use_fuzzy=False)
    assert PO_PATH.with_suffix(".mo").read_bytes() == buffer.getvalue()


def test_django_reads_the_babel_compiled_catalog():
    with translation.override("en"):
        assert translation.gettext("Aanmelden") == "Sign up"
        assert (
            translation.ngettext("%(count)s gemeente", "%(count)s gemeenten", 1) == "%(count)s municipality"
        )
        assert (
            translation.ngettext("%(count)s gemeente", "%(count)s gemeenten", 2) == "%(count)s municipalities"
        )
    with translation.override("nl"):
        assert translation.gettext("Aanmelden") == "Aanmelden"


PO_HEADER = (
    'msgid ""\nmsgstr ""\n"Language: en\\n"\n"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n'
    '"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
)


@pytest.fixture
def scratch_locale(settings, tmp_path):
    """An empty locale directory in place of the project's."""
    (tmp_path / "en" / "LC_MESSAGES").mkdir(parents=True)
    # Changing (and, after the test, restoring) LOCALE_PATHS drops the
    # catalogs Django has cached.
    settings.LOCALE_PATHS = [tmp_path]
    return tmp_path / "en" / "LC_MESSAGES"


def test_compile_translations_writes_mo_files_and_leaves_out_fuzzy_entries(scratch_locale):
    (scratch_locale / "django.po").write_text(
        PO_HEADER + 'msgid "Ja"\nmsgstr "Yes"\n\n#, fuzzy\nmsgid "Nee"\nmsgstr "Nay"\n\n'
        'msgid "Misschien"\nmsgstr ""\n',
        encoding="utf-8",
    )
    call_command("compile_translations", verbosity=0)

    import gettext

    with (scratch_locale / "django.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    assert compiled.gettext("Ja") == "Yes"
    assert compiled.gettext("Nee") == "Nee"
    assert compiled.gettext("Misschien") == "Misschien"
    with pytest.raises(CommandError, match="incomplete"):
        call_command("compile_translations", "--strict", verbosity=0)


@pytest.mark.parametrize(
    "entry",
    [
        'msgid "Ja"\nmsgstr "Yes\n',  # unterminated string
        'msgid "%(count)d gemeente"\nmsgstr "%(number)d municipality"\n',  # placeholder renamed
        'msgid "Ja"\nmsgid "Nee"\nmsgstr "No"\n',  # two msgids
    ],
)
def test_compile_translations_fails_loudly_on_a_broken_catalog(scratch_locale, entry):
    (scratch_locale / "django.po").write_text(PO_HEADER + entry, encoding="utf-8")
    with pytest.raises(CommandError):
        call_command("compile_translations", verbosity=0)
    assert not (scratch_locale / "django.mo").exists()


def test_compile_translations_without_catalogs_is_an_error(scratch_locale):
    with pytest.raises(CommandError, match="No .po files"):
        call_command("compile_translations", verbosity=0)


# --- pages --------------------------------------------------------------------


@pytest.fixture
def english_officer_registration(cohort):
    return RegistrationFactory(
        cohort=cohort,
        municipality=MunicipalityFactory(name="Testville"),
        contact_name="Jane Smith",
        case_title="Schalkwijk step by step",
        case_description="A district that goes off natural gas.",
        learning_needs="How do we involve tenants?",
        language="en",
    )


def public_pages(cohort) -> dict[str, str]:
    """Every public page as a Dutch path (the GET pages a visitor reaches)."""
    pending = RegistrationFactory(cohort=cohort, case_title="Schalkwijk step by step")
    return {
        "home": reverse("home"),
        "lab": reverse("leerlab:lab_detail", kwargs={"slug": SLUG}),
        "signup": reverse("registrations:signup", kwargs={"slug": SLUG}),
        "signup sent": reverse("registrations:signup_sent", kwargs={"slug": SLUG}),
        "confirm": reverse("registrations:confirm", kwargs={"token": pending.token}),
        "confirm error": reverse("registrations:confirm", kwargs={"token": "no-such-token"}),
        "privacy": reverse("privacy"),
        "accessibility": reverse("accessibility"),
        "not found": "/leerlabs/bestaat-niet/",
    }


def test_every_public_page_in_english_has_lang_en_and_no_dutch(client, cohort):
    """Issue #4: under /en/ every page says lang="en" and holds no Dutch
    besides proper names; the Dutch page says lang="nl"."""
    expected = {
        "home": ["Heat transition Leer Labs", "The four Leer Labs", TITLE_EN, "Conditions"],
        "lab": [TITLE_EN, LABS_EN[SLUG]["summary_en"], "Sign up for this Leer Lab", "3 more municipalities"],
        "signup": ["Sign up for the Leer Lab", "Your name", "Your email address", "Send registration"],
        "signup sent": ["Almost done: confirm your registration", "Check your email"],
        "confirm": ["Confirm registration", "Schalkwijk step by step"],
        "confirm error": ["Confirmation did not succeed", "This confirmation link is not valid."],
        "privacy": ["Privacy statement", "Who sees your details?", "GDPR"],
        "accessibility": ["Accessibility statement", "WCAG 2.1"],
        "not found": ["Page not found"],
    }
    for name, path in public_pages(cohort).items():
        english = client.get(en(path))
        assert english.status_code in (200, 404), (name, english.status_code)
        assert_english_page(english, *expected[name])
        dutch = client.get(path)
        assert dutch.status_code == english.status_code, name
        assert '<html lang="nl">' in dutch.content.decode(), name


def attributes(tag: str) -> dict[str, str]:
    return dict(re.findall(r'([\w-]+)(?:="([^"]*)")?', tag.split(None, 1)[1] if " " in tag else ""))


def test_every_public_page_has_the_language_switch(client, cohort):
    """Issue #4: a form posting to /i18n/setlang/ with the page's own path
    as `next` and one button per language, named in its own language and
    marked with it; the current language's button says so."""
    for name, path in public_pages(cohort).items():
        for url, current in ((path, "nl"), (en(path), "en")):
            body = client.get(url).content.decode()
            form = re.search(r'<form\b[^>]*\baction="/i18n/setlang/"[^>]*>(.*?)</form>', body, re.S)
            assert form and 'method="post"' in form.group(0), (name, url)
            hidden = {
                a.get("name"): a.get("value")
                for a in map(attributes, re.findall(r"<input\b[^>]*>", form.group(1)))
            }
            assert hidden["next"] == url, (name, url)
            buttons = {
                attributes(tag)["value"]: (attributes(tag), label.strip())
                for tag, label in re.findall(r"(<button\b[^>]*>)(.*?)</button>", form.group(1), re.S)
            }
            assert set(buttons) == {"nl", "en"}, (name, url)
            for code, label in (("nl", "Nederlands"), ("en", "English")):
                button, text_ = buttons[code]
                assert button["name"] == "language" and button["lang"] == code and text_ == label
                assert (button.get("aria-current") == "true") == (code == current), (name, url, code)


@pytest.mark.parametrize(
    "path",
    ["/", "/leerlabs/verhaal-warmtetransitie/", "/leerlabs/verhaal-warmtetransitie/aanmelden/", "/privacy/"],
)
def test_language_switch_goes_to_the_english_page_and_back(client, db, path):
    response = client.post("/i18n/setlang/", {"language": "en", "next": path})
    assert response.status_code == 302
    assert response["Location"] == en(path)
    assert '<html lang="en">' in client.get(response["Location"]).content.decode()

    response = client.post("/i18n/setlang/", {"language": "nl", "next": en(path)})
    assert response.status_code == 302
    assert response["Location"] == path
    # Dutch stays the default without a prefix, whatever the cookie said.
    assert '<html lang="nl">' in client.get(response["Location"]).content.decode()


def test_english_state_texts_with_plurals(client, db):
    """Issue #4: the lab states in English, singular and plural."""

    def cohort_of(slug):
        return LeerLab.objects.get(slug=slug).cohorts.get(number=1)

    fill(cohort_of("startplan-wijkaanpak-aardgasvrij"), 1, confirmed=True)
    fill(cohort_of("doelgroepgerichte-aanpak-aardgasvrij-ready"), 2, confirmed=True)
    started = cohort_of("organisatie-inrichting-warmtetransitie")
    started.status, started.started_at = CohortStatus.STARTED, timezone.now()
    started.save()
    fill(started, 4, confirmed=True)
    full = cohort_of(SLUG)
    full.status, full.started_at, full.closed_at = CohortStatus.CLOSED, timezone.now(), timezone.now()
    full.save()
    fill(full, 5, confirmed=True)

    body = assert_english_page(client.get("/en/"))
    assert "2 more municipalities needed to start" in body
    assert "1 more municipality needed to start" in body
    assert "Started, 1 place left" in body
    assert "Full, sign up for the waiting list" in body

    body = assert_english_page(client.get(en(reverse("leerlab:lab_detail", kwargs={"slug": SLUG}))))
    assert "5 of a maximum of 5" in body
    assert "This Leer Lab is full." in body

    started_body = assert_english_page(client.get("/en/leerlabs/organisatie-inrichting-warmtetransitie/"))
    assert "4 of a maximum of 5" in started_body
    assert "Still needed to start" not in started_body


def test_english_form_errors(client, cohort):
    """Issue #4: field errors, the error summary (plural) and the page
    title in English."""
    response = client.post(
        en(reverse("registrations:signup", kwargs={"slug": SLUG})),
        signup_data(contact_name="", contact_email="not-an-address", contact_phone="12", privacy_consent=""),
    )
    assert response.status_code == 200
    body = assert_english_page(
        response,
        "There are 4 problems with your registration",
        "Your name: Enter your name.",
        "Enter a valid email address, for example name@municipality.nl.",
        "Enter a valid phone number",
        "Consent: To sign up, give your consent to the processing of your details.",
    )
    assert re.search(r"<title>\s*Error:", body)

    outside = MunicipalityFactory(outside=True)
    response = client.post(
        en(reverse("registrations:signup", kwargs={"slug": SLUG})), signup_data(municipality=outside.cbs_code)
    )
    assert_english_page(
        response, "There is 1 problem with your registration", "only for municipalities in Noord-Holland"
    )
    assert Registration.objects.count() == 0


def test_english_429_page(client, lab, settings):
    settings.RATELIMIT_ENABLE = True
    settings.LEERLAB_RATELIMIT_CONFIRM = "1/10m"
    cache.clear()
    try:
        client.get("/en/aanmelding/bevestig/guess-1/", REMOTE_ADDR="198.51.100.44")
        response = client.get("/en/aanmelding/bevestig/guess-2/", REMOTE_ADDR="198.51.100.44")
    finally:
        cache.clear()
    assert response.status_code == 429
    assert_english_page(response, "Please wait: too many attempts", "about ten minutes")


def test_english_csrf_failure_page(db):
    """Issue #4: the "form expired" page (CSRF failure) in English."""
    client = Client(enforce_csrf_checks=True)
    response = client.post(en(reverse("registrations:signup", kwargs={"slug": SLUG})), signup_data())
    assert response.status_code == 403
    assert_english_page(response, "The form has expired")


def test_english_admin_lockout_page(rf):
    request = rf.get("/en/admin/login/")
    with translation.override("en"):
        from leerlab.security import lockout

        response = lockout(request)
    assert response.status_code == 429
    assert_english_page(response, "Logging in temporarily blocked", "for the next 30 minutes")


def test_signup_form_autocomplete_tokens_and_input_types(client, db):
    """Issue #4: the contact fields carry the autocomplete tokens and input
    types browsers and assistive technology use to fill them in."""
    for url in (
        reverse("registrations:signup", kwargs={"slug": SLUG}),
        en(reverse("registrations:signup", kwargs={"slug": SLUG})),
    ):
        body = client.get(url).content.decode()
        inputs = {
            re.search(r'name="([^"]+)"', tag).group(1): tag
            for tag in re.findall(r"<input\b[^>]*>", body)
            if 'name="' in tag
        }
        expected = {
            "contact_name": ("text", "name"),
            "contact_email": ("email", "email"),
            "contact_phone": ("tel", "tel"),
            "contact_role": ("text", "organization-title"),
        }
        for name, (input_type, token) in expected.items():
            assert f'type="{input_type}"' in inputs[name], (url, inputs[name])
            assert f'autocomplete="{token}"' in inputs[name], (url, inputs[name])


# --- lab texts ------------------------------------------------------------------


def test_migration_filled_in_the_english_texts_of_the_four_labs(db):
    labs = {lab.slug: lab for lab in LeerLab.objects.all()}
    assert set(LABS_EN) <= set(labs)
    for slug, texts in LABS_EN.items():
        for field, value in texts.items():
            assert getattr(labs[slug], field) == value
        assert not dutch_words_in(
            f"<p>{texts['title_en']} {texts['summary_en']} {texts['description_en']}</p>"
        )


def test_lab_texts_follow_the_language_and_fall_back_to_dutch(client, db):
    lab = LeerLab.objects.get(slug=SLUG)
    with translation.override("en"):
        assert lab.local_title == TITLE_EN
    with translation.override("nl"):
        assert lab.local_title == lab.title

    lab.title_en = lab.summary_en = lab.description_en = ""
    lab.duration, lab.duration_en = "drie maanden", "three months"
    lab.save()
    body = text(client.get(en(reverse("leerlab:lab_detail", kwargs={"slug": SLUG}))))
    assert lab.title in body and lab.summary in body
    assert "Duration: three months." in body
    assert "Duur: drie maanden." in text(client.get(reverse("leerlab:lab_detail", kwargs={"slug": SLUG})))


def test_advisors_edit_the_english_lab_texts_in_the_admin(client, db):
    client.force_login(UserFactory(superuser=True))
    lab = LeerLab.objects.get(slug=SLUG)
    response = client.get(reverse("admin:leerlab_leerlab_change", args=[lab.pk]))
    fields = set(response.context["adminform"].form.fields)
    assert {"title_en", "summary_en", "description_en", "duration_en"} <= fields


# --- email ----------------------------------------------------------------------


def test_an_officer_who_signs_up_in_english_gets_english_email_end_to_end(
    client, cohort, django_capture_on_commit_callbacks
):
    """Issue #4: sign up under /en/ -> English confirmation request with a
    link under /en/; confirm -> English seat email; the lab starts -> the
    English officer gets the English start email, a Dutch officer in the
    same cohort and the advisor get it in Dutch."""
    advisor = UserFactory(staff=True, email="adviseur@servicepunt.example")
    cohort.advisors.add(advisor)
    signup = reverse("registrations:signup", kwargs={"slug": SLUG})

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(en(signup), signup_data())
    assert response.status_code == 302 and response["Location"].startswith("/en/")
    english = Registration.objects.get(contact_email="j.smith@haarlem.nl")
    assert english.language == "en"
    request = OutboxMessage.objects.get(registration=english, kind="confirm_request")
    assert request.subject == f"Confirm your registration for the Leer Lab {TITLE_EN}"
    assert "Dear Jane Smith," in request.body_text
    assert "Haarlem" in request.body_text and "Schalkwijk step by step" in request.body_text
    assert confirm_path(request).startswith("/en/aanmelding/bevestig/")
    assert '<html lang="en">' in request.body_html
    assert not dutch_words_in(request.body_html) and not dutch_words_in(f"<p>{request.body_text}</p>")

    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(confirm_path(request))
    assert_english_page(page, "Registration confirmed", "Haarlem is taking part")
    seat = OutboxMessage.objects.get(registration=english, kind="seat_confirmed")
    assert seat.subject == (
        f"Registration confirmed: your municipality is taking part in the Leer Lab {TITLE_EN}"
    )
    assert not dutch_words_in(seat.body_html) and not dutch_words_in(f"<p>{seat.body_text}</p>")

    # Two Dutch officers sign up and confirm through the Dutch pages: the lab starts.
    for code, email in (("GM0363", "p.jansen@amsterdam.nl"), ("GM0361", "k.bakker@alkmaar.nl")):
        with django_capture_on_commit_callbacks(execute=True):
            client.post(
                signup, signup_data(municipality=code, contact_email=email, contact_name="Piet Jansen")
            )
        dutch_request = OutboxMessage.objects.get(registration__contact_email=email, kind="confirm_request")
        assert "Bevestig" in dutch_request.subject
        assert confirm_path(dutch_request).startswith("/aanmelding/bevestig/")
        with django_capture_on_commit_callbacks(execute=True):
            client.post(confirm_path(dutch_request))
    cohort.refresh_from_db()
    assert cohort.status == CohortStatus.STARTED

    started = OutboxMessage.objects.get(registration=english, kind="lab_started")
    assert started.subject == f"The Leer Lab {TITLE_EN} is starting"
    assert "Participating municipalities:" in started.body_text
    assert '<html lang="en">' in started.body_html
    assert not dutch_words_in(started.body_html) and not dutch_words_in(f"<p>{started.body_text}</p>")

    lab = cohort.lab
    dutch_started = OutboxMessage.objects.get(
        registration__contact_email="p.jansen@amsterdam.nl", kind="lab_started"
    )
    assert dutch_started.subject == f"Het Leer Lab {lab.title} gaat van start"
    assert '<html lang="nl">' in dutch_started.body_html
    advisor_mail = OutboxMessage.objects.get(to=advisor.email, kind="lab_started_advisor")
    assert "van start" in advisor_mail.subject and lab.title in advisor_mail.subject


def test_an_english_officer_on_the_waitlist_gets_the_english_waitlist_email(
    client, cohort, django_capture_on_commit_callbacks
):
    fill(cohort, 5, confirmed=True)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(en(reverse("registrations:signup", kwargs={"slug": SLUG})), signup_data())
    request = OutboxMessage.objects.get(kind="confirm_request")
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(confirm_path(request))
    assert_english_page(
        page, "Registration confirmed: you are on the waiting list", "Your place on the waiting list"
    )
    waitlisted = OutboxMessage.objects.get(kind="waitlisted")
    assert waitlisted.subject == f"Your municipality is on the waiting list for the Leer Lab {TITLE_EN}"
    assert "Your place on the waiting list: 1." in waitlisted.body_text
    assert (
        Registration.objects.get(contact_email="j.smith@haarlem.nl").status == RegistrationStatus.WAITLISTED
    )


@pytest.mark.parametrize(
    "template",
    [
        "confirm_request",
        "seat_confirmed",
        "waitlisted",
        "waitlist_promoted",
        "lab_started",
        "lab_started_advisor",
    ],
)
def test_every_email_renders_in_english_and_in_dutch(english_officer_registration, template):
    """Issue #4: each email (subject, text and HTML) in English has no Dutch
    left; in Dutch the subjects keep the words DESIGN.md fixes."""
    registration = english_officer_registration
    cohort = registration.cohort
    cohort.started_at = timezone.now()
    advisor = UserFactory(staff=True, first_name="Anna", last_name="Visser")
    context = {
        "registration": registration,
        "lab": cohort.lab,
        "cohort": cohort,
        "advisor": advisor,
        "participants": [registration],
        "municipalities": [registration.municipality.name],
        "confirm_url": "https://leerlabs.example/en/aanmelding/bevestig/abc/",
        "expires_at": timezone.now(),
        "waitlist_position": 2,
        "site_url": "https://leerlabs.example",
    }
    subject, body_text, body_html = render_email(template=template, context=context, language="en")
    assert TITLE_EN in subject
    assert '<html lang="en">' in body_html
    for part in (f"<p>{subject}</p>", f"<p>{body_text}</p>", body_html):
        assert not dutch_words_in(part), (template, dutch_words_in(part))

    subject_nl, _text, body_html_nl = render_email(template=template, context=context, language="nl")
    assert cohort.lab.title in subject_nl
    assert '<html lang="nl">' in body_html_nl
    fixed = {"confirm_request": "Bevestig", "lab_started": "van start", "lab_started_advisor": "van start"}
    fixed["waitlisted"] = "wachtlijst"
    if template in fixed:
        assert fixed[template] in subject_nl


def test_other_cohorts_keep_their_lab_title_in_dutch_for_dutch_officers(db):
    """The English title is used only in English; the start email of a Dutch
    officer in a second cohort keeps the Dutch title."""
    cohort = CohortFactory(lab=LeerLab.objects.get(slug=SLUG), number=2)
    registration = RegistrationFactory(cohort=cohort, language="nl")
    subject, _text, _html = render_email(
        template="lab_started",
        context={"registration": registration, "lab": cohort.lab, "cohort": cohort, "municipalities": []},
        language="nl",
    )
    assert TITLE_EN not in subject and cohort.lab.title in subject
