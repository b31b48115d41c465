"""Forms of the intake pages: a request with its sample lines, and decisions.

Forms parse what the browser sends and show errors next to fields. The rules
live in the services (``check_request_fields``, ``validate_sample``): forms call them and attach the
errors they raise to the fields they name.
"""

from common.forms import attach_errors, form_values

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

__all__ = [
    "ActionForm",
    "AssignForm",
    "BulkForm",
    "CommentForm",
    "FilingOptions",
    "OperatorChangeForm",
    "RequestForm",
    "SampleForm",
    "attach_errors",
    "form_values",
    "parse_parameters",
    "sample_formset",
    "sample_initial",
]
