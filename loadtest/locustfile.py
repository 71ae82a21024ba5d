# ruff: noqa: S311 -- simulated visitors pick at random; nothing here is cryptography
"""Load test of the Leer Lab portal (issue #3): municipal officers browse,
sign up and confirm.

Started by loadtest/run.py, which runs the portal (gunicorn), a Celery
worker and beat, and the SMTP server. That server writes each confirmation
link to a spool directory, one file per recipient (LOADTEST_SPOOL); an
officer who signed up reads their own link from it, as they would from
their mailbox.

Every response is judged, not just its status: an invalid signup that is
accepted, a valid one that is refused for no rule, a confirmation without
an outcome, and every 5xx are failures. What the officers saw is counted
in LOADTEST_OUTCOMES (JSON), for run.py to compare with the database.
"""

import html
import json
import os
import random
import re
import threading
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from locust import FastHttpUser, between, events, task

SPOOL = Path(os.environ.get("LOADTEST_SPOOL", "loadtest-spool"))
OUTCOMES_FILE = os.environ.get("LOADTEST_OUTCOMES", "")
# In the phase with rate limits on, a 429 is the expected answer to too
# many requests from one address (all simulated officers share 127.0.0.1).
EXPECT_429 = os.environ.get("LOADTEST_EXPECT_429") == "1"

SLUGS = [
    "startplan-wijkaanpak-aardgasvrij",
    "doelgroepgerichte-aanpak-aardgasvrij-ready",
    "organisatie-inrichting-warmtetransitie",
    "verhaal-warmtetransitie",
]
# Known municipalities that may not take part: Utrecht (another province)
# and a code that does not exist.
OUTSIDE_PROVINCE = "GM0344"
UNKNOWN_CODE = "GM9999"

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
MUNICIPALITY_OPTION = re.compile(r'<option value="(GM\d{4})"')
STATIC_ASSET = re.compile(r'(?:href|src)="(/static/[^"]+)"')
OUTCOME = re.compile(r'data-outcome="(seat|waitlist)"')
ERROR_SUMMARY = "data-error-summary"
# The refusals in Dutch and, for officers under /en/, in English.
ALREADY_REGISTERED = ("al aangemeld voor dit Leer Lab", "already signed up for this Leer Lab")
BUSY = ("erg druk", "very busy")


def _says(body: str, texts: tuple[str, ...]) -> bool:
    return any(text in body for text in texts)


_codes: list[str] = []
_codes_lock = threading.Lock()
outcomes: Counter = Counter()


def _csrf(body: str) -> str | None:
    match = CSRF_INPUT.search(body)
    return match.group(1) if match else None


def _valid_signup(code: str, email: str) -> dict:
    number = random.randint(1, 10_000)
    return {
        "municipality": code,
        "contact_name": random.choice(["Jan de Vries", "Fatima el Amrani", "Sanne Bakker", "Pieter Jansen"]),
        "contact_email": email,
        "contact_role": "Beleidsmedewerker warmtetransitie",
        "contact_phone": "020 123 4567",
        "case_title": f"Wijkaanpak {number}",
        "case_description": "Wij willen een wijk stap voor stap aardgasvrij maken.\nHoe beginnen we?",
        "learning_needs": "Hoe betrekken we bewoners en woningcorporaties?",
        "privacy_consent": "on",
    }


def _invalid_signup(code: str, email: str) -> tuple[str, dict]:
    data = _valid_signup(code, email)
    kind = random.choice(["consent", "outside", "unknown", "control", "oversized", "email", "missing"])
    if kind == "consent":
        data.pop("privacy_consent")
    elif kind == "outside":
        data["municipality"] = OUTSIDE_PROVINCE
    elif kind == "unknown":
        data["municipality"] = UNKNOWN_CODE
    elif kind == "control":
        data["contact_name"] = "Jan\u202e seirV ed"
    elif kind == "oversized":
        data["case_description"] = "x" * 5000
    elif kind == "email":
        data["contact_email"] = "geen-adres"
    else:
        data.pop("case_title")
    return kind, data


