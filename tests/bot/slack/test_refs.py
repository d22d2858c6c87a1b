"""Signed references: what buttons and modals carry instead of trusted data."""

from __future__ import annotations

import pytest

from bot.errors import InvalidReference
from bot.slack.refs import RefSigner

SIGNER = RefSigner("signing-secret")


def test_a_signed_reference_verifies_to_its_ids() -> None:
    ref = SIGNER.sign("0f3a9c", "1:approve#0")

    found = SIGNER.verify(ref)

    assert (found.run_id, found.interrupt_id) == ("0f3a9c", "1:approve#0")
    assert ref.startswith("s1.") and len(ref) < 100


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r[:-1] + ("A" if r[-1] != "A" else "B"),  # MAC altered
        lambda r: ".".join(
            [*r.split(".")[:1], SIGNER.sign("other", "x").split(".")[1], *r.split(".")[2:]]
        ),  # fmt: skip  # run id swapped
        lambda r: r.replace("s1.", "s2.", 1),  # unknown version
        lambda r: r + ".extra",  # malformed
        lambda r: "",  # missing
        lambda r: "s1.!!!.@@@.###",  # not base64
    ],
)
def test_any_change_to_a_reference_is_refused(change: object) -> None:
    ref = SIGNER.sign("run-1", "approve#0")

    with pytest.raises(InvalidReference):
        SIGNER.verify(change(ref))  # type: ignore[operator]


def test_a_reference_signed_with_another_secret_is_refused() -> None:
    ref = RefSigner("another-secret").sign("run-1", "approve#0")

    with pytest.raises(InvalidReference, match="signature mismatch"):
        SIGNER.verify(ref)


def test_ids_are_bound_together_so_parts_cannot_be_shifted() -> None:
    # ("ab", "c") and ("a", "bc") must not share a MAC.
    first = SIGNER.sign("ab", "c").split(".")[-1]
    second = SIGNER.sign("a", "bc").split(".")[-1]

    assert first != second


def test_a_reference_too_long_for_a_block_id_is_refused_when_signing() -> None:
    with pytest.raises(ValueError, match="too long"):
        SIGNER.sign("r" * 32, "i" * 200)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        RefSigner("")
