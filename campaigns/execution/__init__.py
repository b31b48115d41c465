"""Batch execution: submit what the scheduler allows, poll, finalize, retry and recover.

Modules, one responsibility each:

``submission``  the exactly-once submission protocol (claim, record, call, record)
``polling``     one bulk status query per backend per cycle; only changed jobs written
``finalize``    manifests -> catalogue, failures -> retries, requests and campaigns moved on
``transfer``    finalize's step that puts outputs in storage and verifies them (``storage``)
``retention``   work folders emptied (logs kept) once their outputs are safe in storage
``failures``    failure classes and retry decisions, by rules per template
``recovery``    unresolved submissions, and the operator's recovery launch
``heartbeat``   workers' and beat's heartbeats: who is alive (/healthz, abandoned claims)
``stuck``       jobs and stages that stopped moving, and cancel-and-retry
``wrapper``     the job wrapper every job runs (standard library only, no Django)

This package's ``__init__`` imports nothing, so ``python -m campaigns.execution.wrapper``
starts fast inside a batch job without Django.
"""
