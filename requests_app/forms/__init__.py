"""Forms of the intake pages: a request with its sample lines, decisions and records.

Forms parse what the browser sends and show errors next to fields. The rules
live in the services (``check_request_fields``, ``validate_sample``,
``record_training``, ``register_code``): forms call them and attach the
errors they raise to the fields they name.
"""

from .base import attach_errors, form_values
from .decisions import (
    ActionForm,
    AssignForm,
    BulkForm,
    CommentForm,
    OperatorChangeForm,
)
from .filing import (
    FilingOptions,
    RequestForm,
    SampleForm,
    parse_parameters,
    sample_formset,
    sample_initial,
)
from .records import CodeForm, TrainingForm

__all__ = [
    "ActionForm",
    "AssignForm",
    "BulkForm",
    "CodeForm",
    "CommentForm",
    "FilingOptions",
    "OperatorChangeForm",
    "RequestForm",
    "SampleForm",
    "TrainingForm",
    "attach_errors",
    "form_values",
    "parse_parameters",
    "sample_formset",
    "sample_initial",
]
