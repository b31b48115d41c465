"""Signing of webhook calls: HMAC-SHA256 of the raw body with the shared secret.

The desk (a ServiceNow business rule or flow with an outbound REST step)
sends ``X-OPOS-Signature: sha256=<hex digest of the body>``. The signature
covers the exact bytes received, so the body is checked before it is parsed.
A replayed call can only ask for a pull of a ticket, which is idempotent.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-OPOS-Signature"


def sign_body(body: bytes, secret: str) -> str:
    """The header value for ``body``: ``sha256=<hex>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_valid(body: bytes, header: str | None, secret: str) -> bool:
    """Constant-time check of a signature header; False without a secret or a header."""
    if not secret or not header:
        return False
    expected = sign_body(body, secret).encode()
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))
