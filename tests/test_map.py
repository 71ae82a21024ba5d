"""The map of Noord-Holland on the advisors' dashboard (issue #6): one
<path> per municipality of the boundary file, coloured by participation,
with an accessible title, rendered on the server without JavaScript or
anything from elsewhere."""

import json
import re
from xml.etree.ElementTree import Element

import pytest
from defusedxml import ElementTree as ET
from django.contrib.auth.models import Group
from django.urls import reverse

from leerlab.map import (
    GEOJSON_PATH,
    NONE,
    ONE,
    THREE_PLUS,
    TWO,
    WAITLISTED,
    MapFeature,
    MapGeometry,
    Participation,
    municipality_participation,
    noord_holland,
    participation_map,
    project,
    render_svg,
)
from leerlab.models import Cohort, CohortStatus, LeerLab
from municipalities.models import Municipality
from registrations.models import RegistrationStatus
from tests.factories import RegistrationFactory, UserFactory

AMSTERDAM, HAARLEM, ALKMAAR, BEVERWIJK, AALSMEER, ZAANSTAD, HOORN = (
    "GM0363",
    "GM0392",
    "GM0361",
    "GM0375",
    "GM0358",
    "GM0479",
    "GM0441",
)


def _svg(html: str) -> Element:
    """The one <svg> element of a page, parsed as XML (the renderer writes
    well-formed markup)."""
    found = re.findall(r"<svg viewBox=.*?</svg>", html, flags=re.DOTALL)
    assert len(found) == 1, f"expected one map, found {len(found)}"
    return ET.fromstring(found[0])


def _paths(svg: Element) -> dict[str, Element]:
    paths = svg.findall(".//path")
    codes = [p.get("data-cbs-code") for p in paths]
    assert len(codes) == len(set(codes)), "a municipality is drawn twice"
    return dict(zip(codes, paths, strict=True))


def _cohort(slug: str) -> Cohort:
    return Cohort.objects.get(lab__slug=slug, number=1)


def _municipality(cbs_code: str) -> Municipality:
    return Municipality.objects.get(cbs_code=cbs_code)


@pytest.fixture
def labs(db) -> list[LeerLab]:
    return list(LeerLab.objects.order_by("position"))


@pytest.fixture
def participation_data(labs):
    """Amsterdam in 3 labs, Haarlem in 2, Alkmaar in 1 (and waitlisted in
    another), Beverwijk only waitlisted, Aalsmeer withdrawn and pending
    only, Zaanstad confirmed only in a completed cohort, Hoorn waitlisted
    only in a cancelled cohort."""
    cohorts = [_cohort(lab.slug) for lab in labs]
    for cohort in cohorts[:3]:
        RegistrationFactory(cohort=cohort, municipality=_municipality(AMSTERDAM), confirmed=True)
    for cohort in cohorts[:2]:
        RegistrationFactory(cohort=cohort, municipality=_municipality(HAARLEM), confirmed=True)
    RegistrationFactory(cohort=cohorts[3], municipality=_municipality(ALKMAAR), confirmed=True)
    RegistrationFactory(cohort=cohorts[0], municipality=_municipality(ALKMAAR), waitlisted=True)
    RegistrationFactory(cohort=cohorts[1], municipality=_municipality(BEVERWIJK), waitlisted=True)
    RegistrationFactory(
        cohort=cohorts[0], municipality=_municipality(AALSMEER), status=RegistrationStatus.WITHDRAWN
    )
    RegistrationFactory(cohort=cohorts[1], municipality=_municipality(AALSMEER))
    completed = Cohort.objects.create(lab=labs[0], number=2, status=CohortStatus.COMPLETED)
    RegistrationFactory(cohort=completed, municipality=_municipality(ZAANSTAD), confirmed=True)
    cancelled = Cohort.objects.create(lab=labs[1], number=2, status=CohortStatus.CANCELLED)
    RegistrationFactory(cohort=cancelled, municipality=_municipality(HOORN), waitlisted=True)
    return labs


# --- The geometry ----------------------------------------------------------------


