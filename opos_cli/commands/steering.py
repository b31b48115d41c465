"""Steering running production: ``opos campaigns recover|force-complete|launch-full|settings``
and ``opos requests clone|extend|extension|force-complete``.

Each command finds its campaign or request as the other commands do, sends one call to the
REST API, and prints the answer (``--json``: as the API gave it). Exit codes as everywhere:
0 done, 1 refused by the server (its reasons printed), 2 usage error (nothing sent), 3
connection or authentication problem.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from ..errors import CliError, Exit

WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d{2}):(\d{2})$")


def _main():
    # The entry module imports this one: reach its helpers when a command runs.
    from .. import main

    return main


def walltime_seconds(text: str) -> int:
    """``3600``, ``02:00:00`` or ``1-00:00:00`` (Slurm's forms) in seconds."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    match = WALLTIME.match(text)
    if not match:
        raise CliError(Exit.USAGE, f"--walltime: {text!r} is not seconds, HH:MM:SS or D-HH:MM:SS")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    if minutes > 59 or seconds > 59:
        raise CliError(Exit.USAGE, f"--walltime: {text!r}: minutes and seconds go up to 59")
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parameters(pairs: list[str] | None) -> dict[str, str]:
    """``--param name=value`` (repeatable); the server checks the values against the
    template and converts them to their declared types."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CliError(Exit.USAGE, f"--param: {pair!r} is not NAME=VALUE")
        if name.strip() in out:
            raise CliError(Exit.USAGE, f"--param: {name.strip()} is given twice")
        out[name.strip()] = value
    return out


def _campaign(api, args) -> dict:
    return _main().find_campaign(api, args.name, args.experiment)


def cmd_recover(args: argparse.Namespace, out) -> int:
    body: dict[str, Any] = {"note": args.note or ""}
    if args.stage is not None:
        body["stage"] = args.stage
    if args.job:
        body["jobs"] = args.job
    if args.memory is not None:
        body["memory_mb"] = args.memory
    if args.walltime is not None:
        body["walltime_s"] = walltime_seconds(args.walltime)
    if args.param:
        body["parameters"] = parameters(args.param)
    with _main()._api() as api:
        campaign = _campaign(api, args)
        answer = api.post(f"/campaigns/{campaign['id']}/recover/", body)
    overrides = answer.get("overrides") or {}
    shown = ", ".join(
        f"{k}={v}"
        for k, v in {**overrides, **overrides.get("parameters", {})}.items()
        if k != "parameters"
    )
    out.emit(
        answer,
        f"{campaign['name']}: {len(answer.get('jobs', []))} jobs resubmitted "
        f"({answer.get('failed', 0)} failed, {answer.get('missing_outputs', 0)} with missing "
        f"outputs)" + (f" with {shown}" if shown else "") + ".",
    )
    return Exit.OK


def _completion_text(what: str, answer: dict) -> str:
    return (
        f"{what}: force-completed at {answer.get('done_pct')} % of its final jobs "
        f"(threshold {answer.get('threshold_pct')} %); {answer.get('cancelled_jobs', 0)} jobs "
        f"cancelled; requests completed: {', '.join(answer.get('requests', [])) or 'none'}."
    )


def cmd_campaign_force_complete(args: argparse.Namespace, out) -> int:
    with _main()._api() as api:
        campaign = _campaign(api, args)
        answer = api.post(f"/campaigns/{campaign['id']}/force-complete/", {"reason": args.reason})
    out.emit(answer, _completion_text(campaign["name"], answer))
    return Exit.OK


def cmd_launch_full(args: argparse.Namespace, out) -> int:
    with _main()._api() as api:
        campaign = _campaign(api, args)
        answer = api.post(f"/campaigns/{campaign['id']}/launch-full/", {"note": args.note or ""})
    out.emit(answer, f"{campaign['name']}: full launch ({answer.get('state')}).")
    return Exit.OK


def cmd_settings(args: argparse.Namespace, out) -> int:
    body: dict[str, Any] = {}
    if args.test_jobs is not None:
        body["test_jobs"] = args.test_jobs
    if args.auto_continue is not None:
        body["test_auto_continue"] = args.auto_continue
    if args.completion_pct is not None:
        body["completion_pct"] = None if args.completion_pct == "default" else args.completion_pct
    if not body:
        raise CliError(
            Exit.USAGE, "give --test-jobs, --auto-continue/--no-auto-continue or --completion-pct"
        )
    if isinstance(body.get("completion_pct"), str):
        try:
            body["completion_pct"] = int(body["completion_pct"])
        except ValueError:
            raise CliError(
                Exit.USAGE, "--completion-pct: a whole number from 1 to 100, or 'default'"
            ) from None
    with _main()._api() as api:
        campaign = _campaign(api, args)
        answer = api.post(f"/campaigns/{campaign['id']}/settings/", body)
    pct = answer.get("completion_pct")
    out.emit(
        answer,
        f"{campaign['name']}: {answer.get('test_jobs')} test jobs per stage, "
        f"{'goes on by itself' if answer.get('test_auto_continue') else 'full launch on a click'}"
        f", force-complete at {f'{pct} %' if pct else 'the templates default'}.",
    )
    return Exit.OK


def cmd_clone(args: argparse.Namespace, out) -> int:
    body = {
        key: value
        for key, value in {
            "experiment": args.experiment,
            "physics_group": args.physics_group,
            "ticket": args.ticket,
            "title": args.title,
            "deadline": args.deadline,
            "priority": args.priority,
        }.items()
        if value is not None
    }
    with _main()._api() as api:
        source = _main().find_request(api, args.number)
        answer = api.post(f"/requests/{source['id']}/clone/", body)
    out.emit(
        answer,
        f"Cloned {source['number']} into {answer.get('number')} ({answer.get('state')}): "
        f"{answer.get('title')}",
    )
    return Exit.OK


def cmd_extend(args: argparse.Namespace, out) -> int:
    if args.events <= 0:
        raise CliError(Exit.USAGE, "--events must be more than zero")
    body: dict[str, Any] = {"events": args.events, "reason": args.reason}
    if args.sample:
        body["sample"] = args.sample
    with _main()._api() as api:
        request = _main().find_request(api, args.number)
        answer = api.post(f"/requests/{request['id']}/extensions/", body)
    out.emit(
        answer,
        f"{request['number']}: extension {answer.get('id')} of {answer.get('sample')} by "
        f"{answer.get('events')} events filed ({answer.get('state')}); an operator approves it.",
    )
    return Exit.OK


def cmd_extension(args: argparse.Namespace, out) -> int:
    with _main()._api() as api:
        answer = api.post(f"/extensions/{args.id}/{args.decision}/", {"note": args.note or ""})
    added = f", {answer.get('jobs_added')} jobs added" if args.decision == "approve" else ""
    out.emit(answer, f"Extension {args.id}: {answer.get('state')}{added}.")
    return Exit.OK


def cmd_request_force_complete(args: argparse.Namespace, out) -> int:
    with _main()._api() as api:
        request = _main().find_request(api, args.number)
        answer = api.post(f"/requests/{request['id']}/force-complete/", {"reason": args.reason})
    out.emit(answer, _completion_text(request["number"], answer))
    return Exit.OK


def _campaign_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="campaign name (or id)")
    parser.add_argument("--experiment", help="needed when several experiments use the name")


def register(groups: dict[str, Any], common: argparse.ArgumentParser) -> None:
    """Add the steering commands to the ``campaigns`` and ``requests`` subcommand groups."""
    csub, rsub = groups["campaigns"], groups["requests"]

    recover = csub.add_parser(
        "recover", parents=[common], help="resubmit failed jobs, with overrides"
    )
    _campaign_args(recover)
    recover.add_argument("--stage", type=int, help="only this stage (its id)")
    recover.add_argument("--job", type=int, action="append", help="only this job (repeatable)")
    recover.add_argument("--memory", type=int, metavar="MB", help="memory of the new attempts")
    recover.add_argument("--walltime", help="walltime: seconds, HH:MM:SS or D-HH:MM:SS")
    recover.add_argument(
        "--param", action="append", metavar="NAME=VALUE", help="parameter value (repeatable)"
    )
    recover.add_argument("--note", "-m", help="why (recorded)")
    recover.set_defaults(func=cmd_recover)

    force = csub.add_parser(
        "force-complete", parents=[common], help="complete at the threshold, abandon the rest"
    )
    _campaign_args(force)
    force.add_argument("--reason", "-m", required=True, help="why (recorded, sent on)")
    force.set_defaults(func=cmd_campaign_force_complete)

    full = csub.add_parser(
        "launch-full", parents=[common], help="go on from the test jobs to the full launch"
    )
    _campaign_args(full)
    full.add_argument("--note", "-m", help="required when the test did not pass")
    full.set_defaults(func=cmd_launch_full)

    settings = csub.add_parser(
        "settings", parents=[common], help="test launch and force-complete settings"
    )
    _campaign_args(settings)
    settings.add_argument("--test-jobs", type=int, help="jobs of each stage launched first")
    settings.add_argument(
        "--auto-continue", action=argparse.BooleanOptionalAction, help="full launch by itself"
    )
    settings.add_argument("--completion-pct", help="1-100, or 'default' (the templates')")
    settings.set_defaults(func=cmd_settings)

    clone = rsub.add_parser("clone", parents=[common], help="clone a request into a new draft")
    clone.add_argument("number", metavar="NUMBER")
    clone.add_argument("--experiment", help="file the clone for another experiment (slug)")
    clone.add_argument("--physics-group", help="working group (slug)")
    clone.add_argument("--ticket")
    clone.add_argument("--title")
    clone.add_argument("--deadline", help="YYYY-MM-DD")
    clone.add_argument("--priority", choices=("low", "normal", "high", "critical"))
    clone.set_defaults(func=cmd_clone)

    extend = rsub.add_parser(
        "extend", parents=[common], help="ask for more events of a running sample"
    )
    extend.add_argument("number", metavar="NUMBER")
    extend.add_argument("--events", type=int, required=True, help="events to add")
    extend.add_argument("--reason", "-m", required=True, help="why (recorded)")
    extend.add_argument("--sample", help="sample name (needed when the request has several)")
    extend.set_defaults(func=cmd_extend)

    decide = rsub.add_parser(
        "extension", parents=[common], help="approve or reject an extension (operators)"
    )
    decide.add_argument("decision", choices=("approve", "reject"))
    decide.add_argument("id", type=int, metavar="ID", help="the extension's id")
    decide.add_argument("--note", "-m", help="required to reject")
    decide.set_defaults(func=cmd_extension)

    rforce = rsub.add_parser(
        "force-complete", parents=[common], help="complete at the threshold, abandon the rest"
    )
    rforce.add_argument("number", metavar="NUMBER")
    rforce.add_argument("--reason", "-m", required=True, help="why (recorded, sent on)")
    rforce.set_defaults(func=cmd_request_force_complete)
