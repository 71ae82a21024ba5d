from django.urls import path

from . import views

app_name = "privacy"

urlpatterns = [
    path("export.json", views.export_json, name="export_json"),
    path("export.csv", views.export_csv, name="export_csv"),
    path("vergeet-mij/", views.forget, name="forget"),
    path("vergeet-mij/klaar/", views.forgotten, name="forgotten"),
]
