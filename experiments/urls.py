"""Operators' SLA records in the browser (namespace ``experiments``): training sessions and
registered production code, at the same addresses as the request pages' neighbours."""

from django.urls import path

from . import views

app_name = "experiments"

urlpatterns = [
    path("training/", views.training_list, name="training_list"),
    path("training/new/", views.training_new, name="training_new"),
    path("code/", views.code_list, name="code_list"),
    path("code/new/", views.code_new, name="code_new"),
    path("code/<int:pk>/approve/", views.code_approve, name="code_approve"),
]
