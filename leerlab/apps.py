from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LeerlabConfig(AppConfig):
    name = "leerlab"
    verbose_name = _("Leer Labs")
