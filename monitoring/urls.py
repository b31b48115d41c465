"""Browser pages of the read side (namespace ``monitoring``)."""

from django.urls import path

from . import accounting_views, commitment_views, sla_views, views, whatif_views

app_name = "monitoring"

urlpatterns = [
    path("", views.index, name="index"),
    path("operations/", views.operations_page, name="operations"),
    path("experiments/<slug:slug>/", views.experiment_page, name="experiment"),
    path("experiments/<slug:slug>/report/", views.report_page, name="report"),
    path("experiments/<slug:slug>/progress.csv", views.progress_csv, name="csv"),
    path("campaigns/<int:pk>/", views.campaign_page, name="campaign"),
    path("requests/<str:number>/", views.request_page, name="request"),
    path(
        "requests/<str:number>/commitments/",
        commitment_views.request_commitments,
        name="request_commitments",
    ),
    path(
        "campaigns/<int:pk>/commitments/",
        commitment_views.campaign_commitments,
        name="campaign_commitments",
    ),
    path("jobs/<int:pk>/log/", views.job_log, name="job_log"),
    path("digest/", views.digest_settings, name="digest"),
    path("accounting/", accounting_views.accounting_page, name="accounting"),
    path("accounting.csv", accounting_views.accounting_csv, name="accounting_csv"),
    path("accounting/allocations/new/", accounting_views.allocation_form, name="allocation_new"),
    path(
        "accounting/allocations/<int:pk>/", accounting_views.allocation_form, name="allocation_edit"
    ),
    path("sla/", sla_views.sla_page, name="sla"),
    path("campaigns/<int:pk>/what-if/", whatif_views.campaign_what_if, name="campaign_what_if"),
    path("requests/<str:number>/what-if/", whatif_views.request_what_if, name="request_what_if"),
]
