"""Where work runs at the batch system: ``opos experiments placement`` and ``opos campaigns
placement`` (partition, account, QOS, HTCondor requirements; an experiment's partitions to
avoid), and ``opos partitions`` (each partition's capacity and the experiments' quotas on it).

Without options the placement commands show the current values. An empty value
(``--partition ""``) goes back to the default (the experiment's, then the site's). Exit
codes as everywhere: 0 done, 1 refused by the server (its reasons printed), 2 usage error
(nothing sent), 3 connection or authentication problem.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import CliError, Exit

OPTIONS = {
    "partition": "batch_partition",
    "account": "batch_account",
    "qos": "batch_qos",
    "requirements": "batch_requirements",
}
LABELS = {
    "batch_partition": "partition",
    "batch_account": "account",
    "batch_qos": "QOS",
    "batch_requirements": "requirements",
    "batch_avoid_partitions": "avoid",
}


def _main():
    # The entry module imports this one: reach its helpers when a command runs.
    from .. import main

    return main


def _body(args: argparse.Namespace, options: dict[str, str]) -> dict[str, str]:
    return {
        field: getattr(args, opt)
        for opt, field in options.items()
        if getattr(args, opt) is not None
    }


def _text(title: str, values: dict[str, Any], changed: dict | None) -> str:
    lines = [title]
    for field, label in LABELS.items():
        if field in values:
            value = values.get(field) or "(default)"
            mark = " (changed)" if changed and field in changed else ""
            lines.append(f"  {label:<13}{value}{mark}")
    if changed == {}:
        lines.append("Nothing changed.")
    return "\n".join(lines)


def cmd_experiment_placement(args: argparse.Namespace, out) -> int:
    body = _body(args, {**OPTIONS, "avoid": "batch_avoid_partitions"})
    with _main()._api() as api:
        if not body:
            answer = api.get(f"/experiments/{args.slug}/")
            changed = None
        else:
            answer = api.post(f"/experiments/{args.slug}/placement/", body)
            changed = answer.get("changed", {})
    out.emit(answer, _text(f"{args.slug}: where its work runs", answer, changed))
    return Exit.OK


def cmd_campaign_placement(args: argparse.Namespace, out) -> int:
    body = _body(args, OPTIONS)
    with _main()._api() as api:
        campaign = _main().find_campaign(api, args.name, args.experiment)
        if body:
            if args.reason:
                body["reason"] = args.reason
            campaign = api.call("PATCH", f"/campaigns/{campaign['id']}/", json=body)
    changed = {k: v for k, v in body.items() if k != "reason"} if body else None
    out.emit(campaign, _text(f"{campaign['name']}: where its work runs", campaign, changed))
    return Exit.OK


# --- partitions --------------------------------------------------------------------------


def _quota_text(quota: dict) -> str:
    parts = []
    if quota.get("max_jobs") is not None:
        parts.append(f"at most {quota['max_jobs']} jobs")
    if quota.get("share_pct") is not None:
        parts.append(f"{quota['share_pct']} % of the capacity")
    return f"{quota['experiment']}: {' and '.join(parts)} (limit {quota['limit']})"


def _partition_text(p: dict) -> str:
    line = f"{p['backend']}:{p['name']}  capacity {p['capacity']}, in flight {p['in_flight']}" + (
        f" - {p['description']}" if p.get("description") else ""
    )
    return "\n".join([line, *(f"    {_quota_text(q)}" for q in p.get("quotas", []))])


def cmd_partitions_list(args: argparse.Namespace, out) -> int:
    with _main()._api() as api:
        items = list(api.pages("/partitions/", backend=args.backend))
    out.emit(items, "\n".join(_partition_text(p) for p in items) if items else "No partitions.")
    return Exit.OK


def _find_partition(api, name: str, backend: str) -> dict | None:
    for item in api.pages("/partitions/", backend=backend, name=name):
        if item["name"] == name and item["backend"] == backend:
            return item
    return None


def cmd_partitions_set(args: argparse.Namespace, out) -> int:
    body: dict[str, Any] = {"capacity": args.capacity}
    if args.description is not None:
        body["description"] = args.description
    if args.reason:
        body["reason"] = args.reason
    with _main()._api() as api:
        found = _find_partition(api, args.name, args.backend)
        if found is None:
            answer = api.post("/partitions/", {**body, "name": args.name, "backend": args.backend})
        else:
            answer = api.call("PATCH", f"/partitions/{found['id']}/", json=body)
    out.emit(answer, _partition_text(answer))
    return Exit.OK


def cmd_partitions_remove(args: argparse.Namespace, out) -> int:
    with _main()._api() as api:
        found = _find_partition(api, args.name, args.backend)
        if found is None:
            raise CliError(Exit.REFUSED, f"no partition {args.backend}:{args.name}", status=404)
        query = f"?reason={args.reason}" if args.reason else ""
        api.call("DELETE", f"/partitions/{found['id']}/{query}")
    out.emit({"removed": found["id"]}, f"Removed {args.backend}:{args.name}.")
    return Exit.OK


def cmd_partitions_quota(args: argparse.Namespace, out) -> int:
    if not args.clear and args.max_jobs is None and args.share is None:
        raise CliError(Exit.USAGE, "give --max-jobs, --share or both, or --clear")
    if args.clear and (args.max_jobs is not None or args.share is not None):
        raise CliError(Exit.USAGE, "--clear takes no --max-jobs or --share")
    body: dict[str, Any] = {
        "experiment": args.experiment_slug,
        "max_jobs": args.max_jobs,
        "share_pct": args.share,
    }
    if args.reason:
        body["reason"] = args.reason
    with _main()._api() as api:
        found = _find_partition(api, args.name, args.backend)
        if found is None:
            raise CliError(Exit.REFUSED, f"no partition {args.backend}:{args.name}", status=404)
        answer = api.post(f"/partitions/{found['id']}/quota/", body)
    out.emit(answer, _partition_text(answer))
    return Exit.OK


def _placement_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--partition", help="Slurm partition ('' for the default)")
    parser.add_argument("--account", help="Slurm account, HTCondor accounting group")
    parser.add_argument("--qos", help="Slurm QOS")
    parser.add_argument("--requirements", help="HTCondor requirements (a ClassAd expression)")


def register(
    commands: argparse._SubParsersAction, csub: argparse._SubParsersAction, common
) -> None:
    """``opos experiments placement``, ``opos campaigns placement``, ``opos partitions``."""
    experiments = commands.add_parser("experiments", parents=[common], help="experiments")
    esub = experiments.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    eplace = esub.add_parser(
        "placement", parents=[common], help="where an experiment's work runs (operators change it)"
    )
    eplace.add_argument("slug", metavar="SLUG", help="the experiment's slug")
    _placement_options(eplace)
    eplace.add_argument("--avoid", help="partitions its work must never run in, comma-separated")
    eplace.set_defaults(func=cmd_experiment_placement)

    cplace = csub.add_parser(
        "placement", parents=[common], help="where a campaign's work runs (its own override)"
    )
    cplace.add_argument("name", metavar="NAME", help="campaign name (or id)")
    cplace.add_argument("--experiment", help="needed when several experiments use the name")
    _placement_options(cplace)
    cplace.add_argument("--reason", "-m", help="why (recorded)")
    cplace.set_defaults(func=cmd_campaign_placement)

    partitions = commands.add_parser(
        "partitions", parents=[common], help="batch partitions: capacity and quotas"
    )
    psub = partitions.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    plist = psub.add_parser("list", parents=[common], help="partitions, capacity, quotas")
    plist.add_argument("--backend", help="a batch endpoint: slurm, htcondor, local or a named one")
    plist.set_defaults(func=cmd_partitions_list)

    def named(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", metavar="NAME", help="the partition's name at the batch system")
        parser.add_argument(
            "--backend", default="slurm", help="the batch endpoint (slurm-b, ...); default: slurm"
        )
        parser.add_argument("--reason", "-m", help="why (recorded)")

    pset = psub.add_parser("set", parents=[common], help="declare a partition or change it")
    named(pset)
    pset.add_argument("--capacity", type=int, required=True, help="jobs in flight at most")
    pset.add_argument("--description")
    pset.set_defaults(func=cmd_partitions_set)
    premove = psub.add_parser("remove", parents=[common], help="forget a partition's limits")
    named(premove)
    premove.set_defaults(func=cmd_partitions_remove)
    pquota = psub.add_parser("quota", parents=[common], help="an experiment's quota on a partition")
    named(pquota)
    pquota.add_argument("experiment_slug", metavar="EXPERIMENT", help="the experiment's slug")
    pquota.add_argument("--max-jobs", type=int, help="jobs in flight at most")
    pquota.add_argument("--share", type=int, metavar="PCT", help="percent of the capacity")
    pquota.add_argument("--clear", action="store_true", help="remove the quota")
    pquota.set_defaults(func=cmd_partitions_quota)
