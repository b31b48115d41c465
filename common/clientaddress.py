"""The address a request came from, believing a forwarded header only from our own proxies.

``X-Forwarded-For`` is whatever the client chose to send, plus one address appended by each
proxy it passed. Only the entries appended by proxies we run can be believed, so the header
is read only when the connection itself comes from a configured proxy
(``OPOS_TRUSTED_PROXIES``), and then only ``OPOS_PROXY_HOPS`` entries from the right: the
client's own entries further left never count. Sign-in lockouts and the API's rate limits
key on this address, so rotating the header gains an attacker nothing.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address, networks: tuple[Network, ...]) -> bool:
    return address is not None and any(address in net for net in networks)


def client_address(request: HttpRequest) -> str:
    """The client's IP address (``REMOTE_ADDR`` unless a trusted proxy forwarded it)."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    networks = _networks(tuple(getattr(settings, "OPOS_TRUSTED_PROXIES", ()) or ()))
    hops = int(getattr(settings, "OPOS_PROXY_HOPS", 0) or 0)
    if not networks or hops <= 0 or not _trusted(_address(remote), networks):
        return remote
    chain = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part]
    client = remote
    for _ in range(hops):
        if not chain:
            break
        address = _address(chain.pop())
        if address is None:
            # A proxy of ours wrote something that is not an address: fall back to the
            # last address we can vouch for rather than believe it.
            return client
        client = str(address)
        if not _trusted(address, networks):
            break
    return client
