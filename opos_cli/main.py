"""``opos``: the command-line client of OPOS Tracker. It speaks only to the REST API.

Exit codes: 0 success, 1 refused by the server (its reasons are printed),
2 usage error (bad arguments or request file; nothing was sent), 3
connection or authentication problem. ``--json`` prints machine-readable
output on every command (and errors as ``{"error": ..., "reasons": [...]}``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from typing import Any

from . import config, render, requestfile
from .client import Api
from .commands import campaign_actions, placement, records, steering
from .errors import CliError, Exit

TOKEN_KEY_LENGTH = 15
"""The first characters of a token, which name it on the server (``/api/v1/auth/tokens/``)."""
ACTIONS = ("submit", "request_info", "approve", "reject", "hold", "resume", "cancel", "close")
STATES = (
    "draft",
    "submitted",
    "needs_info",
    "approved",
    "scheduled",
    "in_production",
    "on_hold",
    "completed",
    "closed",
    "rejected",
    "cancelled",
)


class Output:
    """Where a command writes: human text, or JSON for scripts."""

    def __init__(self, as_json: bool):
        self.as_json = as_json

    def emit(self, data: Any, text: str) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, default=str))
        else:
            print(text)

    def line(self, data: Any) -> None:
        """One JSON object per line (watch mode), flushed at once."""
        print(json.dumps(data, default=str), flush=True)


# --- Commands -------------------------------------------------------------------


def cmd_login(args: argparse.Namespace, out: Output) -> int:
    url = config.normalise_url(args.url)
    username = args.username
    interactive = sys.stdin.isatty()
    if not username:
        if not interactive:
            raise CliError(Exit.USAGE, "give --username when standard input is not a terminal")
        username = input("Username: ").strip()
    password = os.environ.get("OPOS_PASSWORD", "")
    if not password:
        password = (
            getpass.getpass("Password: ") if interactive else sys.stdin.readline().rstrip("\n")
        )
    if not username or not password:
        raise CliError(Exit.USAGE, "a username and a password are needed")
    with Api(url) as api:
        try:
            answer = api.post("/auth/token/", {"username": username, "password": password})
        except CliError as exc:
            if exc.status == 400:  # the server's answer to wrong credentials
                raise CliError(
                    Exit.CONNECTION, "login refused: wrong username or password", exc.reasons
                ) from exc
            raise
    token = answer.get("token") if isinstance(answer, dict) else None
    if not token:
        raise CliError(Exit.CONNECTION, f"{url} did not hand out a token")
    path = config.save(config.Session(url, token, username))
    out.emit(
        {"url": url, "username": username, "config": str(path)},
        f"Logged in to {url} as {username} (token saved in {path}).",
    )
    return Exit.OK


def cmd_logout(args: argparse.Namespace, out: Output) -> int:
    # Revoke the token on the server first (best effort: an unreachable server or a token
    # already expired must not keep the local copy), then forget it here.
    revoked = False
    if config.config_path().exists():
        try:
            session = config.load()
            with Api(session.url, session.token) as api:
                api.call("DELETE", f"/auth/tokens/{session.token[:TOKEN_KEY_LENGTH]}/")
            revoked = True
        except CliError:
            pass
    removed = config.forget()
    message = "Logged out." if removed else "Not logged in."
    if removed and not revoked:
        message += " (The server could not be told: revoke the token on your account page.)"
    out.emit({"logged_out": removed, "revoked": revoked}, message)
    return Exit.OK


def _api() -> Api:
    session = config.load()
    return Api(session.url, session.token)


def find_request(api: Api, number: str) -> dict:
    """A request by its number (``DUNE-2026-0042``, or an older ``REQ-2026-0042``), or id."""
    if number.isdigit():
        return api.get(f"/requests/{number}/")
    for item in api.pages("/requests/", search=number):
        if item.get("number") == number:
            return item
    raise CliError(Exit.REFUSED, f"no request {number} (or you may not see it)", status=404)


def cmd_requests_list(args: argparse.Namespace, out: Output) -> int:
    with _api() as api:
        params = {
            "state": ",".join(args.state or []),
            "experiment": ",".join(args.experiment or []),
            "search": args.search,
        }
        items = list(api.pages("/requests/", limit=args.limit, **params))
    out.emit(items, render.request_rows(items) if items else "No requests.")
    return Exit.OK


def cmd_requests_show(args: argparse.Namespace, out: Output) -> int:
    with _api() as api:
        request = find_request(api, args.number)
        history = api.get(f"/requests/{request['id']}/history/") if args.history else None
    data = dict(request, history=history) if history is not None else request
    out.emit(data, render.request_detail(request, history))
    return Exit.OK


def cmd_requests_create(args: argparse.Namespace, out: Output) -> int:
    payload = requestfile.load(args.file)
    if args.submit:
        payload["submit"] = True
    if args.dry_run:
        out.emit(
            payload, f"{args.file} is valid ({len(payload['samples'])} samples); nothing sent."
        )
        return Exit.OK
    with _api() as api:
        created = api.post("/requests/", payload)
    out.emit(
        created,
        f"Created {created.get('number')} ({created.get('state')}): {created.get('title')}",
    )
    return Exit.OK


def cmd_requests_transition(args: argparse.Namespace, out: Output) -> int:
    with _api() as api:
        request = find_request(api, args.number)
        answer = api.post(
            f"/requests/{request['id']}/transitions/",
            {"action": args.action, "note": args.note or ""},
        )
    state = answer.get("state") if isinstance(answer, dict) else None
    out.emit(answer, f"{request['number']}: {args.action.replace('_', ' ')} done, now {state}.")
    return Exit.OK


def cmd_campaigns_list(args: argparse.Namespace, out: Output) -> int:
    with _api() as api:
        items = list(_campaigns(api, experiment=args.experiment, state=args.state))
    out.emit(items, render.campaign_rows(items) if items else "No campaigns.")
    return Exit.OK


def _campaigns(api: Api, **params: Any):
    yield from api.pages("/campaigns/", **params)


def find_campaign(api: Api, name: str, experiment: str | None) -> dict:
    """A campaign by id, or by its name (unique within an experiment)."""
    if name.isdigit():
        return api.get(f"/campaigns/{name}/")
    found = [
        c
        for c in _campaigns(api, search=name, experiment=experiment)
        if c.get("name") == name and (not experiment or c.get("experiment") == experiment)
    ]
    if not found:
        raise CliError(
            Exit.REFUSED, f"no campaign named {name!r} (or you may not see it)", status=404
        )
    if len(found) > 1:
        where = ", ".join(sorted(str(c.get("experiment")) for c in found))
        raise CliError(
            Exit.USAGE,
            f"{name!r} names campaigns of several experiments ({where}): add --experiment",
        )
    return found[0]


def _progress(api: Api, campaign: dict) -> dict:
    return api.get(f"/campaigns/{campaign['id']}/progress/")


def cmd_campaigns_progress(args: argparse.Namespace, out: Output) -> int:
    if args.interval <= 0:
        raise CliError(Exit.USAGE, "--interval must be more than zero seconds")
    if args.count is not None and args.count < 1:
        raise CliError(Exit.USAGE, "--count must be at least 1")
    unicode = (sys.stdout.encoding or "").lower().replace("-", "") == "utf8"
    live = args.watch and sys.stdout.isatty() and not out.as_json
    with _api() as api:
        campaign = find_campaign(api, args.name, args.experiment)
        if not args.watch:
            progress = _progress(api, campaign)
            out.emit(
                dict(progress, campaign=campaign),
                render.progress(campaign, progress, unicode=unicode),
            )
            return Exit.OK
        shown = 0
        drawn = 0
        try:
            while True:
                progress = _progress(api, campaign)
                shown += 1
                if out.as_json:
                    out.line(
                        dict(
                            progress,
                            campaign=campaign["name"],
                            at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                        )
                    )
                else:
                    block = render.progress(campaign, progress, unicode=unicode)
                    stamp = (
                        f"updated {time.strftime('%H:%M:%S')}"
                        f" (every {args.interval:g}s, Ctrl-C stops)"
                    )
                    if live and drawn:
                        # Redraw in place: up to the first line of the last block, clear below.
                        sys.stdout.write(f"\x1b[{drawn}F\x1b[J")
                    text = f"{block}\n{stamp}"
                    print(text if live else f"{text}\n", flush=True)
                    drawn = text.count("\n") + 1
                finished = progress.get("status") == "done"
                if finished or (args.count is not None and shown >= args.count):
                    return Exit.OK
                time.sleep(args.interval)
        except KeyboardInterrupt:
            return Exit.OK


# --- Parser ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    parser = argparse.ArgumentParser(
        prog="opos",
        description="Command-line client of OPOS Tracker (production requests and campaigns).",
        epilog="Exit codes: 0 success, 1 refused by the server, 2 usage error, "
        "3 connection or authentication problem.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    login = commands.add_parser("login", parents=[common], help="log in and store a token")
    login.add_argument("url", metavar="URL", help="the server, e.g. https://opos.example.org")
    login.add_argument(
        "--username", "-u", help="default: asked (password: OPOS_PASSWORD, prompt or stdin)"
    )
    login.set_defaults(func=cmd_login)
    logout = commands.add_parser("logout", parents=[common], help="forget the stored token")
    logout.set_defaults(func=cmd_logout)

    requests = commands.add_parser("requests", parents=[common], help="production requests")
    rsub = requests.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    listing = rsub.add_parser("list", parents=[common], help="list requests you can see")
    listing.add_argument("--state", action="append", choices=STATES, help="repeat for several")
    listing.add_argument("--experiment", action="append", help="experiment slug (repeatable)")
    listing.add_argument("--search", help="number, ticket or title words")
    listing.add_argument("--limit", type=int, default=200, help="at most this many (default 200)")
    listing.set_defaults(func=cmd_requests_list)
    show = rsub.add_parser("show", parents=[common], help="one request, with its samples")
    show.add_argument("number", metavar="NUMBER", help="e.g. DUNE-2026-0042")
    show.add_argument("--history", action="store_true", help="add transitions and comments")
    show.set_defaults(func=cmd_requests_show)
    create = rsub.add_parser("create", parents=[common], help="file a request from a YAML file")
    create.add_argument("-f", "--file", required=True, help="the request file (- for stdin)")
    create.add_argument("--submit", action="store_true", help="submit at once (not a draft)")
    create.add_argument("--dry-run", action="store_true", help="only check the file")
    create.set_defaults(func=cmd_requests_create)
    move = rsub.add_parser("transition", parents=[common], help="take an action on a request")
    move.add_argument("number", metavar="NUMBER")
    move.add_argument("action", metavar="ACTION", choices=ACTIONS, help=", ".join(ACTIONS))
    move.add_argument("--note", "-m", help="required to ask for information, reject and hold")
    move.set_defaults(func=cmd_requests_transition)

    campaigns = commands.add_parser("campaigns", parents=[common], help="production campaigns")
    csub = campaigns.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    clist = csub.add_parser("list", parents=[common], help="list campaigns you can see")
    clist.add_argument("--experiment", help="experiment slug")
    clist.add_argument("--state", help="planned, active, paused, completed, cancelled")
    clist.set_defaults(func=cmd_campaigns_list)
    prog = csub.add_parser("progress", parents=[common], help="progress against the deadline")
    prog.add_argument("name", metavar="NAME", help="campaign name (or id)")
    prog.add_argument("--experiment", help="needed when several experiments use the name")
    prog.add_argument("--watch", "-w", action="store_true", help="refresh until done or Ctrl-C")
    prog.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes")
    prog.add_argument("--count", type=int, help="stop after this many refreshes")
    prog.set_defaults(func=cmd_campaigns_progress)
    campaign_actions.register(csub, common)
    records.register(commands, common)
    steering.register({"campaigns": csub, "requests": rsub}, common)
    placement.register(commands, csub, common)
    return parser


def report(exc: CliError, out: Output) -> None:
    if out.as_json:
        print(json.dumps(exc.as_json(), indent=2))
        return
    print(f"opos: {exc.message}", file=sys.stderr)
    for reason in exc.reasons:
        print(f"  - {reason}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on a usage error, 0 for --help
        return int(exc.code or 0)
    out = Output(getattr(args, "json", False))
    try:
        return int(args.func(args, out))
    except CliError as exc:
        report(exc, out)
        return int(exc.code)
    except KeyboardInterrupt:
        return 130  # the shell's convention for Ctrl-C


if __name__ == "__main__":
    raise SystemExit(main())
