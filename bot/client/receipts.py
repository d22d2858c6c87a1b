"""Signed decision receipts: what a person was shown, what they answered, who, and when.

Shared by the server (which signs) and the client (which verifies); pure functions with
no dependencies beyond the standard library.

A receipt is ``{"payload": "<canonical JSON>", "signature": "v1,<base64>"}``. The payload
holds the request id, its status, ``shown`` (title, text, fields and the response schema,
exactly as rendered), ``digest`` (SHA-256 of ``shown`` as canonical JSON), the answer,
every response (actor, approval, time), who decided and when. The signature is
HMAC-SHA256 over the payload's UTF-8 bytes with the callback secret (``whsec_`` + base64,
the Standard Webhooks format), so anyone holding the secret can check it, with or
without this module (``openssl dgst -sha256 -mac HMAC ...``, see docs/requests.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "RECEIPT_VERSION",
    "canonical_json",
    "digest_of",
    "secret_bytes",
    "shown_of",
    "sign_payload",
    "verify_signature",
]

RECEIPT_VERSION = 1
_PREFIX = "whsec_"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no spaces and unescaped Unicode: one text per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def shown_of(
    title: str, text: str, fields: Mapping[str, Any], response_schema: Mapping[str, Any]
) -> dict[str, Any]:
    """What a person is shown for a request: the part of it a decision is bound to."""
    return {
        "title": title,
        "text": text,
        "fields": dict(fields),
        "response_schema": dict(response_schema),
    }


def digest_of(shown: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of ``shown`` as canonical JSON."""
    return "sha256:" + hashlib.sha256(canonical_json(shown).encode()).hexdigest()


def secret_bytes(secret: str | bytes) -> bytes:
    """The key of a ``whsec_<base64>`` secret (as Standard Webhooks reads it)."""
    if isinstance(secret, bytes):
        return secret
    raw = secret.removeprefix(_PREFIX)
    return base64.b64decode(raw + "==")


def sign_payload(payload: str, secret: str | bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``payload`` with ``secret``."""
    mac = hmac.new(secret_bytes(secret), payload.encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_signature(payload: str, signature: str | None, secret: str | bytes) -> bool:
    """True if ``signature`` (one or several space-separated ``v1,...``) signs ``payload``."""
    if not signature:
        return False
    expected = sign_payload(payload, secret)
    return any(hmac.compare_digest(expected, part) for part in signature.split())
