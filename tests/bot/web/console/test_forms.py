"""The answer form on the web: the same fields, buttons and error messages as in Slack."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import MultiDict, MultiDictProxy
from pydantic import BaseModel

from bot.errors import InvalidSubmission
from bot.slack.blocks.forms import Shape
from bot.web.console.forms import parse_answer, web_form
from tests.bot.slack.blocks.resume_models import (
    Acknowledge,
    Approval,
    ApprovalWithReason,
    Everything,
    PickRegion,
    Triage,
)
from tests.bot.slack.blocks.test_parse import AT, EVERYTHING_ANSWERS, errors_of, submit

WEB_ANSWERS: list[tuple[str, str]] = [
    ("reason", "Routine rollout"),
    ("notes", "Watch the error rate"),
    ("summary", "Line one\nLine two"),
    ("replicas", "4"),
    ("ratio", "0.25"),
    ("amount", "12.50"),
    ("confirm", "true"),
    ("environment", "production"),
    ("region", "eu-west-1"),
    ("tags", "low"),
    ("tags", "high"),
    ("regions", "us-east-1"),
    ("regions", "ap-south-1"),
    ("start", "2030-05-06"),
    ("at", AT.strftime("%Y-%m-%dT%H:%M")),
    ("window", "18:45"),
    ("runbook", "https://runbooks.example.com/deploy"),
    ("owner", "U0OWNER"),
    ("reviewers", "U0R1, U0R2"),
    ("announce_in", "C0ANNOUNCE"),
    ("also_in", "C0A G0B"),
    ("nickname", "blue"),
]


def form(pairs: list[tuple[str, str]], **replace: str | None) -> MultiDictProxy[str]:
    kept = [(k, v) for k, v in pairs if k not in replace]
    kept += [(k, v) for k, v in replace.items() if v is not None]
    return MultiDictProxy(MultiDict(kept))


def web_errors(model: type[BaseModel], data: MultiDictProxy[str]) -> dict[str, str]:
    with pytest.raises(InvalidSubmission) as caught:
        parse_answer(model, data)
    return caught.value.errors


def test_every_field_type_gives_the_same_answer_as_the_slack_modal() -> None:
    assert parse_answer(Everything, form(WEB_ANSWERS)) == submit(Everything, EVERYTHING_ANSWERS)


@pytest.mark.parametrize(
    ("web", "slack"),
    [
        pytest.param({"reason": "x" * 101}, {"reason": "x" * 101}, id="too-long"),
        pytest.param({"replicas": "11"}, {"replicas": "11"}, id="above-max"),
        pytest.param({"replicas": "2.5"}, {"replicas": "2.5"}, id="fraction"),
        pytest.param({"ratio": "1"}, {"ratio": "1"}, id="exclusive-bound"),
        pytest.param({"amount": "2.555"}, {"amount": "2.555"}, id="decimal-places"),
        pytest.param({"owner": None}, {"owner": None}, id="missing"),
        pytest.param({"confirm": None}, {"confirm": None}, id="unanswered-yes-no"),
        pytest.param({"runbook": "not a url"}, {"runbook": "not a url"}, id="url"),
        pytest.param({"start": "tomorrow"}, {"start": "tomorrow"}, id="date"),
    ],
)
def test_errors_are_the_slack_modal_errors(web: dict[str, Any], slack: dict[str, Any]) -> None:
    assert web_errors(Everything, form(WEB_ANSWERS, **web)) == errors_of(
        Everything, EVERYTHING_ANSWERS | slack
    )


def test_a_model_level_error_is_shown_on_the_first_input_as_in_slack() -> None:
    data = form([("reason", "because"), ("_decision", "reject")])

    assert web_errors(ApprovalWithReason, data) == {"reason": "Give a real reason to reject"}
    assert errors_of(ApprovalWithReason, {"reason": "because"}, decision=False) == {
        "reason": "Give a real reason to reject"
    }


def test_an_approval_is_two_buttons_and_the_other_fields() -> None:
    shown = web_form(Approval)

    assert shown.shape is Shape.APPROVAL
    assert [b.value for b in shown.buttons] == ["approve", "reject"]
    assert [f.name for f in shown.fields] == ["comment"]
    assert parse_answer(Approval, form([("_decision", "reject"), ("comment", "")])) == Approval(
        approved=False
    )


def test_a_choice_is_a_button_per_option_and_many_options_a_menu() -> None:
    triage, region = web_form(Triage), web_form(PickRegion)

    assert [b.label for b in triage.buttons] == ["Low", "Medium", "High"]
    assert triage.fields == ()
    assert parse_answer(Triage, form([("_decision", "choose:high")])).severity == "high"
    assert [f.widget for f in region.fields] == ["select", "text"]
    assert parse_answer(PickRegion, form([("region", "sa-east-1")])).region == "sa-east-1"


def test_an_acknowledgement_is_one_button() -> None:
    shown = web_form(Acknowledge)

    assert [b.label for b in shown.buttons] == ["Acknowledge"]
    assert parse_answer(Acknowledge, form([("_decision", "acknowledge")])) == Acknowledge()


def test_a_re_shown_form_keeps_what_was_typed_and_defaults_fill_a_new_one() -> None:
    fresh = {f.name: f for f in web_form(Everything).fields}
    again = {f.name: f for f in web_form(Everything, submitted=form(WEB_ANSWERS)).fields}

    assert fresh["replicas"].value == "3" and fresh["window"].value == "09:30:00"
    assert fresh["environment"].selected("staging") and fresh["notify"].value == "true"
    assert again["reason"].value == "Routine rollout"
    assert again["tags"].selected("low") and again["tags"].selected("high")
    assert fresh["at"].widget == "datetime" and fresh["at"].hint == "UTC"
