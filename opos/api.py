"""The REST API root: every app registers its viewsets on one router."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from campaigns.api import register as register_campaigns
from requests_app.api import ObtainTokenView
from requests_app.api import register as register_requests

router = DefaultRouter()
router.root_view_name = "api-root"
register_requests(router)
register_campaigns(router)

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("servicedesk/", include("servicedesk.api")),
    *router.urls,
]
