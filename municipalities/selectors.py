from django.conf import settings

from .models import Municipality


def participating_municipalities():
    """Active municipalities of the portal's province, by name."""
    return Municipality.objects.participating(province=settings.LEERLAB_PROVINCE).order_by("name")


def municipality_by_code(*, cbs_code: str) -> Municipality | None:
    """Any municipality by CBS code (also outside the province or merged,
    so a form can say why it cannot take part), with its email domains."""
    return Municipality.objects.prefetch_related("email_domains").filter(cbs_code=cbs_code).first()
