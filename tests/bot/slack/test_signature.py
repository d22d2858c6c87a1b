"""bot.slack.signature computes the signature slack-sdk's SignatureVerifier computes."""

from __future__ import annotations

import random

from slack_sdk.signature import SignatureVerifier

from bot.slack.signature import PIECE, SlackSignature

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def test_same_signature_as_slack_sdk_for_bodies_of_every_size() -> None:
    rng = random.Random(13)
    ours, sdk = SlackSignature(SECRET), SignatureVerifier(SECRET)
    sizes = [0, 1, PIECE - 1, PIECE, PIECE + 1, 2 * PIECE, 3400, 10_000]
    sizes += [rng.randrange(0, 20_000) for _ in range(200)]
    for size in sizes:
        text = "".join(rng.choice("aé€😀&=%+ \n") for _ in range(size))
        body = text.encode("utf-8")
        timestamp = str(rng.randrange(1_500_000_000, 1_900_000_000))
        expected = sdk.generate_signature(timestamp=timestamp, body=body)
        assert ours.expected(timestamp, body) == expected
        assert ours.matches(body, timestamp, expected)


def test_a_changed_body_timestamp_or_secret_does_not_match() -> None:
    body = b"payload=" + b"x" * 5000
    signature = SignatureVerifier(SECRET).generate_signature(timestamp="1700000000", body=body)
    assert signature is not None
    ours = SlackSignature(SECRET)
    assert ours.matches(body, "1700000000", signature)
    assert not ours.matches(body + b"y", "1700000000", signature)
    assert not ours.matches(body[:-1] + b"y", "1700000000", signature)
    assert not ours.matches(body, "1700000001", signature)
    assert not SlackSignature(SECRET + "x").matches(body, "1700000000", signature)
