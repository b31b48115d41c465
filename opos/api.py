"""The REST API root: every app registers its viewsets on one router."""

from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from campaigns.api import register as register_campaigns
from monitoring.accounting_api import AllocationViewSet, LedgerView
from monitoring.api import CampaignProgressView, RequestProgressView
from monitoring.whatif_api import CampaignWhatIfView, RequestWhatIfView
from requests_app.api import ObtainTokenView
from requests_app.api import register as register_requests
from requests_app.api.tokens import TokenListView, TokenRevokeView
from requests_app.services.numbering import NUMBER_PATTERN

router = DefaultRouter()
router.root_view_name = "api-root"
# No ``.json`` twins of every route: the API speaks JSON only, and the twins of the
# viewsets' extra actions answered 500 (their methods take no ``format`` argument).
router.include_format_suffixes = False
register_requests(router)
register_campaigns(router)
router.register("accounting/allocations", AllocationViewSet, basename="allocation")

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("auth/tokens/", TokenListView.as_view(), name="api-token-list"),
    path("auth/tokens/<str:key>/", TokenRevokeView.as_view(), name="api-token-revoke"),
    path("servicedesk/", include("servicedesk.api")),
    path("accounting/", LedgerView.as_view(), name="accounting-ledger"),
    # Progress (monitoring): before the router, whose campaign and request routes share prefixes.
    path("campaigns/<int:id>/progress/", CampaignProgressView.as_view(), name="campaign-progress"),
    path("campaigns/<int:id>/what-if/", CampaignWhatIfView.as_view(), name="campaign-what-if"),
    re_path(
        rf"^requests/(?P<id>[0-9]+|{NUMBER_PATTERN})/progress/$",
        RequestProgressView.as_view(),
        name="request-progress",
    ),
    re_path(
        rf"^requests/(?P<id>[0-9]+|{NUMBER_PATTERN})/what-if/$",
        RequestWhatIfView.as_view(),
        name="request-what-if",
    ),
    *router.urls,
]
