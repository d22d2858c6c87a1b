"""Tamper-proof references: what a Slack button or modal is about (run id + interrupt id).

Slack echoes a button's ``value``, a select's ``block_id`` and a modal's ``private_metadata``
back to us untouched, but they travel through clients we do not control, so they are never
trusted: each carries only the ids, MAC'ed with a key derived from the signing secret::

    s1.<base64url(run_id)>.<base64url(interrupt_id)>.<base64url(HMAC-SHA256(key, ids)[:16])>

A reference that does not verify is refused before the engine is asked anything. Whether the
interrupt still waits (or exists at all) is then the engine's answer, never the reference's,
so an old but authentic reference can do no more than say "already decided".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from bot.errors import InvalidReference

__all__ = ["REF_VERSION", "Ref", "RefSigner"]

REF_VERSION = "s1"
MAC_BYTES = 16  # 128 bits: plenty against forgery, and keeps the reference short
# HMAC key derivation label: the same secret signs nothing else under this purpose.
_PURPOSE = b"signoff/slack-refs/v1"
# A select menu carries the reference in its block_id (255 characters at most).
MAX_REF_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Ref:
    """The interrupt a control refers to."""

    run_id: str
    interrupt_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        data = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise InvalidReference("not base64") from exc
    # The decoder ignores a final character's unused bits, so several strings decode alike;
    # accept only the canonical one, so that any altered reference is refused.
    if _b64(data) != text:
        raise InvalidReference("not canonical base64")
    return data


class RefSigner:
    """Signs and verifies references with a key derived from a secret.

    Args:
        secret: The Slack signing secret (or, in Socket Mode without one, the bot token).
            Rotating it invalidates the buttons of requests still waiting; their messages
            can be re-posted by the notifier.
    """

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        if not raw:
            raise ValueError("a reference signing secret must not be empty")
        # Derive a sub-key so the signing secret itself never keys anything but Slack's HMAC.
        self._key = hmac.new(raw, _PURPOSE, hashlib.sha256).digest()

    def _mac(self, run_id: str, interrupt_id: str) -> bytes:
        # The NUL separator makes ("ab", "c") and ("a", "bc") sign differently.
        message = f"{REF_VERSION}\x00{run_id}\x00{interrupt_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()[:MAC_BYTES]

    def sign(self, run_id: str, interrupt_id: str) -> str:
        """The reference for one interrupt.

        Raises:
            ValueError: if the result would not fit in a Slack ``block_id`` (255 characters).
        """
        ref = ".".join(
            (
                REF_VERSION,
                _b64(run_id.encode()),
                _b64(interrupt_id.encode()),
                _b64(self._mac(run_id, interrupt_id)),
            )
        )
        if len(ref) > MAX_REF_LENGTH:
            raise ValueError(
                f"interrupt id {interrupt_id!r} is too long to reference from Slack "
                f"({len(ref)} > {MAX_REF_LENGTH} characters)"
            )
        return ref

    def verify(self, ref: str | None) -> Ref:
        """The ids in ``ref`` if its MAC is right.

        Raises:
            InvalidReference: if the reference is missing, malformed, of another version, or
                its MAC does not match (tampered with, or signed with another secret).
        """
        if not ref:
            raise InvalidReference("missing")
        parts = ref.split(".")
        if len(parts) != 4:
            raise InvalidReference("malformed")
        version, run_b64, interrupt_b64, mac_b64 = parts
        if version != REF_VERSION:
            raise InvalidReference(f"unknown version {version!r}")
        try:
            run_id = _unb64(run_b64).decode()
            interrupt_id = _unb64(interrupt_b64).decode()
        except UnicodeDecodeError as exc:
            raise InvalidReference("not UTF-8") from exc
        if not hmac.compare_digest(_unb64(mac_b64), self._mac(run_id, interrupt_id)):
            raise InvalidReference("signature mismatch")
        return Ref(run_id=run_id, interrupt_id=interrupt_id)
