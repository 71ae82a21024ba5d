"""The advisors' map of Noord-Holland (issue #6): which municipalities take
part in how many Leer Labs, drawn on the server as an inline SVG.

The boundaries come from municipalities/data/gemeenten-noord-holland-2025.geojson
(CBS / Kadaster via PDOK, CC BY 4.0, WGS84 longitude/latitude). They are
projected once per process (equirectangular, longitudes scaled by the
cosine of the middle latitude so the province keeps its shape) and cached.
No JavaScript, no map tiles, nothing fetched from elsewhere: the page
stays within the admin's Content-Security-Policy.

Every name goes through format_html, so a municipality called "A & <B>"
is escaped like any other text.
"""

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext

GEOJSON_PATH = (
    Path(__file__).resolve().parent.parent
    / "municipalities"
    / "data"
    / "gemeenten-noord-holland-2025.geojson"
)
# SVG units per degree of latitude. The boundaries are simplified to about
# 0.001 degree, so one decimal at this scale keeps all their detail and the
# page small (the whole map is about 10 kB).
SCALE = 1000
PADDING = 4


# --- Categories -------------------------------------------------------------------


@dataclass(frozen=True)
class Category:
    key: str
    css_class: str
    # Fill colours: the three "takes part" blues and the waitlist orange all
    # have at least 3:1 contrast with the "not (yet)" grey and with white
    # (WCAG 1.4.11); the counts in the legend and the table say the same in
    # text, so nothing depends on telling colours apart.
    fill: str


NONE = Category("none", "participation-none", "#f2f2f2")
WAITLISTED = Category("waitlisted", "participation-waitlisted", "#c2410c")
ONE = Category("1", "participation-1", "#3b82c4")
TWO = Category("2", "participation-2", "#1d4e89")
THREE_PLUS = Category("3plus", "participation-3plus", "#0b1f44")
# Strongest participation first, as the legend lists them.
CATEGORIES = (THREE_PLUS, TWO, ONE, WAITLISTED, NONE)
BOUNDARY_COLOUR = "#595959"


def _legend_label(category: Category) -> str:
    return {
        THREE_PLUS.key: gettext("doet mee in 3 of meer Leer Labs"),
        TWO.key: gettext("doet mee in 2 Leer Labs"),
        ONE.key: gettext("doet mee in 1 Leer Lab"),
        WAITLISTED.key: gettext("staat alleen op een wachtlijst"),
        NONE.key: gettext("doet (nog) niet mee"),
    }[category.key]


# --- Participation ------------------------------------------------------------------


@dataclass(frozen=True)
class Participation:
    """One municipality: the labs it has a seat in (a confirmed registration
    in a current cohort) and the labs whose waitlist it is on."""

    cbs_code: str
    name: str
    labs: tuple[str, ...] = ()
    waitlisted_labs: tuple[str, ...] = ()

    @property
    def category(self) -> Category:
        count = len(self.labs)
        if count >= 3:
            return THREE_PLUS
        if count == 2:
            return TWO
        if count == 1:
            return ONE
        if self.waitlisted_labs:
            return WAITLISTED
        return NONE

    @property
    def takes_part(self) -> bool:
        return bool(self.labs or self.waitlisted_labs)

    @property
    def description(self) -> str:
        """What the map's tooltip and the screen reader say."""
        count = len(self.labs)
        if count:
            text = ngettext(
                "%(name)s: doet mee in %(count)d Leer Lab (%(labs)s)",
                "%(name)s: doet mee in %(count)d Leer Labs (%(labs)s)",
                count,
            ) % {"name": self.name, "count": count, "labs": ", ".join(self.labs)}
            if self.waitlisted_labs:
                text += "; " + gettext("op de wachtlijst van %(labs)s") % {
                    "labs": ", ".join(self.waitlisted_labs)
                }
            return text
        if self.waitlisted_labs:
            return gettext("%(name)s: staat op een wachtlijst (%(labs)s)") % {
                "name": self.name,
                "labs": ", ".join(self.waitlisted_labs),
            }
        return gettext("%(name)s: doet (nog) niet mee") % {"name": self.name}


def municipality_participation(
    *, province: str | None = None, labs: Iterable | None = None
) -> dict[str, Participation]:
    """Every active municipality of the province by CBS code, with the labs
    it takes part in. Three queries (two when the caller has the labs
    already), whatever the number of registrations."""
    from municipalities.models import Municipality
    from registrations.models import Registration, RegistrationStatus

    from .models import CURRENT_STATUSES, LeerLab

    province = province or settings.LEERLAB_PROVINCE
    municipalities = Municipality.objects.participating(province=province).values_list("cbs_code", "name")
    if labs is None:
        labs = LeerLab.objects.order_by("position", "title")
    labs = {lab.pk: lab for lab in sorted(labs, key=lambda lab: (lab.position, lab.title))}
    rows = (
        Registration.objects.filter(
            status__in=(RegistrationStatus.CONFIRMED, RegistrationStatus.WAITLISTED),
            cohort__status__in=CURRENT_STATUSES,
            municipality__province=province,
            municipality__is_active=True,
        )
        .values_list("municipality__cbs_code", "status", "cohort__lab_id")
        .distinct()
    )
    seats: dict[str, set[int]] = defaultdict(set)
    waiting: dict[str, set[int]] = defaultdict(set)
    for cbs_code, status, lab_id in rows:
        (seats if status == RegistrationStatus.CONFIRMED else waiting)[cbs_code].add(lab_id)

    lab_order = list(labs)

    def titles(lab_ids: Iterable[int]) -> tuple[str, ...]:
        return tuple(labs[pk].local_title for pk in sorted(lab_ids, key=lab_order.index))

    return {
        cbs_code: Participation(
            cbs_code=cbs_code,
            name=name,
            labs=titles(seats[cbs_code]),
            waitlisted_labs=titles(waiting[cbs_code] - seats[cbs_code]),
        )
        for cbs_code, name in municipalities
    }


