from django.urls import path

from . import views

app_name = "selfservice"

urlpatterns = [
    path("", views.request_link, name="request"),
    path("verzonden/", views.sent, name="sent"),
    path("toegang/<str:token>/", views.access, name="access"),
    path("overzicht/", views.overview, name="overview"),
    path("uitloggen/", views.logout, name="logout"),
    path("<int:pk>/case/", views.edit_case, name="edit_case"),
    path("<int:pk>/overdragen/", views.handover, name="handover"),
    path("<int:pk>/afmelden/", views.withdraw, name="withdraw"),
    path("<int:pk>/ander-lab/", views.another_lab, name="another_lab"),
    path("<int:pk>/bijeenkomsten.ics", views.plan_ics, name="plan_ics"),
    path("<int:pk>/bijeenkomsten/<int:session_pk>.ics", views.plan_ics, name="session_ics"),
    path("overdracht/<str:token>/", views.handover_confirm, name="handover_confirm"),
]