def test_one_path_per_feature_and_the_codes_are_the_active_municipalities(db):
    features = json.loads(GEOJSON_PATH.read_text(encoding="utf-8"))["features"]

    paths = _paths(_svg(participation_map().svg))

    assert len(paths) == len(features) == 44
    active = set(
        Municipality.objects.filter(province="Noord-Holland", is_active=True).values_list(
            "cbs_code", flat=True
        )
    )
    assert set(paths) == active
    assert all(re.fullmatch(r"(M[-\d. L]+Z)+", p.get("d")) for p in paths.values())


def test_the_geometry_is_read_once_per_process():
    assert noord_holland() is noord_holland()
    assert noord_holland.cache_info().currsize == 1


def test_projection_puts_north_up_and_fits_the_view_box():
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"cbs_code": "GM0001", "name": "Noord"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[4.0, 53.0], [5.0, 53.0], [5.0, 52.5], [4.0, 53.0]]],
                },
            },
            {
                "type": "Feature",
                "properties": {"cbs_code": "GM0002", "name": "Zuid"},
                "geometry": {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [[[4.0, 52.0], [4.5, 52.0], [4.5, 52.5], [4.0, 52.0]]],
                        [[[4.6, 52.0], [5.0, 52.0], [5.0, 52.2], [4.6, 52.0]]],
                    ],
                },
            },
        ],
    }

    geometry = project(collection)

    north, south = geometry.features
    assert (north.cbs_code, north.name, south.cbs_code) == ("GM0001", "Noord", "GM0002")
    # The northernmost latitude is at the top (y = padding), the southern
    # edge one degree (1000 units) lower; one degree of longitude is
    # narrower than one of latitude at 52.5 degrees.
    assert north.path.startswith("M4 4L")
    assert "1004" in south.path
    assert south.path.count("M") == 2 and south.path.count("Z") == 2
    assert 600 < geometry.width < 620  # 1000 * cos(52.5°) + padding
    assert geometry.height == pytest.approx(1008)
    assert geometry.view_box == f"0 0 {geometry.width:.1f} 1008"


def test_the_map_is_small_and_rounded():
    geometry = noord_holland()

    assert sum(len(f.path) for f in geometry.features) < 15_000
    numbers = re.findall(r"[\d.]+", "".join(f.path for f in geometry.features))
    assert all(len(n.partition(".")[2]) <= 1 for n in numbers)


# --- Participation -----------------------------------------------------------------


def test_colours_and_classes_follow_the_registrations(participation_data):
    paths = _paths(_svg(participation_map().svg))

    expected = {
        AMSTERDAM: THREE_PLUS,
        HAARLEM: TWO,
        ALKMAAR: ONE,  # its waitlist place in another lab does not lower it
        BEVERWIJK: WAITLISTED,
        AALSMEER: NONE,  # withdrawn and pending do not count
        ZAANSTAD: NONE,  # a completed cohort is not current
        HOORN: NONE,  # nor is a cancelled one
    }
    for cbs_code, category in expected.items():
        path = paths[cbs_code]
        assert category.css_class in path.get("class").split(), cbs_code
        assert path.get("fill") == category.fill, cbs_code
    others = set(paths) - set(expected)
    assert {paths[code].get("fill") for code in others} == {NONE.fill}
    assert len({c.fill for c in (NONE, WAITLISTED, ONE, TWO, THREE_PLUS)}) == 5


def test_each_path_has_a_title_with_the_name_and_what_it_means(participation_data):
    paths = _paths(_svg(participation_map().svg))
    names = dict(Municipality.objects.filter(province="Noord-Holland").values_list("cbs_code", "name"))

    for cbs_code, path in paths.items():
        assert path.find("title").text.startswith(f"{names[cbs_code]}: ")
    assert paths[AMSTERDAM].find("title").text.startswith("Amsterdam: doet mee in 3 Leer Labs (")
    assert paths[HAARLEM].find("title").text.startswith("Haarlem: doet mee in 2 Leer Labs (")
    alkmaar = paths[ALKMAAR].find("title").text
    assert alkmaar.startswith("Alkmaar: doet mee in 1 Leer Lab (") and "op de wachtlijst van" in alkmaar
    assert paths[BEVERWIJK].find("title").text.startswith("Beverwijk: staat op een wachtlijst")
    assert paths[AALSMEER].find("title").text == "Aalsmeer: doet (nog) niet mee"


