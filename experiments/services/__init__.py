"""Use cases of experiments: role grants, the SLA records (training, production code) and
the audit trail. Views, API and commands call these; nothing else writes their state."""

from .records import (
    approve_code,
    checksum,
    operator_accounts,
    record_training,
    register_code,
)
from .roles import RoleError, grant_role

__all__ = [
    "RoleError",
    "approve_code",
    "checksum",
    "grant_role",
    "operator_accounts",
    "record_training",
    "register_code",
]
