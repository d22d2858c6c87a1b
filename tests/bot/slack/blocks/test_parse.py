"""bot.slack.blocks.parse reads clicks and submitted modals back into validated resume models."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, Field, field_validator
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import InvalidSubmission, UnknownAction
from bot.slack import action_ids
from bot.slack.blocks.parse import (
    Click,
    parse_action,
    parse_state_values,
    parse_view_submission,
    validate_submission,
)
from bot.slack.blocks.render import render_modal, render_request_message
from tests.bot.slack.blocks.resume_models import (
    Approval,
    ApprovalWithReason,
    Everything,
    PickRegion,
    Severity,
    Triage,
)
from tests.fakes.signing import block_actions_payload, state_values, view_submission_payload
from tests.fakes.slack_api import FakeSlack

REF = "signed.ref.token"
AT = dt.datetime(2030, 5, 6, 7, 8, tzinfo=dt.UTC)

EVERYTHING_ANSWERS: dict[str, Any] = {
    "reason": "Routine rollout",
    "notes": "Watch the error rate",
    "summary": "Line one\nLine two",
    "replicas": "4",
    "ratio": "0.25",
    "amount": "12.50",
    "notify": [],
    "confirm": "true",
    "environment": "production",
    "region": "eu-west-1",
    "tags": ["low", "high"],
    "regions": ["us-east-1", "ap-south-1"],
    "start": "2030-05-06",
    "at": int(AT.timestamp()),
    "window": "18:45",
    "runbook": "https://runbooks.example.com/deploy",
    "owner": "U0OWNER",
    "reviewers": ["U0R1", "U0R2"],
    "announce_in": "C0ANNOUNCE",
    "also_in": ["C0A", "G0B"],
    "nickname": "blue",
}


def view_of(model: type[BaseModel], **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"model": model, "ref": REF, "title": "Respond"}
    arguments.update(overrides)
    return render_modal(**arguments).to_dict()


def submit(model: type[BaseModel], answers: dict[str, Any], **overrides: Any) -> BaseModel:
    """Render the modal, answer it the way Slack reports answers, parse and validate."""
    payload = view_submission_payload(view=view_of(model, **overrides), answers=answers)
    submission = parse_view_submission(model=model, view=payload["view"])
    assert submission.ref == REF
    return validate_submission(model, submission.values, decision=submission.decision)


def errors_of(model: type[BaseModel], answers: dict[str, Any], **overrides: Any) -> dict[str, str]:
    with pytest.raises(InvalidSubmission) as caught:
        submit(model, answers, **overrides)
    return caught.value.errors


# -- modal round trips ---------------------------------------------------------------------


def test_every_field_type_round_trips_through_a_submitted_modal() -> None:
    result = submit(Everything, EVERYTHING_ANSWERS)

    assert result == Everything(
        reason="Routine rollout",
        notes="Watch the error rate",
        summary="Line one\nLine two",
        replicas=4,
        ratio=0.25,
        amount=Decimal("12.50"),
        notify=False,
        confirm=True,
        environment="production",
        region="eu-west-1",
        tags=[Severity.LOW, Severity.HIGH],
        regions=["us-east-1", "ap-south-1"],
        start=dt.date(2030, 5, 6),
        at=AT,
        window=dt.time(18, 45),
        runbook="https://runbooks.example.com/deploy",
        owner="U0OWNER",
        reviewers=["U0R1", "U0R2"],
        announce_in="C0ANNOUNCE",
        also_in=["C0A", "G0B"],
        nickname="blue",
    )


def test_inputs_left_alone_keep_their_defaults_and_empty_optionals_become_none() -> None:
    required_only = {
        "reason": "r",
        "amount": "1",
        "confirm": "false",
        "region": "sa-east-1",
        "start": "2030-01-01",
        "at": 1_900_000_000,
        "owner": "U0OWNER",
        "nickname": None,
    }

    result = submit(Everything, required_only)

    assert isinstance(result, Everything)
    assert (result.replicas, result.ratio, result.notify) == (3, 0.5, True)
    assert (result.environment, result.window, result.tags) == ("staging", dt.time(9, 30), [])
    assert (result.summary, result.runbook, result.announce_in) == (None, None, None)
    assert result.nickname is None  # str | None without a default: empty means None
    assert result.confirm is False


def test_state_values_are_read_as_plain_dicts_including_time_zones_and_unix_times() -> None:
    # slack-sdk's ViewState raises TypeError on these keys; the parser must not.
    values: dict[str, dict[str, Any]] = {
        "window": {"window": {"type": "timepicker", "selected_time": "07:05", "timezone": "UTC"}},
        "at": {"at": {"type": "datetimepicker", "selected_date_time": 1_900_000_000}},
        "unrelated": {"x": {"type": "plain_text_input", "value": "ignored"}},
    }

    parsed = parse_state_values(model=Everything, values=values)

    assert parsed == {
        "window": dt.time(7, 5),
        "at": dt.datetime.fromtimestamp(1_900_000_000, tz=dt.UTC),
    }


# -- errors for people ---------------------------------------------------------------------


def test_errors_are_keyed_by_block_id_in_plain_words() -> None:
    answers = EVERYTHING_ANSWERS | {
        "reason": "x" * 101,
        "replicas": "11",
        "ratio": "1",
        "amount": "2.555",
        "owner": None,
        "runbook": "not a url",
    }

    errors = errors_of(Everything, answers)

    assert errors == {
        "reason": "Must be at most 100 characters",
        "replicas": "Must be at most 10",
        "ratio": "Must be less than 1",
        "amount": "Use at most 2 decimal places",
        "owner": "This field is required",
        "runbook": "Enter a valid URL",
    }


def test_every_error_key_is_an_input_block_of_the_modal() -> None:
    view = view_of(Everything)
    input_ids = {b["block_id"] for b in view["blocks"] if b["type"] == "input"}

    errors = errors_of(Everything, dict.fromkeys(EVERYTHING_ANSWERS))

    assert errors
    assert set(errors) <= input_ids


def test_a_whole_number_field_rejects_a_fraction() -> None:
    errors = errors_of(Everything, EVERYTHING_ANSWERS | {"replicas": "2.5"})

    assert errors == {"replicas": "Must be a whole number"}


def test_an_unanswered_yes_no_question_is_required() -> None:
    errors = errors_of(Everything, EVERYTHING_ANSWERS | {"confirm": None})

    assert errors == {"confirm": "This field is required"}


def test_a_custom_validator_message_is_shown_without_pydantic_prefix() -> None:
    class Ticket(BaseModel):
        ticket: str

        @field_validator("ticket")
        @classmethod
        def _looks_like_a_ticket(cls, value: str) -> str:
            if not value.startswith("OPS-"):
                raise ValueError("should look like OPS-123")
            return value

    errors = errors_of(Ticket, {"ticket": "123"})

    assert errors == {"ticket": "Should look like OPS-123"}


def test_a_model_level_error_is_shown_on_the_first_input() -> None:
    errors = errors_of(ApprovalWithReason, {"reason": "because"}, decision=False)

    assert errors == {"reason": "Give a real reason to reject"}


def test_a_too_short_text_names_the_minimum() -> None:
    errors = errors_of(ApprovalWithReason, {"reason": "no"}, decision=True)

    assert errors == {"reason": "Must be at least 3 characters"}


def test_choosing_too_many_options_names_the_maximum() -> None:
    class Pick(BaseModel):
        regions: list[Severity] = Field(max_length=1)

    errors = errors_of(Pick, {"regions": ["low", "high"]})

    assert errors == {"regions": "Choose at most 1"}


# -- decisions through modals --------------------------------------------------------------


def test_a_decision_modal_merges_the_clicked_decision() -> None:
    result = submit(ApprovalWithReason, {"reason": "Looks safe"}, decision=True)

    assert result == ApprovalWithReason(approved=True, reason="Looks safe")


def test_a_view_that_is_not_a_signoff_modal_is_refused() -> None:
    with pytest.raises(UnknownAction):
        parse_view_submission(model=Approval, view={"callback_id": "someone_else"})


# -- clicks --------------------------------------------------------------------------------


def click(model: type[BaseModel], action_id: str, selected: str | None = None) -> Click:
    message = render_request_message(
        model=model, payload={}, ref=REF, workflow="W", step="S", run_id="r"
    ).to_dict()
    message["ts"] = "1700000000.000100"
    payload = block_actions_payload(message=message, action_id=action_id, selected=selected)
    return parse_action(model=model, action=payload["actions"][0])


def test_approve_and_reject_decide_at_once_with_defaults_for_the_rest() -> None:
    approve = click(Approval, action_ids.APPROVE)
    reject = click(Approval, action_ids.REJECT)

    assert approve == Click(ref=REF, opens_modal=False, decision=True)
    assert validate_submission(Approval, approve.values, decision=approve.decision) == Approval(
        approved=True
    )
    assert validate_submission(Approval, reject.values, decision=reject.decision) == Approval(
        approved=False
    )


def test_a_decision_that_needs_more_fields_asks_for_the_modal() -> None:
    result = click(ApprovalWithReason, action_ids.REJECT_MODAL)

    assert result == Click(ref=REF, opens_modal=True, decision=False)


def test_a_choice_button_supplies_the_chosen_value() -> None:
    result = click(Triage, "signoff:choose:high")

    assert result.values == {"severity": Severity.HIGH}
    assert validate_submission(Triage, result.values) == Triage(severity=Severity.HIGH)


def test_a_select_supplies_the_chosen_value_and_the_ref_from_its_block() -> None:
    result = click(PickRegion, action_ids.SELECT, selected="eu-central-1")

    assert result == Click(ref=REF, opens_modal=False, values={"region": "eu-central-1"})


def test_respond_opens_the_modal() -> None:
    assert click(Everything, action_ids.RESPOND) == Click(ref=REF, opens_modal=True)


@pytest.mark.parametrize(
    ("model", "action"),
    [
        (Approval, {"action_id": "someone_else", "value": REF}),
        (Triage, {"action_id": "signoff:choose:catastrophic", "value": REF}),
        (Approval, {"action_id": "signoff:choose:low", "value": REF}),
    ],
)
def test_clicks_signoff_did_not_render_are_refused(
    model: type[BaseModel], action: dict[str, Any]
) -> None:
    with pytest.raises(UnknownAction):
        parse_action(model=model, action=action)


# -- end to end against the fake Slack API --------------------------------------------------


async def test_a_request_round_trips_through_fake_slack(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    request = render_request_message(
        model=ApprovalWithReason,
        payload={"service": "api"},
        ref=REF,
        workflow="Deploy",
        step="Approve",
        run_id="run-1",
    )
    posted = await slack_client.chat_postMessage(
        channel="C0APPROVALS", text=request.text, blocks=request.blocks
    )
    clicked = block_actions_payload(
        message=posted["message"], action_id=action_ids.APPROVE_MODAL, channel_id="C0APPROVALS"
    )
    decision = parse_action(model=ApprovalWithReason, action=clicked["actions"][0])
    modal = render_modal(
        model=ApprovalWithReason, ref=decision.ref, title="Approve", decision=decision.decision
    )
    opened = await slack_client.views_open(trigger_id=clicked["trigger_id"], view=modal)
    submitted = view_submission_payload(
        view=opened["view"],
        values=state_values(opened["view"], {"reason": "Checked the dashboards"}),
    )
    submission = parse_view_submission(model=ApprovalWithReason, view=submitted["view"])

    result = validate_submission(
        ApprovalWithReason, submission.values, decision=submission.decision
    )

    assert result == ApprovalWithReason(approved=True, reason="Checked the dashboards")
    assert submission.ref == REF
    assert fake_slack.validation_failures == []
