from django.urls import path

from . import views

app_name = "leerlab"

urlpatterns = [
    path("<slug:slug>/", views.lab_detail, name="lab_detail"),
]
