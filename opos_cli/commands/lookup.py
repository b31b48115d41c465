"""Finding what a command names (a campaign, a request, a template) and opening the session.

The campaign and request lookups are main's own (one behaviour for every command); they are
imported when a command runs because ``main`` imports the command modules to build its parser.
"""

from __future__ import annotations

from typing import Any

from .. import config
from ..client import Api
from ..errors import CliError, Exit


def api() -> Api:
    """A client of the server of the stored session (or ``OPOS_URL``/``OPOS_TOKEN``)."""
    session = config.load()
    return Api(session.url, session.token)


def campaign(client: Api, name: str, experiment: str | None) -> dict:
    from ..main import find_campaign

    return find_campaign(client, name, experiment)


def request(client: Api, number: str) -> dict:
    from ..main import find_request

    return find_request(client, number)


def template(
    client: Api, name: str, experiment: str | None = None, version: int | None = None
) -> dict:
    """A workflow template by id, or by name (its latest version unless ``version``);
    ``experiment`` (a slug, or ``shared``) picks among several owners of the name."""
    if name.isdigit():
        return client.get(f"/templates/{name}/")
    params: dict[str, Any] = {"name": name}
    if experiment == "shared":
        params["shared"] = "true"
    elif experiment:
        params["experiment"] = experiment
    found = [
        t
        for t in client.pages("/templates/", **params)
        if t.get("name") == name and (version is None or t.get("version") == version)
    ]
    if not found:
        wanted = f"{name!r}" + (f" v{version}" if version else "")
        raise CliError(
            Exit.REFUSED, f"no workflow template {wanted} (or you may not see it)", status=404
        )
    owners = sorted({str(t.get("experiment") or "shared") for t in found})
    if len(owners) > 1:
        raise CliError(
            Exit.USAGE,
            f"{name!r} names templates of several owners ({', '.join(owners)}): add --experiment",
        )
    return max(found, key=lambda t: t.get("version") or 0)
