"""Property-based tests (issue #3): arbitrary, hostile and oversized input at
every public form and token URL, through the Django test client so the whole
stack runs (URL resolver, middleware, CSRF-exempt test client, forms,
services, templates).

For every generated request:

- the response is never a 5xx;
- no raw ``<script`` from the input comes back in the page (every
  ``<script`` in a response is one of the page's own static script tags);
- no Registration or OutboxMessage row appears unless the input is valid.
  Validity is decided by an oracle written here, independent of the form:
  input the oracle calls invalid must leave both tables unchanged; input it
  calls valid (with a known-good email address) must be accepted with
  exactly one new row and one confirmation email, and the stored row must
  pass the model's full_clean().

Each test uses the ``db`` fixture: all examples of one test share its
transaction, so rows are counted before and after every example.
"""

import re
import unicodedata
from urllib.parse import quote, urlencode, urlsplit

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from municipalities.selectors import participating_municipalities
from outbox.models import OutboxMessage
from registrations.models import (
    CASE_DESCRIPTION_MAX,
    CASE_TITLE_MAX,
    CONTACT_NAME_MAX,
    CONTACT_PHONE_MAX,
    CONTACT_ROLE_MAX,
    LEARNING_NEEDS_MAX,
    Registration,
    RegistrationStatus,
)
from tests.factories import RegistrationFactory

SLUGS = [
    "startplan-wijkaanpak-aardgasvrij",
    "doelgroepgerichte-aanpak-aardgasvrij-ready",
    "organisatie-inrichting-warmtetransitie",
    "verhaal-warmtetransitie",
]

# Sized so the whole module stays well under a minute on a laptop.
FAST = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SLOW = settings(FAST, max_examples=25)
# Four labs, each its own test.
PER_LAB = settings(FAST, max_examples=75)

# --- Characters and text ------------------------------------------------------

CONTROL_CHARS = [chr(c) for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))]
# Bidi overrides and isolates, zero-width characters, BOM, soft hyphen, a
# language tag, private use, and emoji (one with zero-width joiners).
TRICKY_CHARS = [
    "\u202e",
    "\u202d",
    "\u202a",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u200e",
    "\u200f",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\u2028",
    "\u2029",
    "\U000e0001",
    "\ue000",
    "\U0010fffd",
    "\u0301",
    "\ufffd",
    "🏠",
    "🔥",
    "👩\u200d👩\u200d👧",
    "🇳🇱",
]
MARKUP = [
    "<script>alert(1)</script>",
    '"><script>alert(1)</script>',
    "'><ScRiPt src=//evil.example/x.js></sCrIpT>",
    "</textarea><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    "javascript:alert(1)",
    "{{ 7*7 }}",
    "{% debug %}",
    "%(contact_name)s %s %n",
    "${7*7}",
    "\r\nSubject: injected\r\n",
    "'; DROP TABLE registrations_registration; --",
]

# The full Unicode range without surrogates (they cannot be sent as UTF-8).
any_char = st.characters(exclude_categories=("Cs",))
# NUL on its own as well: PostgreSQL refuses it in any text, so it is the
# classic way to turn a missing check into a 500.
hostile_char = st.one_of(
    any_char, st.sampled_from(CONTROL_CHARS), st.sampled_from(TRICKY_CHARS), st.just("\x00")
)
short_text = st.lists(hostile_char, max_size=30).map("".join)

# Just around every length limit of the form and the model.
LIMITS = [
    CONTACT_NAME_MAX,
    CONTACT_ROLE_MAX,
    CONTACT_PHONE_MAX,
    CASE_TITLE_MAX,
    CASE_DESCRIPTION_MAX,
    LEARNING_NEEDS_MAX,
    254,
]
EDGE_LENGTHS = sorted({n + d for n in LIMITS for d in (-1, 0, 1)})