class Officer(FastHttpUser):
    """A municipal officer: reads about the labs, signs up, confirms."""

    wait_time = between(0.5, 2.5)

    def on_start(self):
        self.pending: list[str] = []  # addresses waiting for their link
        self.used_links: list[str] = []
        self.language = random.choice(["", "", "", "/en"])
        response = self.client.get(f"{self.language}/", name="/ (home)")
        # A browser fetches the page's CSS and JavaScript once.
        for asset in sorted(set(STATIC_ASSET.findall(response.text or ""))):
            self.client.get(asset, name="/static/[asset]")

    # --- browsing ---------------------------------------------------------------

    @task(4)
    def home(self):
        self.client.get(f"{self.language}/", name="/ (home)")

    @task(4)
    def lab_page(self):
        self.client.get(f"{self.language}/leerlabs/{random.choice(SLUGS)}/", name="/leerlabs/[slug]/")

    @task(1)
    def privacy(self):
        self.client.get(f"{self.language}/privacy/", name="/privacy/")

    # --- signing up ---------------------------------------------------------------

    def _signup_form(self, slug: str) -> str | None:
        """GET the form: the CSRF cookie, its token and the municipalities."""
        with self.client.get(
            f"{self.language}/leerlabs/{slug}/aanmelden/",
            name="/leerlabs/[slug]/aanmelden/",
            catch_response=True,
        ) as response:
            body = response.text or ""
            token = _csrf(body)
            if response.status_code != 200 or token is None:
                response.failure(f"signup form: status {response.status_code}, token {bool(token)}")
                return None
            if not _codes:
                with _codes_lock:
                    if not _codes:
                        _codes.extend(sorted(set(MUNICIPALITY_OPTION.findall(body))))
            response.success()
            return token

    def _post_signup(self, slug: str, token: str, data: dict, name: str):
        return self.client.post(
            f"{self.language}/leerlabs/{slug}/aanmelden/",
            data={"csrfmiddlewaretoken": token, **data},
            headers={"Referer": f"{self.client.base_url}{self.language}/leerlabs/{slug}/aanmelden/"},
            allow_redirects=False,
            name=name,
            catch_response=True,
        )

    @task(3)
    def sign_up(self):
        slug = random.choice(SLUGS)
        token = self._signup_form(slug)
        if token is None or not _codes:
            return
        email = f"lt-{uuid.uuid4().hex[:16]}@example.nl"
        data = _valid_signup(random.choice(_codes), email)
        accepted = False
        # One in ten clicks twice: still one signup and one email.
        for _attempt in range(2 if random.random() < 0.1 else 1):
            with self._post_signup(slug, token, data, "/leerlabs/[slug]/aanmelden/ (valid)") as response:
                body = response.text or ""
                if response.status_code == 302:
                    response.success()
                    if accepted:
                        outcomes["signup sent twice, second accepted as the same"] += 1
                        continue
                    accepted = True
                    outcomes["signup accepted"] += 1
                    # Some officers never confirm; their signup expires.
                    if random.random() < 0.85:
                        self.pending.append(email)
                elif response.status_code == 200 and _says(html.unescape(body), ALREADY_REGISTERED):
                    response.success()
                    outcomes["signup refused: municipality already has a place"] += 1
                elif response.status_code == 200 and _says(body, BUSY):
                    response.success()
                    outcomes["signup refused: busy"] += 1
                elif response.status_code == 429 and EXPECT_429:
                    response.success()
                    outcomes["signup rate-limited (429)"] += 1
                else:
                    response.failure(f"valid signup not accepted: status {response.status_code}")
                    return
        if response.status_code == 302:
            self.client.get(
                f"{self.language}/leerlabs/{slug}/aanmelden/verzonden/",
                name="/leerlabs/[slug]/aanmelden/verzonden/",
            )

    @task(1)
    def sign_up_invalid(self):
        slug = random.choice(SLUGS)
        token = self._signup_form(slug)
        if token is None or not _codes:
            return
        kind, data = _invalid_signup(random.choice(_codes), f"lt-{uuid.uuid4().hex[:16]}@example.nl")
        with self._post_signup(slug, token, data, "/leerlabs/[slug]/aanmelden/ (invalid)") as response:
            if response.status_code == 200 and ERROR_SUMMARY in (response.text or ""):
                response.success()
                outcomes[f"invalid signup refused ({kind})"] += 1
            elif response.status_code == 429 and EXPECT_429:
                response.success()
                outcomes["signup rate-limited (429)"] += 1
            else:
                response.failure(f"invalid signup ({kind}) got status {response.status_code}")

    # --- confirming ---------------------------------------------------------------

    def _link_for(self) -> str | None:
        """The path of a confirmation link that has arrived, if any."""
        for email in list(self.pending):
            path = SPOOL / email
            if path.exists():
                self.pending.remove(email)
                return urlsplit(path.read_text().strip()).path
        return None

    @task(4)
    def confirm(self):
        path = self._link_for()
        if path is None:
            # No mail yet: read a lab page meanwhile.
            self.lab_page()
            return
        with self.client.get(path, name="/aanmelding/bevestig/[token]/", catch_response=True) as response:
            token = _csrf(response.text or "")
            if response.status_code == 429 and EXPECT_429:
                response.success()
                outcomes["confirmation rate-limited (429)"] += 1
                return
            if response.status_code != 200 or token is None:
                response.failure(f"confirmation page: status {response.status_code}")
                return
            response.success()
        self._post_confirm(path, token, "/aanmelding/bevestig/[token]/")
        self.used_links.append(path)

    @task(1)
    def confirm_again(self):
        """The link used once more (a second click, another device): the
        outcome is shown again, nothing changes."""
        if not self.used_links:
            self.privacy()
            return
        path = random.choice(self.used_links)
        response = self.client.get(path, name="/aanmelding/bevestig/[token]/ (used)")
        token = _csrf(response.text or "")
        if token:
            self._post_confirm(path, token, "/aanmelding/bevestig/[token]/ (used)", again=True)

    def _post_confirm(self, path: str, token: str, name: str, again: bool = False) -> None:
        with self.client.post(
            path,
            data={"csrfmiddlewaretoken": token},
            headers={"Referer": f"{self.client.base_url}{path}"},
            name=name,
            catch_response=True,
        ) as response:
            body = html.unescape(response.text or "")
            outcome = OUTCOME.search(body)
            if response.status_code == 200 and outcome:
                response.success()
                prefix = "confirmation shown again" if again else "confirmed"
                outcomes[f"{prefix}: {outcome.group(1)}"] += 1
            elif response.status_code == 409 and _says(body, ALREADY_REGISTERED):
                # A colleague of the same municipality confirmed first.
                response.success()
                outcomes["confirmation refused: municipality already has a place"] += 1
            elif response.status_code == 409 and _says(body, BUSY):
                response.success()
                outcomes["confirmation refused: busy"] += 1
            elif response.status_code == 429 and EXPECT_429:
                response.success()
                outcomes["confirmation rate-limited (429)"] += 1
            else:
                response.failure(f"confirmation without an outcome: status {response.status_code}")

    # --- language -------------------------------------------------------------------

    @task(1)
    def switch_language(self):
        """The language buttons in the header of every page (a form with
        the CSRF token)."""
        page = f"{self.language}/leerlabs/{random.choice(SLUGS)}/"
        token = _csrf(self.client.get(page, name="/leerlabs/[slug]/").text or "")
        target = "en" if self.language == "" else "nl"
        with self.client.post(
            "/i18n/setlang/",
            data={"csrfmiddlewaretoken": token or "", "language": target, "next": page},
            headers={"Referer": f"{self.client.base_url}{page}"},
            allow_redirects=False,
            name="/i18n/setlang/",
            catch_response=True,
        ) as response:
            if response.status_code == 302:
                response.success()
                self.language = "/en" if target == "en" else ""
            else:
                response.failure(f"language switch: status {response.status_code}")


@events.quitting.add_listener
def _write_outcomes(environment, **_kwargs):
    if OUTCOMES_FILE:
        Path(OUTCOMES_FILE).write_text(json.dumps(dict(sorted(outcomes.items())), indent=2))
