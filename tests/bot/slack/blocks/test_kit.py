"""Messages rendered as plain dicts (bot.slack.blocks.kit) are exactly what slack-sdk's
Block Kit models produce: each block, parsed by the models and serialised again with their
validating ``to_dict()``, comes back unchanged, and Slack's limits hold."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
    StaticSelectElement,
)

from bot.slack.blocks import kit
from bot.slack.blocks.render import (
    Message,
    render_cancelled_message,
    render_expired_message,
    render_outcome_message,
    render_progress_message,
    render_request_message,
    render_superseded_message,
    request_controls,
)
from tests.bot.slack.blocks.resume_models import ALL_MODELS
from tests.fakes.blockkit import check_message

WHEN = dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.UTC)
LONG = "x&<>" * 900  # escapes expand it: cut after escaping, at every limit
PAYLOADS: list[Any] = [
    None,
    {"service": "api", "replicas": 3},
    {"a": LONG, "b": [1, 2], "c": {"nested": LONG}},
    {f"field_{n}": "v" * (n * 37) + "&" for n in range(60)},  # over the block budget
    "just text",
    {"yes": True, "none": None, "empty": ""},
]


def corpus(model: type[BaseModel]) -> Iterator[Message]:
    """Every message kind for ``model``, over payloads with long texts and many fields."""
    for payload in PAYLOADS:
        for description in (None, "a *description* & <tags>", LONG):
            yield render_request_message(
                model=model,
                payload=payload,
                ref="signed.ref",
                workflow="Deploy " + LONG[:40],
                step="Approve" * 30,
                run_id="run-1",
                requester="U0REQUESTER",
                expires_at=WHEN,
                description=description,
            )
            yield render_progress_message(
                model=model,
                payload=payload,
                ref="signed.ref",
                workflow="W",
                step="S",
                run_id="run-1",
                approved_by=["U0A", "bob <b>"],
                required=3,
                requester="not an id &",
                description=description,
            )
        answer = {"approved": True, "reason": LONG, "severity": "high", "region": "us-east-1"}
        for response in ({}, answer):
            yield render_outcome_message(
                model=model,
                response=response,
                decided_by=["U0X", "U0Y"],
                decided_at=WHEN,
                workflow="",
                step="S",
                run_id="r" * 200,
                payload=payload,
                requester="U0R",
            )
        yield render_expired_message(
            workflow="W", step="S", run_id="r", expired_at=WHEN, payload=payload, note=LONG
        )
        yield render_cancelled_message(
            workflow="W",
            step="",
            run_id="r",
            cancelled_at=WHEN,
            cancelled_by="U0C",
            reason="why & <",
            payload=payload,
        )
        yield render_superseded_message(workflow="", step="S", run_id="r", payload=payload)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_rendered_blocks_are_what_slack_sdk_models_serialise(model: type[BaseModel]) -> None:
    for message in corpus(model):
        blocks = message.to_dict()["blocks"]
        assert check_message(blocks) == []
        for block in blocks:
            parsed = Block.parse(block)
            assert parsed is not None
            assert parsed.to_dict() == block  # to_dict() validates, as it did per message


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_request_controls_match_the_message_controls(model: type[BaseModel]) -> None:
    message = render_request_message(
        model=model, payload=None, ref="signed.ref", workflow="W", step="S", run_id="r"
    )
    in_message = message.blocks[-1]
    controls = request_controls(model, "signed.ref", block_id="home_0").to_dict()
    assert controls["elements"] == in_message["elements"]


def test_builders_equal_the_slack_sdk_objects() -> None:
    cases: list[tuple[dict[str, Any], Any]] = [
        (kit.header("h"), HeaderBlock(text="h")),
        (kit.section("t"), SectionBlock(text=MarkdownTextObject(text="t"))),
        (kit.section(fields=["a", "b"]), SectionBlock(fields=["a", "b"])),
        (kit.context("a", "b"), ContextBlock(elements=[MarkdownTextObject(text=t) for t in "ab"])),
        (
            kit.actions(
                [kit.button("A", "a", "v", "primary"), kit.button("B", "b", "v")], block_id="x"
            ),
            ActionsBlock(
                block_id="x",
                elements=[
                    ButtonElement(text="A", action_id="a", value="v", style="primary"),
                    ButtonElement(text="B", action_id="b", value="v"),
                ],
            ),
        ),
        (
            kit.static_select("s", "Pick", [kit.option("One", "1")]),
            StaticSelectElement(
                action_id="s", placeholder="Pick", options=[Option(value="1", text="One")]
            ),
        ),
    ]
    for built, model in cases:
        assert built == model.to_dict()
