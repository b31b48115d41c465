"""``opos campaigns schedule|launch|pause|resume|cancel|priority``: an operator steering a
campaign through the campaign API (``POST .../schedule/``, ``POST .../actions/``, ``PATCH``).

The server decides whether the action is allowed (role, campaign state, a note where one
is required) and records it; a refusal is printed with its reasons (exit 1).
"""

from __future__ import annotations

import argparse

from ..errors import CliError, Exit
from . import lookup

STEERING = {
    "launch": "launch a planned campaign: its jobs start to be submitted",
    "pause": "pause an active campaign",
    "resume": "resume a paused campaign",
    "cancel": "cancel a campaign and its unfinished jobs (--note required)",
}
PRIORITIES = ("low", "normal", "high", "critical")


def _summary(campaign: dict) -> str:
    return f"{campaign.get('name')} ({campaign.get('experiment')}) is {campaign.get('state')}"


def cmd_campaigns_schedule(args: argparse.Namespace, out) -> int:
    with lookup.api() as api:
        campaign = lookup.campaign(api, args.name, args.experiment)
        ids = [lookup.request(api, number)["id"] for number in args.requests]
        result = api.post(
            f"/campaigns/{campaign['id']}/schedule/", {"requests": ids, "note": args.note or ""}
        )
    scheduled = ", ".join(result.get("scheduled") or [])
    out.emit(
        result,
        f"Scheduled {scheduled} into {campaign['name']}: "
        f"{result.get('stages')} stages, {result.get('jobs')} jobs planned.",
    )
    return Exit.OK


def cmd_campaigns_action(args: argparse.Namespace, out) -> int:
    with lookup.api() as api:
        campaign = lookup.campaign(api, args.name, args.experiment)
        answer = api.post(
            f"/campaigns/{campaign['id']}/actions/",
            {"action": args.subcommand, "note": args.note or ""},
        )
    out.emit(answer, f"{args.subcommand.capitalize()} done: {_summary(answer)}.")
    return Exit.OK


def cmd_campaigns_priority(args: argparse.Namespace, out) -> int:
    if not (args.reason or "").strip():
        raise CliError(Exit.USAGE, "give --reason: a priority change is recorded with its reason")
    with lookup.api() as api:
        campaign = lookup.campaign(api, args.name, args.experiment)
        answer = api.call(
            "PATCH",
            f"/campaigns/{campaign['id']}/",
            json={"priority": args.priority, "reason": args.reason},
        )
    out.emit(
        answer,
        f"{answer.get('name')}: priority {campaign.get('priority')} -> {answer.get('priority')}.",
    )
    return Exit.OK


def _campaign_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="campaign name (or id)")
    parser.add_argument("--experiment", help="needed when several experiments use the name")


def register(campaigns, common: argparse.ArgumentParser) -> None:
    """Add the operators' steering commands under ``opos campaigns``."""
    schedule = campaigns.add_parser(
        "schedule", parents=[common], help="schedule approved requests into a campaign"
    )
    _campaign_arguments(schedule)
    schedule.add_argument(
        "requests",
        metavar="REQUEST",
        nargs="+",
        help="request numbers (or ids), e.g. DUNE-2026-0042",
    )
    schedule.add_argument("--note", "-m", help="recorded with the scheduling")
    schedule.set_defaults(func=cmd_campaigns_schedule)
    for action, what in STEERING.items():
        parser = campaigns.add_parser(action, parents=[common], help=what)
        _campaign_arguments(parser)
        parser.add_argument("--note", "-m", help="recorded with the action")
        parser.set_defaults(func=cmd_campaigns_action)
    priority = campaigns.add_parser(
        "priority", parents=[common], help="change a campaign's priority (recorded with a reason)"
    )
    _campaign_arguments(priority)
    priority.add_argument(
        "priority", metavar="PRIORITY", choices=PRIORITIES, help=", ".join(PRIORITIES)
    )
    priority.add_argument("--reason", "-r", required=True, help="why (recorded)")
    priority.set_defaults(func=cmd_campaigns_priority)
