"""What every app stands on: experiments and their people, SLA records, workflow
templates, visibility and the audit trail."""
