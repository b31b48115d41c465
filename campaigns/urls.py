"""Browser pages of the execution side (namespace ``campaigns``)."""

from django.urls import path

from . import views
from .views import catalogue, execution, partitions, steering

app_name = "campaigns"

urlpatterns = [
    path("", views.campaign_list, name="list"),
    path("new/", views.campaign_new, name="new"),
    path("<int:pk>/", views.campaign_detail, name="detail"),
    path("<int:pk>/actions/", views.campaign_do, name="action"),
    path("<int:pk>/schedule/", views.campaign_schedule, name="schedule"),
    path("<int:pk>/edit/", views.campaign_edit, name="edit"),
    path("<int:pk>/remove/", views.campaign_remove, name="remove"),
    path("templates/", views.template_list, name="template_list"),
    path("templates/import/", views.template_import, name="template_import"),
    path("templates/<int:pk>/", views.template_detail, name="template_detail"),
    path("templates/<int:pk>/clone/", views.template_clone, name="template_clone"),
    path("templates/<int:pk>/export/", views.template_export, name="template_export"),
    # Execution: catalogue, jobs of a stage, stuck work, recover, cancel-and-retry.
    path("datasets/", catalogue.dataset_list, name="dataset_list"),
    path("datasets/<int:pk>/", catalogue.dataset_detail, name="dataset_detail"),
    path(
        "datasets/<int:pk>/files/invalidate/",
        catalogue.dataset_invalidate_files,
        name="dataset_invalidate_files",
    ),
    path("datasets/<int:pk>/<slug:action>/", catalogue.dataset_move, name="dataset_move"),
    path("stages/<int:pk>/jobs/", execution.stage_jobs, name="stage_jobs"),
    path("stages/<int:pk>/recover/", steering.stage_recover, name="stage_recover"),
    path("jobs/<int:pk>/cancel-retry/", execution.job_cancel_retry, name="job_cancel_retry"),
    path("stuck/", execution.stuck_list, name="stuck_list"),
    # Batch partitions: capacity and the experiments' quotas.
    path("partitions/", partitions.partition_list, name="partitions"),
    path("partitions/<int:pk>/quota/", partitions.partition_quota, name="partition_quota"),
    path("partitions/<int:pk>/remove/", partitions.partition_remove, name="partition_remove"),
    # Steering: recovery with overrides, force-complete, test launches, clones, extensions.
    path("<int:pk>/recover/", steering.campaign_recover, name="recover"),
    path("<int:pk>/force-complete/", steering.campaign_force_complete, name="force_complete"),
    path("<int:pk>/launch-full/", steering.campaign_launch_full, name="launch_full"),
    path("<int:pk>/settings/", steering.campaign_settings, name="settings"),
    path("requests/<str:number>/clone/", steering.request_clone, name="request_clone"),
    path("requests/<str:number>/extend/", steering.request_extend, name="request_extend"),
    path(
        "requests/<str:number>/force-complete/",
        steering.request_force_complete,
        name="request_force_complete",
    ),
    path("extensions/<int:pk>/decide/", steering.extension_decide, name="extension_decide"),
]
