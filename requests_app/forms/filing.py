"""Filing a request: its own fields and its sample lines, checked by the services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from common import limits
from common.forms import DATE_INPUT, attach_errors
from experiments.models import Experiment, PhysicsGroup, WorkflowTemplate

from ..choices import Priority
from ..services import can_file, check_request_fields, validate_sample
from ..services.requests import DRAFT_OPTIONAL, MAX_SAMPLES, REQUEST_FIELDS


class TaggedSelect(forms.Select):
    """A select whose options carry ``data-experiment`` (for filtering by experiment)."""

    def __init__(self, *args, tags: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tags = tags or {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        tag = self.tags.get(str(value))
        if tag is not None:
            option["attrs"]["data-experiment"] = tag
        return option


@dataclass
class FilingOptions:
    """What a user may pick when filing: experiments, their groups and templates.

    Loaded once per page (three queries) so that rendering and validating
    any number of sample lines costs nothing more.
    """

    experiments: dict[str, Experiment]
    groups: dict[int, PhysicsGroup]
    templates: dict[int, WorkflowTemplate]

    @classmethod
    def load(cls, user, experiment: Experiment | None = None) -> FilingOptions:
        if experiment is not None:
            experiments = [experiment]
        else:
            experiments = [e for e in Experiment.objects.visible_to(user) if can_file(user, e)]
        groups = PhysicsGroup.objects.filter(experiment__in=experiments).order_by("name")
        templates = (
            WorkflowTemplate.objects.filter(
                Q(experiment__in=experiments) | Q(experiment__isnull=True)
            )
            .select_related("experiment")
            .prefetch_related("stages")
            .order_by("name", "version")
        )
        by_id = {e.id: e for e in experiments}
        group_map = {}
        for group in groups:
            group.experiment = by_id[group.experiment_id]
            group_map[group.id] = group
        return cls(
            experiments={e.slug: e for e in experiments},
            groups=group_map,
            templates={t.id: t for t in templates},
        )

    def group_choices(self) -> list:
        choices: list = [("", "Choose a working group")]
        for experiment in self.experiments.values():
            options = [(g.id, g.name) for g in self.groups.values() if g.experiment is experiment]
            if options:
                choices.append((experiment.name, options))
        return choices

    def template_choices(self) -> list:
        shared = [
            (t.id, f"{t.name} v{t.version}")
            for t in self.templates.values()
            if t.experiment_id is None
        ]
        choices: list = [("", "Choose a workflow template")]
        if shared:
            choices.append(("Shared", shared))
        for experiment in self.experiments.values():
            own = [
                (t.id, f"{t.name} v{t.version}")
                for t in self.templates.values()
                if t.experiment_id == experiment.id
            ]
            if own:
                choices.append((experiment.name, own))
        return choices

    def template_reference(self) -> list[dict]:
        """Each template with its accepted parameters, for the help on the page."""
        return [
            {
                "id": t.id,
                "label": f"{t.name} v{t.version}",
                "owner": t.experiment.name if t.experiment_id else "shared",
                "description": t.description,
                "parameters": parameter_help(t),
            }
            for t in self.templates.values()
        ]


def parameter_help(template: WorkflowTemplate) -> list[dict]:
    """The parameters a template accepts: name, type, default and limits."""
    rows = []
    for name, spec in sorted(template.parameter_specs().items()):
        limits = []
        if "choices" in spec:
            limits.append("one of " + ", ".join(map(str, spec["choices"])))
        if "min" in spec:
            limits.append(f"min {spec['min']}")
        if "max" in spec:
            limits.append(f"max {spec['max']}")
        rows.append(
            {
                "name": name,
                "type": spec.get("type", "str"),
                "default": format_value(spec["default"]) if "default" in spec else "required",
                "limits": ", ".join(limits),
            }
        )
    return rows


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_parameters(text: str) -> dict[str, str]:
    """``"seed=3\\nenergy_gev=2.5"`` -> ``{"seed": "3", "energy_gev": "2.5"}``.

    Values stay text: the template's specification types them (``validate_sample``).
    """
    values: dict[str, str] = {}
    errors = []
    for number, raw in enumerate((text or "").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            errors.append(f"line {number}: expected key=value, got {line[:40]!r}")
        elif key in values:
            errors.append(f"line {number}: {key} is given twice")
        else:
            values[key] = value.strip()
    if errors:
        raise ValidationError(errors)
    return values


def format_parameters(values: dict[str, Any]) -> str:
    return "\n".join(f"{key}={format_value(value)}" for key, value in (values or {}).items())


class RequestForm(forms.Form):
    """The request's own fields. Without ``experiment`` the user picks one they may file for."""

    experiment = forms.ChoiceField(label="Experiment")
    ticket = forms.CharField(
        label="Service-desk ticket",
        max_length=40,
        help_text="The ticket this request answers, e.g. RITM0012345.",
    )
    physics_group = forms.TypedChoiceField(
        label="Physics working group", coerce=int, empty_value=None, widget=TaggedSelect
    )
    title = forms.CharField(max_length=200)
    description = forms.CharField(
        label="Justification",
        required=False,
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Why this sample, what it is for, anything the operators should know.",
    )
    deadline = forms.DateField(widget=forms.DateInput(attrs=DATE_INPUT, format="%Y-%m-%d"))
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.NORMAL)

    def __init__(
        self,
        *args,
        options: FilingOptions,
        experiment: Experiment | None = None,
        draft: bool = True,
        **kw,
    ):
        super().__init__(*args, **kw)
        self.options = options
        self.fixed_experiment = experiment
        # A draft is saved with any subset of its fields; Submit names what is missing.
        self.draft = draft
        if draft:
            for name in DRAFT_OPTIONAL:
                self.fields[name].required = False
        if experiment is not None:
            del self.fields["experiment"]
        else:
            self.fields["experiment"].choices = [("", "Choose an experiment")] + [
                (slug, e.name) for slug, e in options.experiments.items()
            ]
            if len(options.experiments) == 1:
                self.fields["experiment"].initial = next(iter(options.experiments))
        groups = self.fields["physics_group"]
        groups.choices = options.group_choices()
        groups.widget.tags = {str(g.id): g.experiment.slug for g in options.groups.values()}
        self.fields["deadline"].widget.attrs["min"] = timezone.localdate().isoformat()
        self.fields["deadline"].widget.attrs["max"] = limits.latest_deadline().isoformat()

    def selected_experiment(self) -> Experiment | None:
        """The experiment being filed for, read before validation (sample lines need it)."""
        if self.fixed_experiment is not None:
            return self.fixed_experiment
        slug = self["experiment"].value()
        return self.options.experiments.get(slug or "")

    def clean(self):
        cleaned = super().clean()
        experiment = self.selected_experiment()
        if experiment is None:
            return cleaned
        cleaned["experiment"] = experiment
        if cleaned.get("physics_group") is not None:
            cleaned["physics_group"] = self.options.groups.get(cleaned["physics_group"])
        # On an edit, only what changed is checked (and saved): an untouched
        # deadline that has since passed is the submit check's business.
        names = set(self.changed_data) if self.fixed_experiment else set(REQUEST_FIELDS)
        data = {k: cleaned[k] for k in REQUEST_FIELDS if k in cleaned and k in names}
        try:
            check_request_fields(experiment, data, partial=True, draft=self.draft)
        except ValidationError as exc:
            attach_errors(self, exc)
        return cleaned

    def request_data(self, only_changed: bool = False) -> dict[str, Any]:
        names = self.changed_data if only_changed else REQUEST_FIELDS
        return {k: self.cleaned_data[k] for k in REQUEST_FIELDS if k in names}


