"""Browser pages of the execution side, by topic."""

from .campaigns import (
    campaign_detail,
    campaign_do,
    campaign_edit,
    campaign_list,
    campaign_new,
    campaign_remove,
    campaign_schedule,
)
from .templates import (
    template_clone,
    template_detail,
    template_export,
    template_import,
    template_list,
)

__all__ = [
    "campaign_detail",
    "campaign_do",
    "campaign_edit",
    "campaign_list",
    "campaign_new",
    "campaign_remove",
    "campaign_schedule",
    "template_clone",
    "template_detail",
    "template_export",
    "template_import",
    "template_list",
]
