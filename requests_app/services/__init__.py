"""Use cases of the intake app.

Views, API, tasks and commands call these; nothing else writes state.
"""

from .eligibility import Check, eligibility, unmet
from .numbering import next_request_number
from .requests import (
    PermissionDenied,
    add_comment,
    assign,
    can_comment,
    can_file,
    create_request,
    editable_fields,
    update_request,
    validate_sample,
    validate_samples,
)
from .roles import RoleError, grant_role
from .transitions import TransitionError, allowed_actions, system_transition, transition

__all__ = [
    "Check",
    "PermissionDenied",
    "RoleError",
    "TransitionError",
    "add_comment",
    "allowed_actions",
    "assign",
    "can_comment",
    "can_file",
    "create_request",
    "editable_fields",
    "eligibility",
    "grant_role",
    "next_request_number",
    "system_transition",
    "transition",
    "unmet",
    "update_request",
    "validate_sample",
    "validate_samples",
]
