"""``opos campaigns what-if`` and ``opos requests what-if``: what a decision would do to
everyone else, before it is taken (``GET /campaigns/{id}/what-if/``,
``GET /requests/{id}/what-if/``; operators only, nothing is changed).

The answer lists the decision's own work with the change, then every campaign and request
whose projected finish or status moves ("SBND reprocessing: on track -> at risk, +14 h")
and the 100 % promises whose status would change. Exit 0 with the answer; a refusal of
the server (not an operator, a request not submitted) exits 1, bad arguments 2.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import CliError, Exit
from . import lookup

CAMPAIGN_CHANGES = ("launch", "priority", "schedule")
PRIORITIES = ("low", "normal", "high", "critical")


def _status(value: str | None) -> str:
    return (value or "").replace("_", " ")


def render(answer: dict[str, Any], heading: str) -> str:
    """The answer as text: the decision's own work, what moves for others, the promises."""
    lines = [heading]
    subject = answer.get("subject")
    if subject:
        finish = subject.get("after_finish") or "not projected"
        lines.append(f"  itself: {_status(subject.get('after_status'))}, projected finish {finish}")
    effects = answer.get("effects") or []
    if effects:
        lines.append("Effect on others:")
        lines += [f"  {e.get('text')}" for e in effects]
    else:
        lines.append("Effect on others: none (no projected finish moves by a minute or more)")
    moved = answer.get("commitments") or []
    if moved:
        lines.append("Promises (100 %) whose status would change:")
        for c in moved:
            what = c.get("request") or f"campaign {c.get('campaign')}"
            lines.append(
                f"  {what}: promised {c.get('promised_at')}, "
                f"{_status(c.get('before'))} -> {_status(c.get('after'))}"
            )
    return "\n".join(lines)


def cmd_campaigns_what_if(args: argparse.Namespace, out) -> int:
    params: dict[str, Any] = {"change": args.action}
    if args.action == "priority":
        if not args.priority:
            raise CliError(Exit.USAGE, "give --priority: the priority to project")
        params["priority"] = args.priority
    elif args.priority:
        raise CliError(Exit.USAGE, "--priority goes with --action priority only")
    if args.action == "schedule" and not args.requests:
        raise CliError(Exit.USAGE, "give --request (repeatable): the approved requests to add")
    if args.action != "schedule" and args.requests:
        raise CliError(Exit.USAGE, "--request goes with --action schedule only")
    with lookup.api() as api:
        campaign = lookup.campaign(api, args.name, args.experiment)
        if args.requests:
            ids = [str(lookup.request(api, number)["id"]) for number in args.requests]
            params["requests"] = ",".join(ids)
        answer = api.get(f"/campaigns/{campaign['id']}/what-if/", **params)
    what = {
        "launch": "launching",
        "priority": f"priority {args.priority} for",
        "schedule": f"scheduling {', '.join(args.requests or [])} into",
    }[args.action]
    out.emit(answer, render(answer, f"What-if: {what} {campaign['name']} (nothing changed)"))
    return Exit.OK


def cmd_requests_what_if(args: argparse.Namespace, out) -> int:
    with lookup.api() as api:
        answer = api.get(f"/requests/{args.number}/what-if/")
    out.emit(answer, render(answer, f"What-if: approving {args.number} (nothing changed)"))
    return Exit.OK


def register(parsers: dict[str, Any], common: argparse.ArgumentParser) -> None:
    """Add ``what-if`` under ``opos campaigns`` and ``opos requests``."""
    campaign = parsers["campaigns"].add_parser(
        "what-if",
        parents=[common],
        help="what a launch, priority change or scheduling would do to others",
    )
    campaign.add_argument("name", metavar="NAME", help="campaign name (or id)")
    campaign.add_argument("--experiment", help="needed when several experiments use the name")
    campaign.add_argument(
        "--action", required=True, choices=CAMPAIGN_CHANGES, help=", ".join(CAMPAIGN_CHANGES)
    )
    campaign.add_argument("--priority", choices=PRIORITIES, help="with --action priority")
    campaign.add_argument(
        "--request",
        dest="requests",
        action="append",
        metavar="NUMBER",
        help="with --action schedule: an approved request (repeatable)",
    )
    campaign.set_defaults(func=cmd_campaigns_what_if)
    request = parsers["requests"].add_parser(
        "what-if", parents=[common], help="what approving a submitted request would do to others"
    )
    request.add_argument("number", metavar="NUMBER", help="e.g. DUNE-2026-0042")
    request.set_defaults(func=cmd_requests_what_if)
