"""Every URL pattern of the project, found by walking the resolver (new ones included)."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver


@dataclass(frozen=True)
class Route:
    """One URL pattern: its full name (``namespace:name``) and the pattern text."""

    name: str
    pattern: str
    params: tuple[str, ...]

    @property
    def format_suffix(self) -> bool:
        """A DRF ``.json``-style twin of another route (``format`` parameter)."""
        return "format" in self.params


def _params(pattern) -> tuple[str, ...]:
    regex = pattern.regex
    return tuple(sorted(regex.groupindex))


def walk(resolver: URLResolver | None = None, prefix: str = "", namespace: str = "") -> list[Route]:
    """All leaf patterns under ``resolver`` (the project's root by default)."""
    resolver = resolver or get_resolver()
    routes: list[Route] = []
    for entry in resolver.url_patterns:
        text = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            ns = ":".join(filter(None, [namespace, entry.namespace or ""]))
            for route in walk(entry, text, ns):
                params = tuple(sorted({*route.params, *_params(entry.pattern)}))
                routes.append(Route(route.name, route.pattern, params))
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace else str(entry.name)
            routes.append(Route(name, text, _params(entry.pattern)))
    return routes
