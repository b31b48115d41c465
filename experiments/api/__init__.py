"""REST endpoints of experiments, SLA records and the audit trail (routed in ``opos.api``)."""
