from django.urls import path

from . import views

app_name = "registrations"

urlpatterns = [
    path("leerlabs/<slug:slug>/aanmelden/", views.signup, name="signup"),
    path("leerlabs/<slug:slug>/aanmelden/verzonden/", views.signup_sent, name="signup_sent"),
    path("aanmelding/bevestig/<str:token>/", views.confirm, name="confirm"),
]
