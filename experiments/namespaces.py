"""Dataset namespaces: an experiment's dataset names start with its slug and a colon.

The catalogue is one name space for all experiments (a name is unique across them), so
without this rule one experiment could define or file ``dune:...`` first and block DUNE's
own scheduling of that name. With it, a name can only collide with the filer's own
datasets, and a refusal tells nobody about another experiment's data.
"""

from __future__ import annotations

from collections.abc import Iterable


def namespace_of(experiment_slug: str) -> str:
    return f"{experiment_slug}:"


def in_namespace(experiment_slug: str, name: str) -> bool:
    """Whether ``name`` is in the experiment's namespace (``<slug>:<something>``)."""
    prefix = namespace_of(experiment_slug)
    return name.startswith(prefix) and len(name) > len(prefix)


def namespace_refusal(experiment_slug: str) -> str:
    return f"must start with {namespace_of(experiment_slug)} (the experiment's namespace)"


def foreign_namespace(experiment_slug: str, name: str, slugs: Iterable[str]) -> str | None:
    """The other experiment whose namespace ``name`` is in, if any (for operators' checks
    of work filed before names were confined; never shown to an experiment's members)."""
    head, colon, _ = name.partition(":")
    if colon and head != experiment_slug and head in set(slugs):
        return head
    return None
