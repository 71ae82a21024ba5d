"""The advisors' dashboard and a cohort's learning needs side by side
(issue #6): staff only, every current cohort per lab with its counts,
advisors and waitlist, flagged email domains, a fixed number of queries,
and no history written for reading."""

import re
from datetime import date, timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leerlab.dashboard import RECENTLY_ENDED_DAYS
from leerlab.models import Cohort, CohortEvent, CohortStatus, LeerLab
from municipalities.models import Municipality
from registrations.models import RegistrationEvent, RegistrationStatus
from registrations.services import waitlist_position
from tests.factories import CohortFactory, RegistrationFactory, UserFactory

DASHBOARD = "/admin/dashboard/"


@pytest.fixture
def advisor(db):
    user = UserFactory(staff=True, username="adviseur-dash", first_name="Anne", last_name="Adviseur")
    user.groups.add(Group.objects.get(name="Servicepunt-adviseurs"))
    return user


@pytest.fixture
def advisor_client(client, advisor):
    client.force_login(advisor)
    return client


def _nh(count: int, *, skip: int = 0) -> list[Municipality]:
    return list(Municipality.objects.filter(province="Noord-Holland", is_active=True).order_by("name"))[
        skip : skip + count
    ]


def _cohort_card(html: str, cohort: Cohort) -> str:
    match = re.search(
        rf'<article class="ll-cohort[^"]*" data-cohort="{cohort.pk}".*?</article>', html, re.DOTALL
    )
    assert match, f"no card for {cohort}"
    return match.group(0)


def _field(card: str, name: str) -> str:
    return re.search(rf"<dd data-{name}>(.*?)</dd>", card, re.DOTALL).group(1).strip()


# --- Access --------------------------------------------------------------------------


def test_urls_have_the_agreed_names():
    assert reverse("admin:dashboard") == DASHBOARD
    assert reverse("admin:dashboard_learning_needs", args=[7]) == "/admin/dashboard/cohort/7/leervragen/"


