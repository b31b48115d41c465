"""Use cases of the intake app.

Views, API, tasks and commands call these; nothing else writes state.
"""

from .eligibility import Check, sla_checks, unmet
from .notifications import notify_operators
from .numbering import next_request_number
from .requests import (
    EditConflict,
    add_comment,
    assign,
    can_comment,
    can_file,
    create_request,
    editable_fields,
    ever_editable_fields,
    post_system_notes,
    samples_error,
    update_request,
    validate_sample,
    validate_samples,
)
from .transitions import TransitionError, allowed_actions, system_transition, transition

__all__ = [
    "Check",
    "EditConflict",
    "TransitionError",
    "add_comment",
    "allowed_actions",
    "assign",
    "can_comment",
    "can_file",
    "create_request",
    "editable_fields",
    "ever_editable_fields",
    "next_request_number",
    "notify_operators",
    "post_system_notes",
    "samples_error",
    "sla_checks",
    "system_transition",
    "transition",
    "unmet",
    "update_request",
    "validate_sample",
    "validate_samples",
]

# Form-side validation (browser pages).
from .validation import check_request_fields

__all__ += [
    "check_request_fields",
]