# --- Geometry -----------------------------------------------------------------------


@dataclass(frozen=True)
class MapFeature:
    cbs_code: str
    name: str
    path: str  # SVG path data


@dataclass(frozen=True)
class MapGeometry:
    width: float
    height: float
    features: tuple[MapFeature, ...] = field(default_factory=tuple)

    @property
    def view_box(self) -> str:
        return f"0 0 {_number(self.width)} {_number(self.height)}"


def _number(value: float) -> str:
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def _polygons(geometry: dict) -> list:
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    if geometry["type"] == "MultiPolygon":
        return geometry["coordinates"]
    raise ValueError(f"unsupported geometry type {geometry['type']!r}")


def project(collection: dict) -> MapGeometry:
    """GeoJSON (WGS84 lon/lat Polygons and MultiPolygons) to SVG paths,
    north up, in a box starting at 0,0."""
    features = collection["features"]
    points = [
        point
        for feature in features
        for polygon in _polygons(feature["geometry"])
        for ring in polygon
        for point in ring
    ]
    min_lon = min(p[0] for p in points)
    max_lon = max(p[0] for p in points)
    min_lat = min(p[1] for p in points)
    max_lat = max(p[1] for p in points)
    x_scale = SCALE * math.cos(math.radians((min_lat + max_lat) / 2))

    def xy(point) -> str:
        x = (point[0] - min_lon) * x_scale + PADDING
        y = (max_lat - point[1]) * SCALE + PADDING
        return f"{_number(x)} {_number(y)}"

    projected = []
    for feature in features:
        rings = []
        for polygon in _polygons(feature["geometry"]):
            for ring in polygon:
                # GeoJSON repeats the first point at the end; "Z" closes.
                if len(ring) > 1 and ring[0] == ring[-1]:
                    ring = ring[:-1]
                rings.append("M" + "L".join(xy(point) for point in ring) + "Z")
        properties = feature["properties"]
        projected.append(
            MapFeature(cbs_code=properties["cbs_code"], name=properties["name"], path="".join(rings))
        )
    return MapGeometry(
        width=(max_lon - min_lon) * x_scale + 2 * PADDING,
        height=(max_lat - min_lat) * SCALE + 2 * PADDING,
        features=tuple(projected),
    )


@lru_cache(maxsize=1)
def noord_holland() -> MapGeometry:
    """The province's municipalities, projected once per process."""
    with GEOJSON_PATH.open(encoding="utf-8") as source:
        return project(json.load(source))


# --- Rendering ----------------------------------------------------------------------


def render_svg(
    geometry: MapGeometry,
    participation: Mapping[str, Participation],
    *,
    id_prefix: str = "participation-map",
) -> SafeString:
    """The inline <svg>: one <path> per municipality with its CBS code, a
    tooltip title and the colour and class of its category. The summary
    of the counts is the SVG's description for screen readers."""
    rows = []
    for feature in geometry.features:
        municipality = participation.get(feature.cbs_code) or Participation(
            cbs_code=feature.cbs_code, name=feature.name
        )
        category = municipality.category
        rows.append(
            (feature.path, feature.cbs_code, category.css_class, category.fill, municipality.description)
        )
    paths = format_html_join(
        "",
        '<path d="{}" data-cbs-code="{}" class="participation {}" fill="{}"><title>{}</title></path>',
        rows,
    )
    counts = legend(geometry, participation)
    summary = "; ".join(f"{item.label}: {item.count_text}" for item in counts)
    return format_html(
        '<svg viewBox="{view_box}" role="img" aria-labelledby="{prefix}-title {prefix}-desc" '
        'class="participation-map-svg">'
        '<title id="{prefix}-title">{title}</title><desc id="{prefix}-desc">{desc}</desc>'
        '<g fill-rule="evenodd" stroke="{stroke}" stroke-width="1" stroke-linejoin="round">{paths}</g></svg>',
        view_box=geometry.view_box,
        prefix=id_prefix,
        title=gettext("Kaart van Noord-Holland: deelname aan de Leer Labs per gemeente"),
        desc=summary,
        stroke=BOUNDARY_COLOUR,
        paths=paths,
    )


@dataclass(frozen=True)
class LegendItem:
    category: Category
    label: str
    count: int

    @property
    def count_text(self) -> str:
        return ngettext("%(count)d gemeente", "%(count)d gemeenten", self.count) % {"count": self.count}


def legend(geometry: MapGeometry, participation: Mapping[str, Participation]) -> list[LegendItem]:
    """Each category with the number of municipalities on the map in it."""
    counts: dict[str, int] = defaultdict(int)
    for feature in geometry.features:
        municipality = participation.get(feature.cbs_code)
        counts[(municipality.category if municipality else NONE).key] += 1
    return [LegendItem(category, _legend_label(category), counts[category.key]) for category in CATEGORIES]


@dataclass(frozen=True)
class ParticipationMap:
    svg: SafeString
    legend: list[LegendItem]
    # Municipalities that take part or wait, by name: the map as a table.
    participants: list[Participation]


def participation_map(
    participation: Mapping[str, Participation] | None = None,
    *,
    geometry: MapGeometry | None = None,
) -> ParticipationMap:
    geometry = geometry or noord_holland()
    if participation is None:
        participation = municipality_participation()
    participants: Sequence[Participation] = sorted(
        (p for p in participation.values() if p.takes_part), key=lambda p: p.name.casefold()
    )
    return ParticipationMap(
        svg=render_svg(geometry, participation),
        legend=legend(geometry, participation),
        participants=list(participants),
    )
