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

# English versions of the texts above, for the pages under /en/ and the
# email to officers who signed up in English (issue #4). Keyed by slug: the
# slugs stay Dutch in both languages. Advisors edit them in the admin.
LABS_EN = {
    "startplan-wijkaanpak-aardgasvrij": {
        "title_en": "Start plan for a natural-gas-free neighbourhood approach",
        "summary_en": (
            "Get your neighbourhood approach off the starting blocks: explore the biggest challenges "
            "together and come up with solutions, so that you go into the neighbourhood well prepared."
        ),
        "description_en": (
            "Before municipalities go into a neighbourhood, the basics must be in place. Many "
            "municipalities take a phased approach: homes are first made ready for connection to a "
            "sustainable heat source through good insulation, possibly combined with a hybrid heat pump "
            "as an intermediate step towards natural-gas-free. In this Leer Lab you and other "
            "municipalities get your neighbourhood approach off the starting blocks."
        ),
    },
    "doelgroepgerichte-aanpak-aardgasvrij-ready": {
        "title_en": "Target-group approach to natural-gas-free-ready homes",
        "summary_en": (
            "Together, devise a target-group approach for your municipality that encourages residents to "
            "take steps with insulation and hybrid or natural-gas-free heating solutions."
        ),
        "description_en": (
            "Many municipalities choose a step-by-step approach: good insulation first, then a hybrid heat "
            "pump as an intermediate step, and finally natural-gas-free. In this Leer Lab you work out "
            "together how to encourage different groups of residents to take those steps."
        ),
    },
    "organisatie-inrichting-warmtetransitie": {
        "title_en": "Organising for the heat transition",
        "summary_en": (
            "How do I set up my municipal organisation so that it is ready for the heat transition? How do "
            "I position the organisation within the municipality, and in the region? How do we organise "
            "the heat transition in a smart way?"
        ),
        "description_en": (
            "Getting the basics in place means putting the organisation in order and making sure that "
            "ambitions and plans are supported by the municipal organisation. In this Leer Lab you work on "
            "setting up your organisation for the heat transition, within the municipality and in the region."
        ),
    },
    "verhaal-warmtetransitie": {
        "title_en": "Telling the story of the heat transition",
        "summary_en": (
            "How do I (after the heat transition vision, TVW) have effective conversations with my "
            "residents about the heat transition? How do I explain its links with other (sustainability) "
            "topics, and how do I tailor my story to different types of residents?"
        ),
        "description_en": (
            "In Noord-Holland, 15 heat transition visions (Transitievisies Warmte) have been adopted, and "
            "the other municipalities are working on theirs. A clear message to residents is part of "
            "getting the basics in place. In this Leer Lab you work on your municipality's story about the "
            "heat transition."
        ),
    },
}


def seed_labs(*, lab_model, cohort_model) -> None:
    """Create the four labs, each with one open cohort; leaves existing ones alone."""
    for position, data in enumerate(LABS, start=1):
        lab, _ = lab_model.objects.get_or_create(
            slug=slugify(data["title"]),
            defaults={**data, "position": position, "min_municipalities": 3, "max_municipalities": 5},
        )
        if not cohort_model.objects.filter(lab=lab).exists():
            cohort_model.objects.create(lab=lab, number=1, status="open")


def seed_labs_english(*, lab_model) -> None:
    """Fill in the English texts of the four labs where they are still empty
    (an advisor's own English text is never overwritten)."""
    for slug, texts in LABS_EN.items():
        lab = lab_model.objects.filter(slug=slug).first()
        if lab is None:
            continue
        changed = [field for field, text in texts.items() if not getattr(lab, field)]
        for field in changed:
            setattr(lab, field, texts[field])
        if changed:
            lab.save(update_fields=changed)