class SampleForm(forms.Form):
    """One sample line; checked by ``validate_sample`` against the chosen experiment."""

    name = forms.CharField(label="Sample name", max_length=120)
    template = forms.TypedChoiceField(
        label="Workflow template",
        coerce=int,
        widget=TaggedSelect,
        error_messages={"invalid_choice": "unknown workflow template"},
    )
    events = forms.CharField(
        label="Events",
        widget=forms.NumberInput(attrs={"min": 1, "step": 1, "inputmode": "numeric"}),
    )
    events_per_job = forms.CharField(
        label="Events per job",
        widget=forms.NumberInput(attrs={"min": 1, "step": 1, "inputmode": "numeric"}),
    )
    parameters = forms.CharField(
        label="Parameters",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono"}),
        help_text="One key=value per line; unset parameters take the template's default.",
    )
    input_dataset = forms.CharField(
        label="Input dataset (optional)", required=False, max_length=255
    )
    output_dataset = forms.CharField(
        label="Output dataset",
        max_length=255,
        help_text="In the experiment's namespace: its slug and a colon, e.g. dune:mcc5.0:numu.",
    )

    def __init__(self, *args, options: FilingOptions, experiment: Experiment | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.options = options
        self.experiment = experiment
        self.line: dict | None = None
        field = self.fields["template"]
        field.choices = options.template_choices()
        field.widget.tags = {
            str(t.id): t.experiment.slug if t.experiment_id else ""
            for t in options.templates.values()
        }

    @property
    def template_help(self) -> list[dict] | None:
        """The chosen template's parameters; ``None`` while no template is chosen."""
        try:
            template = self.options.templates.get(int(self["template"].value()))
        except (TypeError, ValueError):
            return None
        return None if template is None else parameter_help(template)

    def clean_parameters(self) -> dict[str, str]:
        return parse_parameters(self.cleaned_data.get("parameters", ""))

    def clean(self):
        cleaned = super().clean()
        if self.experiment is None:
            return cleaned
        template = self.options.templates.get(cleaned.get("template"))
        data = {name: cleaned.get(name) for name in self.fields}
        # An unknown id goes to the service as is, which names the problem.
        data["template"] = template or self["template"].value()
        try:
            self.line = validate_sample(self.experiment, data)
        except ValidationError as exc:
            attach_errors(self, exc)
        return cleaned


class BaseSampleFormSet(forms.BaseFormSet):
    def kept_forms(self) -> list[SampleForm]:
        """Lines that count: not marked for removal, and not a blank extra line."""
        # Read from what was sent, so this also works before (or without) validation.
        return [
            form
            for form in self.forms
            if not (self.can_delete and form["DELETE"].value())
            and (form.has_changed() or not form.empty_permitted)
        ]

    def clean(self):
        seen: set[str] = set()
        for form in self.kept_forms():
            name = getattr(form, "cleaned_data", {}).get("name")
            if name and name in seen:
                form.add_error("name", f"{name!r} is used twice in this request")
            seen.add(name)

    def lines(self) -> list[dict]:
        return [form.line for form in self.kept_forms() if form.line is not None]


def sample_formset(*args, extra: int = 1, **kwargs) -> BaseSampleFormSet:
    formset_class = forms.formset_factory(
        SampleForm,
        formset=BaseSampleFormSet,
        extra=extra,
        can_delete=True,
        max_num=MAX_SAMPLES,
        validate_max=True,
    )
    return formset_class(*args, prefix="samples", **kwargs)


def sample_initial(sample) -> dict[str, Any]:
    return {
        "name": sample.name,
        "template": sample.template_id,
        "events": sample.events,
        "events_per_job": sample.events_per_job,
        "parameters": format_parameters(sample.parameters),
        "input_dataset": sample.input_dataset,
        "output_dataset": sample.output_dataset,
    }
