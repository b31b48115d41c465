"""Browser pages of the intake app (namespace ``requests``)."""

from django.urls import path

from . import views

app_name = "requests"

urlpatterns = [
    path("", views.home, name="home"),
    path("requests/", views.request_list, name="list"),
    path("filters/", views.saved_filter_save, name="filter_save"),
    path("filters/<int:pk>/delete/", views.saved_filter_delete, name="filter_delete"),
    path("requests/new/", views.request_new, name="new"),
    path("requests/<str:number>/", views.request_detail, name="detail"),
    path("requests/<str:number>/edit/", views.request_edit, name="edit"),
    path("requests/<str:number>/actions/", views.request_action, name="action"),
    path(
        "requests/<str:number>/actions/<str:action>/confirm/",
        views.request_confirm,
        name="confirm",
    ),
    path("requests/<str:number>/comments/", views.request_comment, name="comment"),
    path("requests/<str:number>/watch/", views.request_watch, name="watch"),
    path("requests/<str:number>/assign/", views.request_assign, name="assign"),
    path("triage/", views.triage, name="triage"),
    path("audit/", views.audit, name="audit"),
    path("account/tokens/", views.token_list, name="tokens"),
    path("account/preferences/", views.preferences, name="preferences"),
]
