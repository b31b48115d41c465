"""Browser pages of the intake app, by topic."""

from .audit import audit
from .confirm import request_confirm
from .editing import request_edit, request_new
from .home import home
from .lists import request_list, saved_filter_delete, saved_filter_save
from .preferences import preferences
from .requests import (
    request_action,
    request_assign,
    request_comment,
    request_detail,
    request_watch,
)
from .tokens import token_list
from .triage import triage

__all__ = [
    "audit",
    "home",
    "preferences",
    "request_action",
    "request_assign",
    "request_comment",
    "request_confirm",
    "request_detail",
    "request_edit",
    "request_list",
    "request_new",
    "request_watch",
    "saved_filter_delete",
    "saved_filter_save",
    "token_list",
    "triage",
]
