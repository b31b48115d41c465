"""Use cases of the execution side.

Views, API, tasks and commands call these; nothing else writes campaign,
stage or job state.
"""

from .campaigns import (
    campaign_action,
    complete_campaign_if_done,
    create_campaign,
    remove_request,
    update_campaign,
)
from .errors import CampaignError, require_operator
from .expansion import ScheduleResult, schedule_requests
from .feasibility import CampaignForecast, ScheduleForecast, forecast_campaigns, forecast_request
from .planning import (
    CyclePlan,
    load_inputs,
    plan_cycle,
    recount_stages,
    refresh_walltime_estimates,
    release_dependents,
)
from .templates import (
    clean_template,
    clone_template,
    create_template,
    export_template,
    find_cycle,
    import_template,
    parse_template,
)

__all__ = [
    "CampaignError",
    "CampaignForecast",
    "CyclePlan",
    "ScheduleForecast",
    "ScheduleResult",
    "campaign_action",
    "clean_template",
    "clone_template",
    "complete_campaign_if_done",
    "create_campaign",
    "create_template",
    "export_template",
    "find_cycle",
    "forecast_campaigns",
    "forecast_request",
    "import_template",
    "load_inputs",
    "parse_template",
    "plan_cycle",
    "recount_stages",
    "refresh_walltime_estimates",
    "release_dependents",
    "remove_request",
    "require_operator",
    "schedule_requests",
    "update_campaign",
]
