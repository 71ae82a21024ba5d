from django.conf import settings

from .models import Municipality


def participating_municipalities():
    """Active municipalities of the portal's province, by name."""
    return Municipality.objects.participating(province=settings.LEERLAB_PROVINCE).order_by("name")