def test_participation_lists_the_labs_by_their_order(participation_data):
    labs = participation_data

    participation = municipality_participation()

    assert participation[AMSTERDAM].labs == tuple(lab.title for lab in labs[:3])
    assert participation[ALKMAAR].labs == (labs[3].title,)
    assert participation[ALKMAAR].waitlisted_labs == (labs[0].title,)
    assert participation[BEVERWIJK].waitlisted_labs == (labs[1].title,)
    assert participation[HOORN].waitlisted_labs == ()
    assert len(participation) == 44


def test_legend_counts_every_category_in_text(participation_data):
    legend = {item.category: item for item in participation_map().legend}

    assert {category: item.count for category, item in legend.items()} == {
        THREE_PLUS: 1,
        TWO: 1,
        ONE: 1,
        WAITLISTED: 1,
        NONE: 40,
    }
    assert legend[NONE].count_text == "40 gemeenten"
    assert legend[ONE].count_text == "1 gemeente"


def test_participation_costs_a_fixed_number_of_queries(participation_data, django_assert_num_queries):
    with django_assert_num_queries(3):
        participation_map()


# --- Rendering -----------------------------------------------------------------------


def test_names_are_escaped():
    geometry = MapGeometry(
        width=10,
        height=10,
        features=(MapFeature(cbs_code="GM9999", name="Feature <naam>", path="M0 0L5 5L0 5Z"),),
    )
    participation = {
        "GM9999": Participation(cbs_code="GM9999", name='Dorp & <Stad> "x"', labs=("Lab <script>",))
    }

    svg = str(render_svg(geometry, participation))

    assert "<Stad>" not in svg and "<script" not in svg
    assert "Dorp &amp; &lt;Stad&gt;" in svg
    path = ET.fromstring(svg).find(".//path")
    assert path.find("title").text == 'Dorp & <Stad> "x": doet mee in 1 Leer Lab (Lab <script>)'
    assert path.get("class") == "participation participation-1"


def test_a_feature_without_a_municipality_row_uses_its_own_name():
    geometry = MapGeometry(width=10, height=10, features=(MapFeature("GM9998", "Oud & Nieuw", "M0 0L5 5Z"),))

    svg = ET.fromstring(str(render_svg(geometry, {})))

    path = svg.find(".//path")
    assert path.find("title").text == "Oud & Nieuw: doet (nog) niet mee"
    assert path.get("fill") == NONE.fill


def test_svg_has_an_accessible_name_and_no_script_or_outside_urls(db):
    svg_text = str(participation_map().svg)
    svg = ET.fromstring(svg_text)

    assert svg.get("role") == "img"
    assert svg.get("viewBox") == noord_holland().view_box
    labelled_by = svg.get("aria-labelledby").split()
    ids = {element.get("id"): element for element in svg.iter() if element.get("id")}
    assert [ids[i].tag for i in labelled_by] == ["title", "desc"]
    assert "doet (nog) niet mee: 44 gemeenten" in ids[labelled_by[1]].text
    assert "<script" not in svg_text and "http" not in svg_text and "style=" not in svg_text


# --- On the dashboard -------------------------------------------------------------------


@pytest.fixture
def advisor_client(client, db):
    advisor = UserFactory(staff=True, username="adviseur-kaart")
    advisor.groups.add(Group.objects.get(name="Servicepunt-adviseurs"))
    client.force_login(advisor)
    return client


def test_dashboard_shows_the_map_legend_table_and_credit(advisor_client, participation_data):
    response = advisor_client.get(reverse("admin:dashboard"))

    assert response.status_code == 200
    html = response.content.decode()
    assert len(_paths(_svg(html))) == 44
    assert "<script>" not in html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert "Kaartgegevens: CBS / Kadaster (PDOK)" in html
    assert "doet mee in 3 of meer Leer Labs: <strong>1 gemeente</strong>" in html
    assert "doet (nog) niet mee: <strong>40 gemeenten</strong>" in html
    # The text alternative: participants and waiting municipalities only.
    table = re.search(r"<details class=\"ll-map-table\">.*?</details>", html, flags=re.DOTALL).group(0)
    assert set(re.findall(r'<tr data-cbs-code="(GM\d{4})">', table)) == {
        AMSTERDAM,
        HAARLEM,
        ALKMAAR,
        BEVERWIJK,
    }
