"""The four Leer Labs with the texts of the announcement
(../shared/seed/leer-labs-aankondiging.txt). Used by a data migration."""

from django.utils.text import slugify

LABS = [
    {
        "title": "Startplan wijkaanpak aardgasvrij",
        "summary": (
            "Zet je wijkaanpak in de startblokken, onderzoek samen de grootste uitdagingen en bedenk "
            "oplossingen. Zo ga je goed voorbereid de wijk in."
        ),
        "description": (
            "Voordat gemeenten de wijk ingaan, moet eerst de basis op orde zijn. Veel gemeenten werken met "
            "een gefaseerde aanpak waarbij eerst de woningen gereed worden gemaakt voor aansluiting op een "
            "duurzame warmtebron door goede woningisolatie, eventueel in combinatie met een hybride "
            "warmtepomp als tussenstap naar aardgasvrij. In dit Leer Lab zet je samen met andere gemeenten "
            "je wijkaanpak in de startblokken."
        ),
    },
    {
        "title": "Doelgroepgerichte aanpak aardgasvrij-ready",
        "summary": (
            "Samen een doelgroepgerichte aanpak uitdenken voor jouw gemeente om bewoners te verleiden om "
            "stappen te zetten met isolatie, hybride- of aardgasvrije warmteoplossingen."
        ),
        "description": (
            "Veel gemeenten kiezen voor een stapsgewijze aanpak: eerst goede woningisolatie, dan een "
            "hybride warmtepomp als tussenstap, en uiteindelijk aardgasvrij. In dit Leer Lab denk je samen "
            "na over hoe je verschillende groepen bewoners verleidt om die stappen te zetten."
        ),
    },
    {
        "title": "Organisatie inrichting warmtetransitie",
        "summary": (
            "Hoe richt ik mijn gemeentelijke organisatie in zodat ik klaar ben voor de warmtetransitie? "
            "Hoe positioneer ik de organisatie binnen de gemeente, maar ook regionaal? Hoe organiseren we "
            "de warmtetransitie op een slimme manier?"
        ),
        "description": (
            "De basis op orde betekent dat de organisatie op orde wordt gebracht en dat ambities en plannen "
            "worden gedragen door de gemeentelijke organisatie. In dit Leer Lab werk je aan de inrichting "
            "van jouw organisatie voor de warmtetransitie, binnen de gemeente en in de regio."
        ),
    },
    {
        "title": "Verhaal warmtetransitie",
        "summary": (
            "Hoe ga ik (na de TVW) effectief het gesprek aan met mijn inwoners over de warmtetransitie? "
            "Hoe vertel ik over de samenhang met andere (duurzaamheids)onderwerpen en hoe stem ik mijn "
            "verhaal af op verschillende typen bewoners?"
        ),
        "description": (
            "In Noord-Holland zijn 15 Transitievisies Warmte vastgesteld en de overige gemeenten zijn met "
            "dit traject aan de slag. Een heldere communicatieboodschap richting bewoners hoort bij de basis "
            "op orde. In dit Leer Lab werk je aan het verhaal van jouw gemeente over de warmtetransitie."
        ),
    },
]


def seed_labs(*, lab_model, cohort_model) -> None:
    """Create the four labs, each with one open cohort; leaves existing ones alone."""
    for position, data in enumerate(LABS, start=1):
        lab, _ = lab_model.objects.get_or_create(
            slug=slugify(data["title"]),
            defaults={**data, "position": position, "min_municipalities": 3, "max_municipalities": 5},
        )
        if not cohort_model.objects.filter(lab=lab).exists():
            cohort_model.objects.create(lab=lab, number=1, status="open")