@pytest.mark.parametrize("url", [DASHBOARD, "/admin/dashboard/cohort/1/leervragen/"])
def test_anonymous_and_non_staff_go_to_the_admin_login(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login") + "?next=")

    client.force_login(UserFactory(username="geen-staf"))
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login") + "?next=")


def test_staff_without_the_cohort_permission_is_refused(client, db, cohort):
    client.force_login(UserFactory(staff=True, username="staf-zonder-rechten"))

    assert client.get(DASHBOARD).status_code == 403
    assert client.get(reverse("admin:dashboard_learning_needs", args=[cohort.pk])).status_code == 403


def test_learning_needs_need_the_registration_permission_too(client, db, cohort):
    user = UserFactory(staff=True, username="alleen-cohorten")
    user.user_permissions.add(Permission.objects.get(codename="view_cohort"))
    client.force_login(user)

    assert client.get(DASHBOARD).status_code == 200
    assert client.get(reverse("admin:dashboard_learning_needs", args=[cohort.pk])).status_code == 403


def test_without_the_second_factor_the_dashboard_is_refused(advisor_client, settings):
    settings.LEERLAB_ADMIN_2FA = True

    response = advisor_client.get(DASHBOARD)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_admin_home_links_to_the_dashboard(advisor_client):
    response = advisor_client.get(reverse("admin:index"))

    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="{DASHBOARD}"' in html
    # Still Django's admin home with the site's own header.
    assert "Leer Labs – beheer Servicepunt" in html
    assert 'id="recent-actions-module"' in html


# --- The dashboard -----------------------------------------------------------------------


def test_dashboard_shows_each_lab_in_order_with_its_cohorts(advisor_client, advisor, lab, cohort):
    cohort.start_date = date(2031, 3, 2)
    cohort.go_no_go_date = timezone.localdate() + timedelta(days=5)
    cohort.save()
    cohort.advisors.add(advisor, UserFactory(staff=True, username="tweede", first_name="", last_name=""))
    municipalities = _nh(5)
    for municipality in municipalities[:2]:
        RegistrationFactory(cohort=cohort, municipality=municipality, confirmed=True)
    RegistrationFactory(cohort=cohort, municipality=municipalities[2], waitlisted=True)
    RegistrationFactory(cohort=cohort, municipality=municipalities[3])
    RegistrationFactory(cohort=cohort, municipality=municipalities[4], expired=True)
    RegistrationFactory(cohort=cohort, municipality=municipalities[4], status=RegistrationStatus.WITHDRAWN)

    response = advisor_client.get(DASHBOARD)

    assert response.status_code == 200
    html = response.content.decode()
    titles = re.findall(r'<h2 id="lab-[\w-]+-title" class="ll-lab-title">(.*?)</h2>', html)
    assert titles == list(LeerLab.objects.order_by("position", "title").values_list("title", flat=True))
    card = _cohort_card(html, cohort)
    assert "open voor aanmelding" in card
    assert _field(card, "confirmed") == f"2 van {lab.max_municipalities}"
    assert _field(card, "waitlisted") == "1"
    assert _field(card, "pending") == "1"  # the expired one does not count
    assert "nog 1 gemeente nodig om te starten" in card
    assert "2 maart 2031" in card
    assert "(over 5 dagen)" in card
    assert _field(card, "advisors") == "Anne Adviseur, tweede"
    assert reverse("admin:leerlab_cohort_change", args=[cohort.pk]) in card
    assert reverse("admin:dashboard_learning_needs", args=[cohort.pk]) in card


@pytest.mark.parametrize(
    ("status", "confirmed", "text"),
    [
        (CohortStatus.STARTED, 3, "nog 2 plaatsen"),
        (CohortStatus.STARTED, 4, "nog 1 plaats"),
        (CohortStatus.CLOSED, 5, "vol"),
        (CohortStatus.CLOSED, 4, "aanmelding gesloten, 1 plaats onbezet"),
    ],
)
def test_places_left_in_words(advisor_client, status, confirmed, text):
    cohort = CohortFactory(status=status, started_at=timezone.now())
    for municipality in _nh(confirmed):
        RegistrationFactory(cohort=cohort, municipality=municipality, confirmed=True)

    card = _cohort_card(advisor_client.get(DASHBOARD).content.decode(), cohort)

    assert re.search(r"<p class=\"ll-capacity\" data-capacity>(.*?)</p>", card).group(1) == text


def test_recently_ended_cohorts_stay_and_old_ones_go(advisor_client, lab):
    now = timezone.now()
    recent = Cohort.objects.create(
        lab=lab, number=2, status=CohortStatus.COMPLETED, ended_at=now - timedelta(days=10)
    )
    cancelled = Cohort.objects.create(
        lab=lab,
        number=3,
        status=CohortStatus.CANCELLED,
        ended_at=now - timedelta(days=RECENTLY_ENDED_DAYS - 1),
    )
    old = Cohort.objects.create(
        lab=lab,
        number=4,
        status=CohortStatus.COMPLETED,
        ended_at=now - timedelta(days=RECENTLY_ENDED_DAYS + 1),
    )
    # Ended before ended_at existed: its last known moment counts.
    legacy = Cohort.objects.create(lab=lab, number=5, status=CohortStatus.COMPLETED)
    Cohort.objects.filter(pk=legacy.pk).update(created_at=now - timedelta(days=400))

    html = advisor_client.get(DASHBOARD).content.decode()

    shown = {int(pk) for pk in re.findall(r'data-cohort="(\d+)"', html)}
    assert {recent.pk, cancelled.pk} <= shown
    assert not {old.pk, legacy.pk} & shown
    assert "afgerond" in _cohort_card(html, recent)
    assert "geannuleerd" in _cohort_card(html, cancelled)


def test_waitlist_in_the_order_it_moves_up(advisor_client, cohort):
    now = timezone.now()
    municipalities = _nh(4)
    # Created in one order, confirmed in another; two at the same moment
    # go by id, as registrations.services.waitlist_position counts.
    registrations = [
        RegistrationFactory(cohort=cohort, municipality=municipalities[0], waitlisted=True, confirmed_at=now),
        RegistrationFactory(
            cohort=cohort,
            municipality=municipalities[1],
            waitlisted=True,
            confirmed_at=now - timedelta(hours=1),
        ),
        RegistrationFactory(cohort=cohort, municipality=municipalities[2], waitlisted=True, confirmed_at=now),
        RegistrationFactory(
            cohort=cohort,
            municipality=municipalities[3],
            waitlisted=True,
            confirmed_at=now - timedelta(days=1),
        ),
    ]
    expected = sorted(registrations, key=lambda r: waitlist_position(registration=r))

    card = _cohort_card(advisor_client.get(DASHBOARD).content.decode(), cohort)

    waitlist = re.search(r"<ol class=\"ll-waitlist\" data-waitlist>(.*?)</ol>", card, re.DOTALL).group(1)
    assert re.findall(r">([^<>]+)</a></li>", waitlist) == [r.municipality.name for r in expected]
    assert [r.municipality.name for r in expected] == [municipalities[i].name for i in (3, 1, 0, 2)]
    for registration in registrations:
        assert reverse("admin:registrations_registration_change", args=[registration.pk]) in waitlist


def test_flagged_domains_show_only_the_domain_of_live_registrations(advisor_client, cohort):
    municipalities = _nh(6)
    confirmed = RegistrationFactory(
        cohort=cohort,
        municipality=municipalities[0],
        confirmed=True,
        email_domain_flagged=True,
        contact_email="j.jansen@Adviesbureau.example",
    )
    pending = RegistrationFactory(
        cohort=cohort,
        municipality=municipalities[1],
        email_domain_flagged=True,
        contact_email="x@gedeeld.example",
    )
    hidden = [
        RegistrationFactory(
            cohort=cohort,
            municipality=municipalities[2],
            status=RegistrationStatus.WITHDRAWN,
            email_domain_flagged=True,
            contact_email="weg@ingetrokken.example",
        ),
        RegistrationFactory(
            cohort=cohort,
            municipality=municipalities[3],
            expired=True,
            email_domain_flagged=True,
            contact_email="oud@verlopen.example",
        ),
        RegistrationFactory(
            cohort=CohortFactory(status=CohortStatus.COMPLETED),
            municipality=municipalities[4],
            confirmed=True,
            email_domain_flagged=True,
            contact_email="klaar@afgerond.example",
        ),
        RegistrationFactory(
            cohort=cohort,
            municipality=municipalities[5],
            confirmed=True,
            contact_email="gewoon@gemeente.example",
        ),
    ]

    html = advisor_client.get(DASHBOARD).content.decode()

    table = re.search(r"<table class=\"ll-table\" data-flagged>.*?</table>", html, re.DOTALL).group(0)
    rows = dict(re.findall(r'<tr data-registration="(\d+)">(.*?)</tr>', table, re.DOTALL))
    assert set(rows) == {str(confirmed.pk), str(pending.pk)}
    row = rows[str(confirmed.pk)]
    assert municipalities[0].name in row
    assert f"{cohort.lab.title}, cohort {cohort.number}" in row
    assert "<td>adviesbureau.example</td>" in row
    assert reverse("admin:registrations_registration_change", args=[confirmed.pk]) in row
    # The domain, never the person's part of the address.
    assert "j.jansen" not in html and "x@gedeeld" not in html
    for registration in hidden:
        assert registration.contact_email.partition("@")[2] not in html


def test_without_flagged_registrations_the_section_says_so(advisor_client, cohort):
    html = advisor_client.get(DASHBOARD).content.decode()

    assert "Geen aanmeldingen met een afwijkend e-maildomein." in html


def _fill(size: int) -> None:
    """`size` confirmed, waitlisted, pending and flagged registrations per
    lab, and `size` advisors on each cohort."""
    labs = list(LeerLab.objects.order_by("position"))
    municipalities = _nh(3 * size, skip=3 * size * (size > 1))
    for index, lab in enumerate(labs):
        cohort = lab.cohorts.get(number=1)
        cohort.advisors.add(*(UserFactory(staff=True, username=f"a{index}-{n}-{size}") for n in range(size)))
        for n in range(size):
            RegistrationFactory(cohort=cohort, municipality=municipalities[n], confirmed=True)
            RegistrationFactory(
                cohort=cohort,
                municipality=municipalities[size + n],
                waitlisted=True,
                email_domain_flagged=True,
            )
            RegistrationFactory(cohort=cohort, municipality=municipalities[2 * size + n])
        CohortFactory(lab=lab, number=10 + size, status=CohortStatus.COMPLETED, ended_at=timezone.now())


def _queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(DASHBOARD)
    assert response.status_code == 200
    return len(queries)


def test_dashboard_costs_a_fixed_number_of_queries(advisor_client, django_assert_max_num_queries):
    _fill(1)
    with django_assert_max_num_queries(14):
        small = _queries(advisor_client)

    _fill(4)
    with django_assert_max_num_queries(14):
        large = _queries(advisor_client)

    assert small == large


def test_learning_needs_cost_a_fixed_number_of_queries(advisor_client, cohort, django_assert_max_num_queries):
    url = reverse("admin:dashboard_learning_needs", args=[cohort.pk])
    RegistrationFactory(cohort=cohort, municipality=_nh(1)[0], confirmed=True)
    with CaptureQueriesContext(connection) as small:
        advisor_client.get(url)
    for municipality in _nh(6, skip=1):
        RegistrationFactory(cohort=cohort, municipality=municipality, waitlisted=True)

    with django_assert_max_num_queries(len(small)):
        response = advisor_client.get(url)

    assert len(response.context["waitlisted"]) == 6


def test_reading_writes_no_history(advisor_client, cohort):
    registration = RegistrationFactory(cohort=cohort, municipality=_nh(1)[0], confirmed=True)
    before = (CohortEvent.objects.count(), RegistrationEvent.objects.count(), LogEntry.objects.count())

    assert advisor_client.get(DASHBOARD).status_code == 200
    assert advisor_client.get(reverse("admin:dashboard_learning_needs", args=[cohort.pk])).status_code == 200

    assert (
        CohortEvent.objects.count(),
        RegistrationEvent.objects.count(),
        LogEntry.objects.count(),
    ) == before
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.CONFIRMED


# --- Learning needs ---------------------------------------------------------------------


def _cards(html: str, section: str) -> list[str]:
    block = re.search(
        rf'<div class="ll-cards" data-section="{section}">(.*?)</div>\s*</section>', html, re.DOTALL
    )
    if block is None:
        return []
    return re.findall(r"<article class=\"ll-card\".*?</article>", block.group(1), re.DOTALL)


def test_learning_needs_side_by_side(advisor_client, cohort):
    municipalities = _nh(4)
    later = RegistrationFactory(
        cohort=cohort,
        municipality=municipalities[1],
        confirmed=True,
        contact_name="Bram Bakker",
        contact_role="Projectleider",
        case_title="Wijkaanpak Noord",
        case_description="Eerste regel.\nTweede regel.",
        learning_needs="Hoe <b>betrekken</b> we bewoners & ondernemers?\n\nEn de woningcorporatie?",
    )
    earlier = RegistrationFactory(cohort=cohort, municipality=municipalities[0], confirmed=True)
    waiting_second = RegistrationFactory(
        cohort=cohort, municipality=municipalities[2], waitlisted=True, confirmed_at=timezone.now()
    )
    waiting_first = RegistrationFactory(
        cohort=cohort,
        municipality=municipalities[3],
        waitlisted=True,
        confirmed_at=timezone.now() - timedelta(hours=2),
    )
    RegistrationFactory(cohort=cohort, municipality=municipalities[3], status=RegistrationStatus.WITHDRAWN)

    response = advisor_client.get(reverse("admin:dashboard_learning_needs", args=[cohort.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    confirmed = _cards(html, "confirmed")
    waitlisted = _cards(html, "waitlisted")
    assert all(
        f'data-registration="{r.pk}"' in card for r, card in zip([earlier, later], confirmed, strict=True)
    )
    assert len(confirmed) == 2 and len(waitlisted) == 2
    assert f'data-registration="{waiting_first.pk}"' in waitlisted[0]
    assert f'data-registration="{waiting_second.pk}"' in waitlisted[1]
    card = next(c for c in confirmed if f'data-registration="{later.pk}"' in c)
    assert municipalities[1].name in card
    assert "Bram Bakker" in card and "Projectleider" in card and "Wijkaanpak Noord" in card
    assert "<p>Eerste regel.<br>Tweede regel.</p>" in card
    assert "Hoe &lt;b&gt;betrekken&lt;/b&gt; we bewoners &amp; ondernemers?</p>" in card
    assert "<p>En de woningcorporatie?</p>" in card
    assert "<b>" not in card
    assert f'href="{DASHBOARD}"' in html
    assert reverse("admin:leerlab_cohort_change", args=[cohort.pk]) in html


def test_anonymised_registrations_show_no_personal_data(advisor_client, cohort):
    RegistrationFactory(
        cohort=cohort,
        municipality=_nh(1)[0],
        confirmed=True,
        contact_name="",
        contact_role="",
        contact_email="verwijderd-1@geanonimiseerd.invalid",
        case_title="[verwijderd]",
        case_description="[verwijderd]",
        learning_needs="",
        anonymised_at=timezone.now(),
    )

    html = advisor_client.get(reverse("admin:dashboard_learning_needs", args=[cohort.pk])).content.decode()

    (card,) = _cards(html, "confirmed")
    assert "data-anonymised" in card
    assert "Contactpersoon" not in card and "[verwijderd]" not in card
    assert _nh(1)[0].name in card


def test_learning_needs_of_a_missing_cohort_is_404(advisor_client):
    assert advisor_client.get("/admin/dashboard/cohort/999999/leervragen/").status_code == 404


def test_learning_needs_of_an_empty_cohort_say_so(advisor_client, cohort):
    html = advisor_client.get(reverse("admin:dashboard_learning_needs", args=[cohort.pk])).content.decode()

    assert "Nog geen gemeente heeft een plaats in dit cohort." in html
    assert "Er staat geen gemeente op de wachtlijst van dit cohort." in html
