"""Reference data: loaded at migrate, idempotent, mergers applied (issue #2)."""

import shutil

from django.core.management import call_command

from leerlab.models import Cohort, LeerLab
from municipalities.models import EmailDomain, Municipality
from municipalities.selectors import participating_municipalities
from municipalities.services import DATA_DIR, municipalities_load


def test_migrate_loaded_every_municipality(db):
    assert Municipality.objects.count() == 346  # 342 of 2025 plus 4 merged away
    assert participating_municipalities().count() == 44
    assert Municipality.objects.filter(province="Noord-Holland", is_active=False).count() == 4


def test_participating_are_alphabetical_noord_holland(db):
    names = list(participating_municipalities().values_list("name", flat=True))
    assert names == sorted(names)
    assert "Haarlem" in names and "Utrecht" not in names and "Weesp" not in names


def test_mergers_point_to_new_municipality(db):
    weesp = Municipality.objects.get(cbs_code="GM0457")
    assert weesp.is_active is False
    assert weesp.merged_into.name == "Amsterdam"
    assert str(weesp.merged_on) == "2022-03-24"


def test_email_domains(db):
    haarlemmermeer = Municipality.objects.get(cbs_code="GM0394")
    domains = set(haarlemmermeer.email_domains.values_list("domain", flat=True))
    assert "haarlemmermeer.nl" in domains
    assert haarlemmermeer.email_domain_matches("iemand@haarlemmermeer.nl")
    assert not haarlemmermeer.email_domain_matches("iemand@haarlemmermeer.nl.evil.example")


def test_load_is_idempotent_and_keeps_advisors_domains(db):
    haarlem = Municipality.objects.get(cbs_code="GM0392")
    EmailDomain.objects.create(municipality=haarlem, domain="ijmond-shared.example")
    before = (Municipality.objects.count(), EmailDomain.objects.count())
    result = municipalities_load()
    assert (result.created, result.updated, result.domains_added, result.merged) == (0, 0, 0, 0)
    assert (Municipality.objects.count(), EmailDomain.objects.count()) == before


def test_yearly_update_through_command(db, tmp_path, capsys):
    """A new merger file marks a municipality inactive with what it merged into."""
    for path in DATA_DIR.glob("*.csv"):
        shutil.copy(path, tmp_path / path.name)
    with (tmp_path / "herindelingen-noord-holland-sinds-2021.csv").open("a") as handle:
        handle.write("GM0415,Landsmeer,GM0363,Amsterdam,2027-01-01\n")
    call_command("load_municipalities", "--data-dir", str(tmp_path))
    landsmeer = Municipality.objects.get(cbs_code="GM0415")
    assert landsmeer.is_active is False and landsmeer.merged_into.cbs_code == "GM0363"
    assert "1 mergers applied" in capsys.readouterr().out


def test_labs_seeded_with_one_open_cohort(db):
    slugs = list(LeerLab.objects.values_list("slug", flat=True))
    assert slugs == [
        "startplan-wijkaanpak-aardgasvrij",
        "doelgroepgerichte-aanpak-aardgasvrij-ready",
        "organisatie-inrichting-warmtetransitie",
        "verhaal-warmtetransitie",
    ]
    for lab in LeerLab.objects.all():
        assert (lab.min_municipalities, lab.max_municipalities) == (3, 5)
        assert list(Cohort.objects.filter(lab=lab).values_list("status", flat=True)) == ["open"]
