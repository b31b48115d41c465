"""Browser pages of the intake app, by topic."""

from .audit import audit
from .confirm import request_confirm
from .editing import request_edit, request_new
from .home import home
from .lists import request_list, saved_filter_delete, saved_filter_save
from .preferences import preferences
from .records import code_approve, code_list, code_new, training_list, training_new
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
    "code_approve",
    "code_list",
    "code_new",
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
    "training_list",
    "training_new",
    "triage",
]
