"""Read-side use cases: progress, snapshots, forecasts, dashboards, reports, metrics.

Views, the API and tasks call these; the only writes are the read side's own
records (snapshots, milestones, digest preferences, issued reports).
"""

from .dashboards import campaign_detail, experiment_overview, operator_overview, request_detail
from .forecast import Forecast, Point, forecast, forecast_from_history, measure
from .progress import Progress
from .reports import issue_report, progress_csv, send_digests, set_digest, status_report
from .snapshots import record_snapshots, thin_snapshots

__all__ = [
    "Forecast",
    "Point",
    "Progress",
    "campaign_detail",
    "experiment_overview",
    "forecast",
    "forecast_from_history",
    "issue_report",
    "measure",
    "operator_overview",
    "progress_csv",
    "record_snapshots",
    "request_detail",
    "send_digests",
    "set_digest",
    "status_report",
    "thin_snapshots",
]
