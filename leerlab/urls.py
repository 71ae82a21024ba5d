from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("i18n/setlang/", views.set_language, name="set_language"),
]

urlpatterns += i18n_patterns(
    path("", views.home, name="home"),
    path("privacy/", views.privacy, name="privacy"),
    path("privacy/", include("privacy.urls")),
    path("toegankelijkheid/", views.accessibility, name="accessibility"),
    path("leerlabs/", include("leerlab.lab_urls")),
    path("", include("registrations.urls")),
    path("mijn-aanmeldingen/", include("selfservice.urls")),
    path("admin/", admin.site.urls),
    prefix_default_language=False,
)
