"""Taking a decision as the browser does: its decision page first (what it would do to
everyone else), then the page's go-ahead form, posted with the effect it showed."""

from __future__ import annotations

import html as html_lib
import re


def go_ahead(page) -> tuple[str, dict[str, str]]:
    """The go-ahead form of a decision page: where it posts and its hidden fields."""
    text = page.content.decode()
    assert 'id="go-heading"' in text, "the decision page offers no go-ahead"
    form = text[text.index('id="go-heading"') :]
    action = re.search(r'<form method="post" action="([^"]+)"', form).group(1)
    fields = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form)
    values: dict[str, list[str]] = {}
    for name, value in fields:
        values.setdefault(name, []).append(html_lib.unescape(value))
    return action, {k: v[0] if len(v) == 1 else v for k, v in values.items()}


def decide(client, decision_page: str, query: dict | None = None, follow=False, **typed):
    """Open ``decision_page`` (with ``query``), then post its go-ahead with ``typed`` (a
    note, a reason) as the operator would; the go-ahead's answer."""
    page = client.get(decision_page, query or {})
    assert page.status_code == 200, page.content[:500]
    action, fields = go_ahead(page)
    return client.post(action, {**fields, **typed}, follow=follow)
