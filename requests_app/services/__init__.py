"""Use cases of the intake app.

Views, API, tasks and commands call these; nothing else writes state.
"""

from .numbering import next_request_number
from .roles import RoleError, grant_role

__all__ = ["RoleError", "grant_role", "next_request_number"]