def _repeat(piece: str, length: int) -> str:
    return (piece * (length // max(len(piece), 1) + 1))[:length]


oversized = st.builds(
    _repeat,
    st.lists(hostile_char, min_size=1, max_size=3).map("".join),
    st.one_of(st.sampled_from(EDGE_LENGTHS), st.integers(min_value=1, max_value=100_000)),
)
markup = st.lists(st.one_of(short_text, st.sampled_from(MARKUP)), min_size=1, max_size=4).map("".join)


def _insert(value: str, char: str, at: int) -> str:
    at = at % (len(value) + 1)
    return value[:at] + char + value[at:]


hostile_text = st.one_of(short_text, markup, oversized, st.just(""), st.sampled_from(MARKUP))

# --- The signup form and its oracle -------------------------------------------

VALID_SIGNUP = {
    "contact_name": "Jan de Vries",
    "contact_email": "j.devries@haarlem.nl",
    "contact_role": "Beleidsmedewerker warmtetransitie",
    "contact_phone": "023 511 5115",
    "case_title": "Wijkaanpak Schalkwijk",
    "case_description": "Wij willen de wijk Schalkwijk\nstap voor stap aardgasvrij maken.",
    "learning_needs": "Hoe betrekken we huurders?",
    "privacy_consent": "on",
}
FIELDS = ["municipality", *VALID_SIGNUP]
SINGLE_LINE = {
    "contact_name": CONTACT_NAME_MAX,
    "contact_role": CONTACT_ROLE_MAX,
    "case_title": CASE_TITLE_MAX,
}
MULTI_LINE = {"case_description": CASE_DESCRIPTION_MAX, "learning_needs": LEARNING_NEEDS_MAX}
REQUIRED = {"municipality", "contact_name", "contact_email", "case_title", "case_description"}
PHONE_CHARS = set("0123456789+-() ")
# What a ticked checkbox sends; nothing else is consent.
CONSENT_VALUES = {"on", "true", "True"}


def _invisible(value: str, *, multiline: bool) -> bool:
    allowed = {"\n", "\r", "\t"} if multiline else set()
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") and ch not in allowed for ch in value)


def signup_rejection(data: dict[str, list[str]], nh_codes: set[str]) -> str | None:
    """Why this POST must not be stored, or None if nothing forbids it.
    A form reads the last value of a multi-valued field."""
    values = {name: (data[name][-1] if data.get(name) else None) for name in FIELDS}
    for name in REQUIRED:
        if values[name] is None or not values[name].strip():
            return f"{name} missing"
    if values["municipality"].strip().upper() not in nh_codes:
        return "not a participating municipality"
    if values["privacy_consent"] not in CONSENT_VALUES:
        return "no consent"
    for name, limit in {**SINGLE_LINE, **MULTI_LINE}.items():
        value = (values[name] or "").strip()
        if len(value) > limit:
            return f"{name} too long"
        if _invisible(value, multiline=name in MULTI_LINE):
            return f"{name} has control characters"
    email = values["contact_email"].strip()
    if len(email) > 254 or "@" not in email or _invisible(email, multiline=False):
        return "not an email address"
    phone = (values["contact_phone"] or "").strip()
    if phone and (set(phone) - PHONE_CHARS or not 8 <= sum(c.isdigit() for c in phone) <= 15):
        return "not a phone number"
    return None


field_value = st.one_of(
    hostile_text,
    # Valid text with one hostile character somewhere: the inputs that slip
    # past a validator that forgets a character class.
    st.builds(_insert, st.sampled_from(list(VALID_SIGNUP.values())), hostile_char, st.integers(0, 200)),
)


@st.composite
def signup_posts(draw, codes: list[str]):
    """A signup POST as {field: [values]}: a valid one with one, several or
    all fields replaced, removed or repeated, plus unknown extra fields."""
    data = {name: [value] for name, value in VALID_SIGNUP.items()}
    data["municipality"] = [draw(st.sampled_from(codes))]
    # A fresh address per example: a repeat within ten minutes would be the
    # same signup (no new row), which is also correct but tests less.
    local = draw(st.from_regex(r"[a-z]{1,12}(\.[a-z]{1,8})?", fullmatch=True))
    data["contact_email"] = [f"{local}@haarlem.nl"]

    mode = draw(st.sampled_from(["valid", "near-valid", "near-valid", "one", "some", "all"]))
    if mode == "near-valid":
        # One field of a valid signup with a few hostile characters or
        # some markup slipped in: what finds a validator that forgets a
        # character class, or a template that forgets to escape.
        name = draw(st.sampled_from(FIELDS))
        value = data[name][0]
        for piece in draw(st.lists(st.one_of(hostile_char, st.sampled_from(MARKUP)), min_size=1, max_size=3)):
            value = _insert(value, piece, draw(st.integers(0, 200)))
        data[name] = [value]
        targets = []
    elif mode == "one":
        targets = [draw(st.sampled_from(FIELDS))]
    elif mode == "some":
        targets = draw(st.lists(st.sampled_from(FIELDS), min_size=2, max_size=5, unique=True))
    elif mode == "all":
        targets = FIELDS
    else:
        targets = []
    for name in targets:
        action = draw(st.sampled_from(["replace"] * 6 + ["multi"] * 2 + ["remove", "empty-list"]))
        if action == "replace":
            data[name] = [draw(field_value)]
        elif action == "remove":
            data.pop(name)
        elif action == "multi":
            data[name] = draw(st.lists(field_value, min_size=2, max_size=4))
        else:
            data[name] = []
    if draw(st.booleans()):
        extra = draw(
            st.dictionaries(
                st.lists(hostile_char, min_size=1, max_size=20)
                .map("".join)
                .filter(lambda n: n not in FIELDS),
                st.lists(short_text, min_size=1, max_size=3),
                max_size=4,
            )
        )
        data.update(extra)
    return data


def encode_post(data: dict[str, list[str]], encoding: str) -> dict:
    """Client.post() kwargs. Multipart cannot carry names with quotes or
    line breaks (the test client does not escape them); those go urlencoded."""
    unsafe_names = any(set(name) & {'"', "\r", "\n", "\\"} for name in data)
    if encoding == "urlencoded" or unsafe_names:
        return {
            "data": urlencode([(k, v) for k, vs in data.items() for v in vs]),
            "content_type": "application/x-www-form-urlencoded",
        }
    return {"data": data}


# --- Assertions shared by every test ------------------------------------------

_SCRIPT_OPEN = re.compile(r"<script", re.IGNORECASE)
_PAGE_SCRIPT = re.compile(r'<script(?:\s+[a-z-]+(?:="[^"<>]*")?)*\s*>')


def assert_sane(response) -> None:
    assert response.status_code < 500, response.status_code
    body = response.content.decode("utf-8", "replace")
    for match in _SCRIPT_OPEN.finditer(body):
        end = body.find(">", match.start())
        tag = body[match.start() : end + 1] if end != -1 else body[match.start() :]
        # The page's own scripts are plain tags with src under /static/.
        assert _PAGE_SCRIPT.fullmatch(tag) and 'src="/static/' in tag, f"reflected script: {tag[:200]!r}"


def counts() -> tuple[int, int]:
    return Registration.objects.count(), OutboxMessage.objects.count()


@pytest.fixture(autouse=True)
def no_rate_limits(settings):
    """Thousands of requests from one test client would hit the rate limits
    by design; these tests are about input, not about request rates."""
    settings.RATELIMIT_ENABLE = False


@pytest.fixture
def nh_codes(db) -> list[str]:
    return sorted(participating_municipalities().values_list("cbs_code", flat=True))


# --- Signup -------------------------------------------------------------------


@pytest.mark.parametrize("slug", SLUGS)
@PER_LAB
@given(data=st.data(), encoding=st.sampled_from(["multipart", "urlencoded"]))
def test_signup_post_with_arbitrary_fields(db, nh_codes, slug, data, encoding):
    """Issue #3: each field on its own, several or all at once, missing,
    repeated and unknown fields, for each of the four labs."""
    post = data.draw(signup_posts(nh_codes))
    reason = signup_rejection(post, set(nh_codes))
    before = counts()
    repeat = reason is None and _pending_duplicate_exists(slug, post)

    response = Client().post(f"/leerlabs/{slug}/aanmelden/", **encode_post(post, encoding))

    assert_sane(response)
    registrations, messages = (after - was for after, was in zip(counts(), before, strict=True))
    event(f"refused: {reason}" if reason else f"valid, status {response.status_code}")
    if reason is not None:
        assert (registrations, messages) == (0, 0), f"stored although {reason}"
        assert response.status_code in (200, 400), response.status_code
        return
    if response.status_code != 302 and not _simple_email(post):
        # An address the oracle cannot judge (Django's email validator is
        # stricter than "has an @"): refused is fine, stored half is not.
        assert (registrations, messages) == (0, 0)
        return
    # Valid: one new signup and one confirmation email; the same signup
    # again within ten minutes is the same signup (no row, no email).
    assert response.status_code == 302, _errors(response)
    assert (registrations, messages) == ((0, 0) if repeat else (1, 1))
    if repeat:
        return
    registration = Registration.objects.order_by("-pk").first()
    registration.full_clean()
    assert registration.status == RegistrationStatus.PENDING
    assert registration.cohort.lab.slug == slug
    assert registration.contact_name == post["contact_name"][-1].strip()
    assert registration.case_description == post["case_description"][-1].strip()


def _last(post: dict[str, list[str]], name: str) -> str:
    return post[name][-1] if post.get(name) else ""


def _simple_email(post: dict[str, list[str]]) -> bool:
    return re.fullmatch(r"[a-z]+(\.[a-z]+)*@haarlem\.nl", _last(post, "contact_email").strip()) is not None


def _pending_duplicate_exists(slug: str, post: dict[str, list[str]]) -> bool:
    return Registration.objects.filter(
        cohort__lab__slug=slug,
        municipality__cbs_code=_last(post, "municipality").strip().upper(),
        status=RegistrationStatus.PENDING,
        contact_email__iexact=_last(post, "contact_email").strip(),
    ).exists()


def _errors(response) -> str:
    body = response.content.decode("utf-8", "replace")
    return " | ".join(re.findall(r'<div class="alert alert-danger error-summary".*?</ul>', body, re.S))[:2000]


@FAST
@given(data=st.data())
def test_signup_post_without_csrf_token_stores_nothing(db, nh_codes, data):
    """Issue #3: with CSRF enforced (as in production) no POST without a
    token gets through, whatever it holds."""
    post = data.draw(signup_posts(nh_codes))
    slug = data.draw(st.sampled_from(SLUGS))
    before = counts()

    response = Client(enforce_csrf_checks=True).post(
        f"/leerlabs/{slug}/aanmelden/", **encode_post(post, "multipart")
    )

    assert_sane(response)
    assert response.status_code == 403
    assert counts() == before


@SLOW
@given(size=st.integers(min_value=1_000, max_value=100_000), piece=st.sampled_from(["a", "é", "🏠", "\x00"]))
def test_signup_with_every_field_oversized(db, nh_codes, size, piece):
    """Issue #3: up to 100k characters in every field at once (megabytes of
    form data) is refused with a 4xx or a form error, never a 5xx."""
    post = {name: [_repeat(piece, size)] for name in FIELDS}
    before = counts()

    response = Client().post(f"/leerlabs/{SLUGS[0]}/aanmelden/", **encode_post(post, "urlencoded"))

    assert_sane(response)
    assert response.status_code in (200, 400)
    assert counts() == before


# --- Confirmation links ------------------------------------------------------

RAW_PATH_PIECES = [
    "%00",
    "..",
    "../..",
    "%2e%2e",
    "%2F",
    "a/b",
    "/",
    "%",
    "%ff",
    "%c0%ae",
    "%E2%80%AE",
    "?x=1",
    "#",
]


@st.composite
def token_paths(draw, real_tokens: list[str]):
    prefix = draw(st.sampled_from(["", "/en"]))
    kind = draw(st.sampled_from(["text", "long", "raw", "near-miss"]))
    if kind == "raw":
        piece = "".join(draw(st.lists(st.sampled_from(RAW_PATH_PIECES), min_size=1, max_size=4)))
        return f"{prefix}/aanmelding/bevestig/{piece}/"
    if kind == "near-miss":
        # A real token, one character off: must never confirm anything.
        token = draw(st.sampled_from(real_tokens))
        token = draw(
            st.sampled_from(
                [
                    token.upper() if token.upper() != token else token + "A",
                    token[:-1],
                    token + draw(hostile_char),
                    _insert(token, draw(hostile_char), draw(st.integers(0, 60))),
                ]
            )
        )
    elif kind == "long":
        token = draw(oversized)
    else:
        token = draw(st.one_of(short_text, markup))
    safe = draw(st.sampled_from(["", "/"]))
    return f"{prefix}/aanmelding/bevestig/{quote(token, safe=safe)}/"


@pytest.fixture
def pending_tokens(cohort) -> list[str]:
    return [RegistrationFactory(cohort=cohort).token for _ in range(3)]


def _registration_state() -> list[tuple]:
    return list(Registration.objects.order_by("pk").values_list("pk", "status", "token_used_at"))


@FAST
@given(data=st.data(), method=st.sampled_from(["get", "post", "head"]))
def test_confirmation_with_arbitrary_tokens_changes_nothing(db, pending_tokens, data, method):
    """Issue #3: arbitrary, URL-quoted, path-traversing, very long and
    one-off tokens in the confirmation URL never confirm and never fail."""
    path = data.draw(token_paths(pending_tokens))
    state, messages = _registration_state(), OutboxMessage.objects.count()

    response = getattr(Client(), method)(path)

    assert_sane(response)
    assert response.status_code in (200, 301, 302, 400, 404, 405, 410), (path[:200], response.status_code)
    assert _registration_state() == state
    assert OutboxMessage.objects.count() == messages


def test_a_real_token_still_confirms(db, pending_tokens):
    """The property above would also hold if confirmation were broken; a
    real token must still work through the same paths."""
    response = Client().post(f"/aanmelding/bevestig/{quote(pending_tokens[0], safe='')}/")
    assert response.status_code == 200
    assert Registration.objects.filter(status=RegistrationStatus.CONFIRMED).count() == 1


# --- Language switch ------------------------------------------------------------

next_urls = st.one_of(
    hostile_text,
    st.sampled_from(
        [
            "/",
            "/leerlabs/verhaal-warmtetransitie/",
            "//evil.example/",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "http://testserver@evil.example/",
            "javascript:alert(1)",
            "\x01https://evil.example",
            " //evil.example",
            "http://[::1",
            "/%0d%0aSet-Cookie:x=1",
            "/\r\nLocation: https://evil.example",
        ]
    ),
    st.builds(lambda a, b: a + b, st.sampled_from(["/", "//", "/en/", "https://"]), short_text),
)


@FAST
@given(
    language=st.one_of(st.sampled_from(["nl", "en", "EN", "de", "", "nl-NL"]), hostile_text),
    next_url=next_urls,
    referer=st.one_of(st.none(), next_urls),
    via_query=st.booleans(),
)
def test_language_switch_with_arbitrary_language_and_next(db, language, next_url, referer, via_query):
    """Issue #3: /i18n/setlang/ never fails, never redirects off-site, and
    whatever language cookie it leaves, the next page is Dutch or English.
    (Django stores any language it has translations for, such as "de" or
    "EN"; the portal then falls back to one of its own.)"""
    extra = {"HTTP_REFERER": referer} if referer is not None else {}
    path = "/i18n/setlang/" + (f"?{urlencode({'next': next_url})}" if via_query else "")
    body = {"language": language} if via_query else {"language": language, "next": next_url}
    before = counts()
    client = Client()

    response = client.post(path, body, **extra)

    assert_sane(response)
    assert counts() == before
    if response.status_code in (301, 302):
        location = urlsplit(response["Location"])
        assert location.netloc in ("", "testserver"), response["Location"]
        assert location.scheme in ("", "http", "https"), response["Location"]
    page = client.get("/")
    assert_sane(page)
    assert page.status_code == 200
    assert re.search(r'<html lang="(nl|en)">', page.content.decode()), page.content[:200]


# --- Unknown slugs and query strings ------------------------------------------

slugs = st.one_of(
    hostile_text,
    st.from_regex(r"[-a-zA-Z0-9_]{1,80}", fullmatch=True),
    st.builds(lambda s, t: s + t, st.sampled_from(SLUGS), st.sampled_from(["", "-", "X", "%00", "/..", "/"])),
    st.sampled_from([s.upper() for s in SLUGS]),
)


@FAST
@given(
    slug=slugs,
    page=st.sampled_from(["", "aanmelden/", "aanmelden/verzonden/"]),
    method=st.sampled_from(["get", "post", "head"]),
    prefix=st.sampled_from(["", "/en"]),
)
def test_unknown_slugs(db, slug, page, method, prefix):
    """Issue #3: /leerlabs/<slug>/ and its signup pages with any slug."""
    before = counts()
    response = getattr(Client(), method)(f"{prefix}/leerlabs/{quote(slug, safe='')}/{page}")

    assert_sane(response)
    assert counts() == before


GET_PAGES = [
    "/",
    "/en/",
    "/privacy/",
    "/en/privacy/",
    *[f"/leerlabs/{slug}/" for slug in SLUGS],
    *[f"/leerlabs/{slug}/aanmelden/" for slug in SLUGS],
    *[f"/leerlabs/{slug}/aanmelden/verzonden/" for slug in SLUGS],
    "/aanmelding/bevestig/onbekend/",
]

query_strings = st.one_of(
    st.lists(st.tuples(hostile_text, hostile_text), max_size=5).map(urlencode),
    st.builds(lambda text: quote(text, safe="=&;+%"), st.one_of(short_text, markup)),
    st.lists(st.sampled_from(["=", "&", "%", "%00", "%ff", ";", "+", "a", "[]", "%%", "next=//evil"])).map(
        "".join
    ),
)


@FAST
@given(
    page=st.sampled_from(GET_PAGES),
    query=query_strings,
    accept_language=st.one_of(st.none(), short_text.map(lambda t: t.encode("utf-8").decode("latin-1"))),
)
def test_arbitrary_query_strings_on_get_pages(db, page, query, accept_language):
    """Issue #3: any query string (and Accept-Language header) on every page."""
    extra = {"HTTP_ACCEPT_LANGUAGE": accept_language} if accept_language is not None else {}
    before = counts()

    response = Client().get(f"{page}?{query}", **extra)

    assert_sane(response)
    assert response.status_code in (200, 404), (page, query[:100], response.status_code)
    assert counts() == before
