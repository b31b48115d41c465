"""Operators' records that qualify an experiment under the SLA: training and production code.

The eligibility checklist (``eligibility.py``) reads these; operators write
them here, from the browser as well as the admin.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from common.errors import PermissionDenied

from ..choices import CodeKind, ExperimentRole, GlobalRoleName, TrainingTopic
from ..models import Experiment, Membership, ProductionCode, TrainingRecord
from ..models.experiments import sha256_validator
from ..models.visibility import is_operator
from .audit import record

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

# An uploaded script or configuration is read once to checksum it; bigger
# files are registered by location and checksum instead.
MAX_CODE_FILE_BYTES = 20 * 1024 * 1024
MAX_NOTES = 10000


def operator_accounts() -> QuerySet:
    """Active users holding the operator or admin role (attendees, assignees)."""
    return (
        get_user_model()
        .objects.filter(
            Q(global_roles__role__in=[GlobalRoleName.OPERATOR, GlobalRoleName.ADMIN])
            | Q(is_superuser=True),
            is_active=True,
        )
        .distinct()
        .order_by("username")
    )


def _require_operator(user: AbstractBaseUser) -> None:
    if not is_operator(user):
        raise PermissionDenied("Only operators record training and production code.")


@transaction.atomic
def record_training(
    user: AbstractBaseUser,
    experiment: Experiment,
    held_on: dt.date,
    topics: Iterable[str],
    attendees: Iterable[AbstractBaseUser] = (),
    notes: str = "",
) -> TrainingRecord:
    """Record a session in which ``experiment`` trained the operators.

    Topics must be a non-empty subset of ``TrainingTopic``; attendees must be
    operators; the session cannot lie in the future.
    """
    _require_operator(user)
    errors: dict[str, list[str]] = {}
    topics = list(dict.fromkeys(topics or []))
    unknown = sorted(set(topics) - set(TrainingTopic.values))
    if not topics or unknown:
        errors["topics"] = [f"choose one or more of {', '.join(TrainingTopic.values)}"]
    if not isinstance(held_on, dt.date):
        errors["held_on"] = ["a date is required"]
    elif held_on > timezone.localdate():
        errors["held_on"] = [f"{held_on} is in the future: record a session once it took place"]
    attendees = list(attendees or [])
    operator_ids = set(
        operator_accounts().filter(pk__in=[a.pk for a in attendees]).values_list("pk", flat=True)
    )
    strangers = sorted(str(a) for a in attendees if a.pk not in operator_ids)
    if strangers:
        errors["attendees"] = [f"not operators: {', '.join(strangers)}"]
    notes = (notes or "").strip()
    if len(notes) > MAX_NOTES:
        errors["notes"] = [f"at most {MAX_NOTES} characters"]
    if errors:
        raise ValidationError(errors)
    training = TrainingRecord.objects.create(
        experiment=experiment,
        held_on=held_on,
        topics=[t for t in TrainingTopic.values if t in topics],
        notes=notes,
        recorded_by=user,
    )
    training.attendees.set(attendees)
    record(
        "record_training",
        f"{experiment.slug} training on {held_on}",
        actor=user,
        experiment=experiment,
        topics=training.topics,
        attendees=sorted(a.get_username() for a in attendees),
    )
    return training


def checksum(upload: IO[bytes], max_bytes: int | None = None) -> str:
    """The sha256 of an uploaded file, read in chunks; refuses files over ``max_bytes``."""
    max_bytes = MAX_CODE_FILE_BYTES if max_bytes is None else max_bytes
    too_big = ValidationError(
        {"upload": [f"larger than {max_bytes:,} bytes: give its location and sha256 instead"]}
    )
    size = getattr(upload, "size", None)
    if size is not None and size > max_bytes:
        raise too_big
    digest, read = hashlib.sha256(), 0
    chunks = upload.chunks() if hasattr(upload, "chunks") else iter(lambda: upload.read(65536), b"")
    for chunk in chunks:
        read += len(chunk)
        if read > max_bytes:
            raise too_big
        digest.update(chunk)
    return digest.hexdigest()


def _unauthorised_owners(experiment: Experiment, owners: list) -> list[str]:
    """Owners that are not liaisons of ``experiment`` (the SLA's authorised accounts)."""
    liaisons = set(
        Membership.objects.filter(
            experiment=experiment, role=ExperimentRole.LIAISON, user__in=[o.pk for o in owners]
        ).values_list("user_id", flat=True)
    )
    return sorted(str(o) for o in owners if o.pk not in liaisons)


@transaction.atomic
def register_code(
    user: AbstractBaseUser,
    experiment: Experiment,
    *,
    name: str,
    version: str,
    location: str,
    kind: str = CodeKind.SCRIPT,
    sha256: str = "",
    owners: Iterable[AbstractBaseUser] = (),
    upload: IO[bytes] | None = None,
    approve: bool = False,
) -> ProductionCode:
    """Register a version of a production script or configuration.

    The checksum is given or computed from ``upload``; when both are given
    they must agree. Owners must be liaisons of the experiment. With
    ``approve`` the operator approves it at once (see ``approve_code``).
    """
    _require_operator(user)
    errors: dict[str, list[str]] = {}
    name, version = (name or "").strip(), (version or "").strip()
    location = (location or "").strip()
    for field, value, limit in (("name", name, 120), ("version", version, 60)):
        if not value:
            errors[field] = ["required"]
        elif len(value) > limit:
            errors[field] = [f"at most {limit} characters"]
    if not location:
        errors["location"] = ["required: the path or URL of the file"]
    elif len(location) > 500:
        errors["location"] = ["at most 500 characters"]
    if kind not in CodeKind.values:
        errors["kind"] = [f"choose one of {', '.join(CodeKind.values)}"]
    sha256 = (sha256 or "").strip().lower()
    if sha256:
        try:
            sha256_validator(sha256)
        except ValidationError as exc:
            errors["sha256"] = exc.messages
    if upload is not None:
        try:
            computed = checksum(upload)
        except ValidationError as exc:
            errors.update(exc.message_dict)
        else:
            if sha256 and sha256 != computed and "sha256" not in errors:
                errors["sha256"] = [f"does not match the uploaded file (its sha256 is {computed})"]
            sha256 = computed
    owners = list(owners or [])
    strangers = _unauthorised_owners(experiment, owners)
    if strangers:
        errors["owners"] = [f"not liaisons of {experiment.name}: {', '.join(strangers)}"]
    taken = ProductionCode.objects.filter(experiment=experiment, name=name, version=version)
    if name and version and taken.exists():
        errors["version"] = [f"{name} {version} is already registered for {experiment.name}"]
    if approve and not sha256:
        errors.setdefault("sha256", []).append("approval needs a checksum")
    if approve and not owners:
        errors.setdefault("owners", []).append("approval needs at least one owner")
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    code = ProductionCode.objects.create(
        experiment=experiment,
        name=name,
        version=version,
        kind=kind,
        location=location,
        sha256=sha256,
        approved=approve,
        approved_by=user if approve else None,
        approved_at=now if approve else None,
    )
    code.owners.set(owners)
    record(
        "register_code",
        f"{code.name} {code.version}",
        actor=user,
        experiment=experiment,
        sha256=sha256,
        owners=sorted(o.get_username() for o in owners),
        approved=approve,
    )
    return code


@transaction.atomic
def approve_code(user: AbstractBaseUser, code: ProductionCode) -> ProductionCode:
    """Approve a registered version: it must be checksummed and owned by authorised accounts."""
    _require_operator(user)
    code = ProductionCode.objects.select_for_update().select_related("experiment").get(pk=code.pk)
    if code.approved:
        raise ValidationError(f"{code} is already approved.")
    reasons = []
    if not code.sha256:
        reasons.append("it has no sha256 checksum")
    owners = list(code.owners.all())
    if not owners:
        reasons.append("it has no owners")
    strangers = _unauthorised_owners(code.experiment, owners)
    if strangers:
        reasons.append(f"owners not liaisons of {code.experiment.name}: {', '.join(strangers)}")
    if reasons:
        raise ValidationError(f"Cannot approve {code}: {'; '.join(reasons)}.")
    # Compare-and-set: of two operators approving at once, one records it.
    won = ProductionCode.objects.filter(pk=code.pk, approved=False).update(
        approved=True, approved_by=user, approved_at=timezone.now()
    )
    code.refresh_from_db()
    if won:
        record(
            "approve_code",
            f"{code.name} {code.version}",
            actor=user,
            experiment=code.experiment,
            sha256=code.sha256,
        )
    return code
