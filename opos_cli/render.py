"""Plain-text output: tables, a request's details, a campaign's progress bar and ETA."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

STATUS_LABELS = {
    "on_track": "on track",
    "at_risk": "at risk",
    "late": "late",
    "done": "done",
    "on_hold": "on hold",
    "blocked": "BLOCKED",
}


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Left-aligned columns; the last column is never padded (titles can be long)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def request_rows(items: list[dict]) -> str:
    rows = [
        (
            r.get("number"),
            r.get("state"),
            r.get("experiment"),
            r.get("physics_group"),
            r.get("deadline"),
            r.get("priority"),
            r.get("title"),
        )
        for r in items
    ]
    return table(rows, ("NUMBER", "STATE", "EXPERIMENT", "GROUP", "DEADLINE", "PRIORITY", "TITLE"))


def request_detail(r: dict, history: list[dict] | None = None) -> str:
    lines = [
        f"{r.get('number')}  {r.get('title')}",
        f"  state       {r.get('state')}"
        + (f" (held from {r['held_from']}: {r.get('hold_reason')})" if r.get("held_from") else ""),
        f"  experiment  {r.get('experiment')} / {r.get('physics_group')}",
        f"  ticket      {r.get('ticket')}",
        f"  deadline    {r.get('deadline')}   priority {r.get('priority')}",
        f"  requester   {r.get('requester') or '-'}   assignee {r.get('assignee') or '-'}",
    ]
    if r.get("hold_seconds"):
        lines.append(f"  on hold     {duration(r['hold_seconds'])} in all")
    if r.get("allowed_actions"):
        lines.append(f"  you may     {', '.join(r['allowed_actions'])}")
    if r.get("description"):
        lines += ["", *[f"  {line}" for line in str(r["description"]).splitlines()]]
    samples = r.get("samples") or []
    lines += ["", f"Samples ({len(samples)})"]
    if samples:
        rows = [
            (
                s.get("name"),
                s.get("template"),
                f"{s.get('events', 0):,}",
                f"{s.get('events_per_job', 0):,}",
                s.get("output_dataset"),
            )
            for s in samples
        ]
        lines += [
            "  " + line
            for line in table(
                rows, ("NAME", "TEMPLATE", "EVENTS", "PER JOB", "OUTPUT")
            ).splitlines()
        ]
    if history is not None:
        lines += ["", "History"]
        for entry in history:
            when = str(entry.get("created", ""))[:16].replace("T", " ")
            who = entry.get("actor") or "system"
            if entry.get("kind") == "comment":
                what = f"comment: {entry.get('text')}"
            elif entry.get("kind") == "edit":
                what = f"edit: {', '.join(sorted((entry.get('changes') or {}).keys()))}"
            else:
                what = (
                    f"{entry.get('action')}: {entry.get('from_state')} -> {entry.get('to_state')}"
                )
                if entry.get("text"):
                    what += f" ({entry['text']})"
            lines.append(f"  {when}  {who:<12} {what}")
    return "\n".join(lines)


def campaign_rows(items: list[dict]) -> str:
    rows = [
        (
            c.get("id"),
            c.get("name"),
            c.get("experiment"),
            c.get("state"),
            c.get("deadline"),
            c.get("priority", ""),
        )
        for c in items
    ]
    return table(rows, ("ID", "NAME", "EXPERIMENT", "STATE", "DEADLINE", "PRIORITY"))


def duration(seconds: float) -> str:
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m"


def parse_moment(value: Any) -> dt.datetime | None:
    """An ISO date-time from the API (``Z`` or offset), or a date meaning the end of that day."""
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if len(text) == 10:  # a date: a deadline day counts until its end
        moment = moment + dt.timedelta(days=1)
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the server's naive times are taken as local
    return moment


def bar(fraction: float, width: int = 40, unicode: bool = True) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    full, empty = ("█", "░") if unicode else ("#", "-")
    filled = round(fraction * width)
    return f"[{full * filled}{empty * (width - filled)}]"


def progress(
    campaign: dict, p: dict, *, unicode: bool = True, now: dt.datetime | None = None
) -> str:
    """The progress block: bar, events, jobs, throughput, ETA with its band, vs the deadline."""
    now = now or dt.datetime.now(dt.UTC)
    done, target = p.get("events_done") or 0, p.get("events_target") or 0
    fraction = done / target if target else 0.0
    head = f"{campaign.get('name')} ({campaign.get('experiment')})"
    if campaign.get("state"):
        head += f" · {campaign['state']}"
    lines = [
        head,
        f"{bar(fraction, unicode=unicode)} {fraction * 100:5.1f}%  {done:,} / {target:,} events",
    ]
    jobs = p.get("jobs") or {}
    if jobs:
        shown = [f"{state} {count:,}" for state, count in jobs.items() if count]
        lines.append("jobs      " + (" · ".join(shown) or "none yet"))
    rate = p.get("throughput_per_hour")
    lines.append("rate      " + (f"{rate:,.0f} events/h" if rate else "no throughput measured yet"))
    eta, low, high = (parse_moment(p.get(k)) for k in ("eta", "eta_low", "eta_high"))
    if eta is not None:
        text = f"ETA       {eta:%Y-%m-%d %H:%M %Z}".rstrip()
        text += f" (in {duration((eta - now).total_seconds())})" if eta > now else ""
        if low is not None and high is not None:
            text += f", between {low:%Y-%m-%d %H:%M} and {high:%Y-%m-%d %H:%M}"
        if p.get("basis") == "estimate":
            text += " [scheduler estimate: nothing finished yet]"
        lines.append(text)
    elif p.get("status") == "blocked":
        lines.append(f"ETA       unknown: blocked: {p.get('blocked_reason') or 'see the page'}")
    elif p.get("status") != "done":
        lines.append("ETA       not known yet")
    # The campaign's deadline is a day; the progress answer gives the moment it ends.
    deadline_value = campaign.get("deadline") or p.get("deadline")
    deadline = parse_moment(p.get("deadline") or campaign.get("deadline"))
    status = STATUS_LABELS.get(p.get("status") or "", p.get("status") or "")
    if deadline is not None:
        text = f"deadline  {deadline_value}"
        if status:
            text += f" · {status}"
        if eta is not None and p.get("status") != "done":
            margin = (deadline - eta).total_seconds()
            text += f", {duration(margin)} {'to spare' if margin >= 0 else 'late'}"
        lines.append(text)
    elif status:
        lines.append(f"status    {status}")
    lines += commitment_lines(p.get("commitments") or [])
    return "\n".join(lines)


def _short(moment: dt.datetime) -> str:
    return f"{moment:%b} {moment.day} {moment:%H:%M}"


def commitment_lines(commitments: list[dict]) -> list[str]:
    """'promised  50 %: promised Dec 2 12:00, forecast Dec 3 04:00, at risk' per promise."""
    lines = []
    for c in commitments:
        promised = parse_moment(c.get("promised_at"))
        if promised is None:
            continue
        actual, expected = parse_moment(c.get("actual_at")), parse_moment(c.get("forecast_at"))
        parts = [f"{c.get('label') or c.get('kind')}: promised {_short(promised)}"]
        if actual is not None:
            parts.append(f"reached {_short(actual)}")
        elif expected is not None:
            parts.append(f"forecast {_short(expected)}")
        else:
            parts.append("no forecast")
        parts.append(str(c.get("status") or "").replace("_", " "))
        lines.append(("promised  " if not lines else "          ") + ", ".join(parts))
    return lines
