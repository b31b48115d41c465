"""``opos code register|approve|list`` and ``opos templates import|export|clone``.

Operators' records over the REST API (``/api/v1/code/``, ``/api/v1/templates/``): the
server applies the same checks as its browser forms and records each change in its audit
trail; its refusals are printed field by field (exit 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import render
from ..errors import CliError, Exit
from . import lookup

CODE_KINDS = ("script", "config")
MAX_FILE_BYTES = 20 * 1024 * 1024  # the server's limit for a file it checksums


def _read_text(path: str, what: str) -> str:
    """A local text file (``-``: standard input); a problem with it is a usage error."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(Exit.USAGE, f"cannot read the {what} {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise CliError(Exit.USAGE, f"the {what} {path} is not UTF-8 text") from exc


# --- production code ------------------------------------------------------------------------


def cmd_code_register(args: argparse.Namespace, out) -> int:
    fields = {
        "experiment": args.experiment,
        "name": args.name,
        "version": args.version,
        "kind": args.kind,
        "location": args.location,
        "sha256": args.sha256 or "",
        "owners": args.owner or [],
        "approve": args.approve,
    }
    with lookup.api() as api:
        if args.file:
            path = Path(args.file)
            try:
                size = path.stat().st_size
                if size > MAX_FILE_BYTES:
                    raise CliError(
                        Exit.USAGE,
                        f"{path} is larger than {MAX_FILE_BYTES:,} bytes: "
                        "give --sha256 instead of --file",
                    )
                content = path.read_bytes()
            except OSError as exc:
                raise CliError(Exit.USAGE, f"cannot read {path}: {exc.strerror}") from exc
            # Multipart, as the browser form sends it: the server checksums the file
            # (and checks it against --sha256 when both are given); it does not keep it.
            form = {k: v for k, v in fields.items() if k not in ("owners", "approve")}
            form["approve"] = "true" if args.approve else "false"
            form["owners"] = fields["owners"]
            code = api.call(
                "POST",
                "/code/",
                data=form,
                files={"upload": (path.name, content, "application/octet-stream")},
            )
        else:
            code = api.post("/code/", fields)
    state = "registered and approved" if code.get("approved") else "registered"
    out.emit(
        code,
        f"{code.get('name')} {code.get('version')} {state} for {code.get('experiment')} "
        f"(id {code.get('id')}, sha256 {code.get('sha256') or '-'}).",
    )
    return Exit.OK


def cmd_code_approve(args: argparse.Namespace, out) -> int:
    with lookup.api() as api:
        code = api.post(f"/code/{args.id}/approve/", {})
    out.emit(code, f"{code.get('name')} {code.get('version')} approved.")
    return Exit.OK


def cmd_code_list(args: argparse.Namespace, out) -> int:
    with lookup.api() as api:
        items = list(api.pages("/code/", search=args.search, limit=args.limit))
    rows = [
        (
            c.get("id"),
            c.get("experiment"),
            c.get("name"),
            c.get("version"),
            "yes" if c.get("approved") else "no",
            ",".join(c.get("owners") or []) or "-",
            (c.get("sha256") or "-")[:16],
        )
        for c in items
    ]
    headers = ("ID", "EXPERIMENT", "NAME", "VERSION", "APPROVED", "OWNERS", "SHA256")
    out.emit(items, render.table(rows, headers) if items else "No production code.")
    return Exit.OK


# --- workflow templates -----------------------------------------------------------------------


def _template_line(template: dict) -> str:
    owner = template.get("experiment") or "shared"
    stages = len(template.get("stages") or [])
    return (
        f"{template.get('name')} v{template.get('version')} ({owner}, id {template.get('id')},"
        f" {stages} stage{'s' if stages != 1 else ''})"
    )


def cmd_templates_import(args: argparse.Namespace, out) -> int:
    document = _read_text(args.file, "template file")
    if not document.strip():
        raise CliError(Exit.USAGE, f"the template file {args.file} is empty")
    with lookup.api() as api:
        template = api.post(
            "/templates/import/", {"experiment": args.experiment, "document": document}
        )
    out.emit(template, f"Imported {_template_line(template)}.")
    return Exit.OK


def cmd_templates_export(args: argparse.Namespace, out) -> int:
    with lookup.api() as api:
        template = lookup.template(api, args.template, args.experiment, args.version)
        exported = api.get(f"/templates/{template['id']}/export/")
    document = exported.get("document", "")
    if args.output and args.output != "-":
        try:
            Path(args.output).write_text(document, encoding="utf-8")
        except OSError as exc:
            raise CliError(Exit.USAGE, f"cannot write {args.output}: {exc.strerror}") from exc
        out.emit(
            {**exported, "output": args.output},
            f"Exported {template['name']} v{template['version']} to {args.output}.",
        )
    elif out.as_json:
        out.emit(exported, document)
    else:
        sys.stdout.write(document)
    return Exit.OK


def cmd_templates_clone(args: argparse.Namespace, out) -> int:
    with lookup.api() as api:
        template = lookup.template(api, args.template, args.experiment, args.version)
        answer = api.post(
            f"/templates/{template['id']}/clone/", {"experiment": args.into, "name": args.name}
        )
    lines = [f"Cloned into {_template_line(answer['template'])}."]
    lines += [f"  warning: {w}" for w in answer.get("warnings") or []]
    out.emit(answer, "\n".join(lines))
    return Exit.OK


# --- parser ---------------------------------------------------------------------------------


def _template_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("template", metavar="TEMPLATE", help="template name (or id)")
    parser.add_argument(
        "--experiment", help="owner of the name when several have it (slug, or 'shared')"
    )
    parser.add_argument("--version", type=int, help="default: the latest version")


def register(commands, common: argparse.ArgumentParser) -> None:
    """Add ``code`` and ``templates`` to the ``opos`` parser."""
    code = commands.add_parser("code", parents=[common], help="registered production code")
    sub = code.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    reg = sub.add_parser(
        "register", parents=[common], help="register a version of a script or configuration"
    )
    reg.add_argument("--experiment", "-e", required=True, help="experiment slug")
    reg.add_argument("--name", required=True, help="e.g. genie_gen.sh")
    reg.add_argument("--version", required=True, help="e.g. 1.2")
    reg.add_argument("--location", required=True, help="path or URL of the file")
    reg.add_argument("--kind", choices=CODE_KINDS, default="script")
    reg.add_argument("--sha256", help="64 hex digits (or give --file to have it computed)")
    reg.add_argument(
        "--file", help="the file, sent only to compute its sha256 (not stored; up to 20 MB)"
    )
    reg.add_argument(
        "--owner", action="append", help="a liaison of the experiment who controls the file"
    )
    reg.add_argument(
        "--approve", action="store_true", help="approve at once (needs a sha256 and owners)"
    )
    reg.set_defaults(func=cmd_code_register)
    approve = sub.add_parser("approve", parents=[common], help="approve a registered version")
    approve.add_argument("id", metavar="ID", type=int, help="its id (opos code list)")
    approve.set_defaults(func=cmd_code_approve)
    listing = sub.add_parser("list", parents=[common], help="registered production code")
    listing.add_argument("--search", help="name, version or experiment")
    listing.add_argument("--limit", type=int, default=200, help="at most this many (default 200)")
    listing.set_defaults(func=cmd_code_list)

    templates = commands.add_parser("templates", parents=[common], help="workflow templates")
    tsub = templates.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    imp = tsub.add_parser("import", parents=[common], help="create a template from its YAML")
    imp.add_argument("file", metavar="FILE", help="the YAML document (- for stdin)")
    imp.add_argument("--experiment", "-e", help="experiment slug (default: a shared template)")
    imp.set_defaults(func=cmd_templates_import)
    exp = tsub.add_parser("export", parents=[common], help="a template as YAML")
    _template_arguments(exp)
    exp.add_argument("--output", "-o", help="write to this file (default: standard output)")
    exp.set_defaults(func=cmd_templates_export)
    clone = tsub.add_parser(
        "clone", parents=[common], help="copy a template into an experiment (next version)"
    )
    _template_arguments(clone)
    clone.add_argument("--into", required=True, help="slug of the experiment to clone into")
    clone.add_argument("--name", default="", help="a new name (default: the same)")
    clone.set_defaults(func=cmd_templates_clone)
