"""URL map: browser pages per app, the REST API under /api/v1/, health and docs."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from monitoring.metrics import metrics_view
from requests_app.auth import ThrottledLoginView
from requests_app.views.lockouts import lockout_list

from . import api, health

handler404 = "opos.schema.api_not_found"

urlpatterns = [
    path("", include("requests_app.urls", namespace="requests")),
    path("", include("experiments.urls", namespace="experiments")),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/lockouts/", lockout_list, name="lockouts"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("servicedesk/", include("servicedesk.urls", namespace="servicedesk")),
    path("campaigns/", include("campaigns.urls", namespace="campaigns")),
    path("monitoring/", include("monitoring.urls", namespace="monitoring")),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("api/v1/", include(api.urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]
