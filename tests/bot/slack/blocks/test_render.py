"""bot.slack.blocks.render turns a resume model and a payload into Block Kit that Slack accepts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

import pytest
from pydantic import BaseModel, EmailStr, Field
from pydantic.fields import FieldInfo

from bot.errors import UnsupportedResumeModel
from bot.slack import action_ids
from bot.slack.blocks.forms import Shape, describe_field, describe_model
from bot.slack.blocks.modal import input_block
from bot.slack.blocks.render import (
    Message,
    check_renderable,
    render_cancelled_message,
    render_expired_message,
    render_modal,
    render_outcome_message,
    render_progress_message,
    render_request_message,
)
from tests.bot.slack.blocks.resume_models import (
    ALL_MODELS,
    Acknowledge,
    Approval,
    ApprovalWithReason,
    Everything,
    PickRegion,
    Severity,
    Triage,
)
from tests.fakes.blockkit import check_message, check_view

REF = "signed.ref.token"
WHEN = dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.UTC)


def request(model: type[BaseModel], payload: Any = None, **overrides: Any) -> dict[str, Any]:
    """Render a request message and return its Slack JSON, checked like the API would."""
    arguments: dict[str, Any] = {
        "model": model,
        "payload": {"service": "api", "replicas": 3} if payload is None else payload,
        "ref": REF,
        "workflow": "Deploy",
        "step": "Approve production",
        "run_id": "run-123",
        "requester": "U0REQUESTER",
        "expires_at": WHEN,
    }
    arguments.update(overrides)
    return _checked(render_request_message(**arguments))


def modal(model: type[BaseModel], **overrides: Any) -> dict[str, Any]:
    """Render a modal and return its Slack JSON, checked like views.open would."""
    arguments: dict[str, Any] = {"model": model, "ref": REF, "title": "Approve production"}
    arguments.update(overrides)
    view = render_modal(**arguments).to_dict()
    assert check_view(view) == []
    return view


def _checked(message: Message) -> dict[str, Any]:
    rendered = message.to_dict()
    assert check_message(rendered["blocks"]) == []
    assert rendered["text"]
    return rendered


def controls(message: dict[str, Any]) -> dict[str, Any]:
    actions = [block for block in message["blocks"] if block["type"] == "actions"]
    assert len(actions) == 1
    block: dict[str, Any] = actions[0]
    return block


def all_text(message: dict[str, Any]) -> str:
    """Every text string in the message's blocks, joined."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message["blocks"])
    return " | ".join(found)


# -- request messages ----------------------------------------------------------------------


def test_an_approval_gets_approve_and_reject_buttons_that_decide_at_once() -> None:
    message = request(Approval)

    approve, reject = controls(message)["elements"]

    assert (approve["text"]["text"], approve["style"], approve["action_id"]) == (
        "Approve",
        "primary",
        action_ids.APPROVE,
    )
    assert (reject["text"]["text"], reject["style"], reject["action_id"]) == (
        "Reject",
        "danger",
        action_ids.REJECT,
    )
    assert message["text"] == "Approval requested: Deploy: Approve production"


def test_an_approval_that_needs_more_fields_marks_its_buttons_to_open_a_modal() -> None:
    approve, reject = controls(request(ApprovalWithReason))["elements"]

    assert approve["action_id"] == action_ids.APPROVE_MODAL
    assert reject["action_id"] == action_ids.REJECT_MODAL


def test_a_choice_of_few_options_gets_one_button_per_option() -> None:
    buttons = controls(request(Triage))["elements"]

    assert [(b["text"]["text"], b["action_id"]) for b in buttons] == [
        ("Low", "signoff:choose:low"),
        ("Medium", "signoff:choose:medium"),
        ("High", "signoff:choose:high"),
    ]


def test_a_choice_of_many_options_gets_a_select_carrying_the_ref_in_its_block_id() -> None:
    block = controls(request(PickRegion))

    [select] = block["elements"]
    assert select["type"] == "static_select"
    assert select["action_id"] == action_ids.SELECT
    assert block["block_id"] == REF
    assert [option["value"] for option in select["options"]][:2] == ["us-east-1", "us-west-2"]


@pytest.mark.parametrize(
    ("model", "text", "action_id"),
    [
        (Everything, "Respond", action_ids.RESPOND),
        (Acknowledge, "Acknowledge", "signoff:acknowledge"),
    ],
)
def test_other_models_get_a_single_button(
    model: type[BaseModel], text: str, action_id: str
) -> None:
    [button] = controls(request(model))["elements"]

    assert (button["text"]["text"], button["action_id"]) == (text, action_id)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_controls_carry_only_the_callers_reference(model: type[BaseModel]) -> None:
    for element in controls(request(model, payload={"secret": "s3cr3t"}))["elements"]:
        assert element.get("value", REF) == REF
        assert "s3cr3t" not in repr(element)


def test_the_header_and_context_name_the_request() -> None:
    message = request(Approval)

    header, *_ = message["blocks"]
    context = next(b for b in message["blocks"] if b["type"] == "context")
    line = context["elements"][0]["text"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Deploy: Approve production", "emoji": True},
    }
    assert "run-123" in line
    assert "<@U0REQUESTER>" in line
    assert f"<!date^{int(WHEN.timestamp())}^" in line


def test_a_requester_that_is_not_a_user_id_is_shown_as_escaped_text() -> None:
    message = request(Approval, requester="webhook <ci>")

    assert "webhook &lt;ci&gt;" in all_text(message)
    assert "<@" not in all_text(message)


def test_payload_values_are_shown_as_fields_with_mrkdwn_escaped() -> None:
    message = request(Approval, payload={"service_name": "<api> & <@U999>", "dry_run": False})

    section = message["blocks"][1]
    assert [field["text"] for field in section["fields"]] == [
        "*Service name*\n&lt;api&gt; &amp; &lt;@U999&gt;",
        "*Dry run*\nNo",
    ]


def test_a_model_payload_uses_field_titles() -> None:
    class Change(BaseModel):
        ticket: str = Field(title="Ticket ID")
        lines: int

    message = request(Approval, payload=Change(ticket="OPS-1", lines=12))

    texts = [field["text"] for field in message["blocks"][1]["fields"]]
    assert texts == ["*Ticket ID*\nOPS-1", "*Lines*\n12"]


def test_a_10000_character_value_is_cut_with_an_ellipsis() -> None:
    message = request(Approval, payload={"diff": "+" * 10_000, "author": "ann"})

    long_section = next(
        b for b in message["blocks"] if b.get("text", {}).get("text", "").startswith("*Diff*")
    )
    text = long_section["text"]["text"]
    assert len(text) <= 3000
    assert text.endswith("…")
    assert "*Author*\nann" in all_text(message)


def test_escaping_never_pushes_a_cut_value_over_the_limit() -> None:
    message = request(Approval, payload={"html": "<&>" * 5000})

    sections = [b for b in message["blocks"] if b["type"] == "section"]
    assert all(len(b["text"]["text"]) <= 3000 for b in sections if "text" in b)
    assert "&am…" not in all_text(message)  # never cut inside an entity


def test_a_40_field_payload_fits_in_sections_of_at_most_10_fields() -> None:
    payload = {f"field_{i}": f"value {i}" for i in range(40)}

    message = request(Approval, payload=payload)

    sections = [b for b in message["blocks"] if b["type"] == "section"]
    assert len(message["blocks"]) <= 50
    assert all(len(b.get("fields", [])) <= 10 for b in sections)
    shown = [f["text"] for b in sections for f in b.get("fields", [])]
    assert shown[0] == "*Field 0*\nvalue 0"
    assert shown[-1] == "*Field 39*\nvalue 39"


def test_an_enormous_payload_is_summarised_and_still_valid() -> None:
    payload = {f"k{i}": "v" * 1000 for i in range(300)}

    message = request(Approval, payload=payload)

    assert len(message["blocks"]) <= 50
    assert sum(len(repr(b)) for b in message["blocks"]) < 15_000
    assert "more fields not shown" in all_text(message)


def test_nested_payload_values_are_shown_compactly() -> None:
    message = request(Approval, payload={"targets": ["a", "b"], "limits": {"cpu": 2}})

    texts = [f["text"] for f in message["blocks"][1]["fields"]]
    assert texts == ["*Targets*\na, b", '*Limits*\n{"cpu": 2}']


def test_a_reference_too_long_for_the_controls_is_refused() -> None:
    with pytest.raises(ValueError, match="2000"):
        request(Approval, ref="x" * 2001)
    with pytest.raises(ValueError, match="255"):
        request(PickRegion, ref="x" * 256)


def test_progress_shows_who_approved_so_far_and_keeps_the_controls() -> None:
    message = _checked(
        render_progress_message(
            model=Approval,
            payload={"service": "api"},
            ref=REF,
            workflow="Deploy",
            step="Approve",
            run_id="run-1",
            approved_by=["U0ALICE"],
            required=2,
        )
    )

    assert "*1 of 2 approvals* so far: <@U0ALICE>" in all_text(message)
    assert [b["action_id"] for b in controls(message)["elements"]] == [
        action_ids.APPROVE,
        action_ids.REJECT,
    ]


# -- outcomes ------------------------------------------------------------------------------


def outcome(model: type[BaseModel], response: Any, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": model,
        "response": response,
        "decided_by": "U0ALICE",
        "decided_at": WHEN,
        "workflow": "Deploy",
        "step": "Approve",
        "run_id": "run-1",
        "payload": {"service": "api"},
    }
    arguments.update(overrides)
    return _checked(render_outcome_message(**arguments))


def test_an_approved_outcome_replaces_the_controls_with_who_and_when() -> None:
    message = outcome(Approval, Approval(approved=True, comment="ship it <now>"))

    text = all_text(message)
    assert not any(b["type"] == "actions" for b in message["blocks"])
    assert "*Approved* by <@U0ALICE>" in text
    assert f"<!date^{int(WHEN.timestamp())}^" in text
    assert "*Comment*\nship it &lt;now&gt;" in text
    assert "*Service*\napi" in text
    assert message["text"].startswith(":white_check_mark: Approved")


def test_a_rejected_outcome_says_rejected() -> None:
    message = outcome(Approval, {"approved": False}, decided_by=["U0ALICE", "U0BOB"])

    assert "*Rejected* by <@U0ALICE>, <@U0BOB>" in all_text(message)


def test_a_choice_outcome_names_the_option_chosen() -> None:
    message = outcome(Triage, Triage(severity=Severity.HIGH))

    assert "*High* chosen by <@U0ALICE>" in all_text(message)


def test_a_form_outcome_lists_the_values_given_with_mentions_and_labels() -> None:
    response = {"owner": "U0BOB", "environment": "production", "reviewers": ["U0C", "U0D"]}

    message = outcome(Everything, response)

    text = all_text(message)
    assert "*Responded* by <@U0ALICE>" in text
    assert "*Owner*\n<@U0BOB>" in text
    assert "*Environment*\nProduction" in text
    assert "*Reviewers*\n<@U0C>, <@U0D>" in text


def test_every_kind_of_value_reads_naturally_in_an_outcome() -> None:
    response = Everything(
        reason="Routine",
        amount=Decimal("12.50"),
        confirm=True,
        region="eu-west-1",
        tags=[Severity.LOW, Severity.HIGH],
        start=dt.date(2030, 1, 2),
        at=WHEN,
        runbook="https://runbooks.example.com/x",
        owner="U0BOB",
        also_in=["C0A", "G0B"],
        nickname=None,
    )

    text = all_text(outcome(Everything, response))

    for expected in (
        "*Amount*\n12.50",
        "*Confirm*\nYes",
        "*Region*\neu-west-1",
        "*Tags*\nLow, High",
        "*Start*\n2030-01-02",
        f"*At*\n<!date^{int(WHEN.timestamp())}^",
        "*Window*\n09:30",
        "*Runbook*\nhttps://runbooks.example.com/x",
        "*Also in*\n<#C0A>, <#G0B>",
    ):
        assert expected in text
    assert "Nickname" not in text  # empty values are left out


def test_expired_and_cancelled_requests_have_no_controls() -> None:
    expired = _checked(
        render_expired_message(
            workflow="Deploy",
            step="Approve",
            run_id="r",
            expired_at=WHEN,
            note="Rejected by default",
        )
    )
    cancelled = _checked(
        render_cancelled_message(
            workflow="Deploy",
            step="Approve",
            run_id="r",
            cancelled_at=WHEN,
            cancelled_by="U0BOB",
            reason="superseded by run <r2>",
        )
    )

    for message in (expired, cancelled):
        assert not any(b["type"] == "actions" for b in message["blocks"])
    assert "*Expired*" in all_text(expired)
    assert "Rejected by default" in all_text(expired)
    assert "*Cancelled* by <@U0BOB>" in all_text(cancelled)
    assert "superseded by run &lt;r2&gt;" in all_text(cancelled)


# -- modals --------------------------------------------------------------------------------


def blocks_by_id(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


@pytest.mark.parametrize(
    ("field", "element_type"),
    [
        ("reason", "plain_text_input"),
        ("notes", "plain_text_input"),
        ("summary", "plain_text_input"),
        ("replicas", "number_input"),
        ("ratio", "number_input"),
        ("amount", "number_input"),
        ("notify", "checkboxes"),
        ("confirm", "radio_buttons"),
        ("environment", "radio_buttons"),
        ("region", "static_select"),
        ("tags", "checkboxes"),
        ("regions", "multi_static_select"),
        ("start", "datepicker"),
        ("at", "datetimepicker"),
        ("window", "timepicker"),
        ("runbook", "url_text_input"),
        ("owner", "users_select"),
        ("reviewers", "multi_users_select"),
        ("announce_in", "conversations_select"),
        ("also_in", "multi_conversations_select"),
        ("nickname", "plain_text_input"),
    ],
)
def test_each_field_type_gets_its_slack_input(field: str, element_type: str) -> None:
    block = blocks_by_id(modal(Everything))[field]

    assert block["element"]["type"] == element_type
    assert block["element"]["action_id"] == field


def test_block_ids_are_the_field_names_in_order() -> None:
    view = modal(Everything)

    assert list(blocks_by_id(view)) == list(Everything.model_fields)


def test_optional_and_defaulted_fields_may_be_left_empty() -> None:
    blocks = blocks_by_id(modal(Everything))

    assert {name for name, b in blocks.items() if not b["optional"]} == {
        "reason",
        "amount",
        "confirm",
        "region",
        "start",
        "at",
        "owner",
    }
    assert blocks["nickname"]["optional"] is True  # str | None without a default


def test_constraints_become_input_limits() -> None:
    blocks = blocks_by_id(modal(Everything))

    assert blocks["reason"]["element"].get("multiline") is None
    assert blocks["reason"]["element"]["max_length"] == 100
    assert blocks["notes"]["element"]["multiline"] is True  # max_length over 150
    assert blocks["summary"]["element"]["multiline"] is True  # json_schema_extra
    replicas = blocks["replicas"]["element"]
    assert (replicas["min_value"], replicas["max_value"], replicas["is_decimal_allowed"]) == (
        "1",
        "10",
        False,
    )
    assert blocks["ratio"]["element"]["is_decimal_allowed"] is True
    assert blocks["amount"]["element"]["is_decimal_allowed"] is True
    assert blocks["regions"]["element"]["max_selected_items"] == 3


def test_defaults_become_initial_values() -> None:
    blocks = blocks_by_id(modal(Everything))

    assert blocks["replicas"]["element"]["initial_value"] == "3"
    assert blocks["notify"]["element"]["initial_options"][0]["value"] == "true"
    assert blocks["environment"]["element"]["initial_option"]["value"] == "staging"
    assert blocks["window"]["element"]["initial_time"] == "09:30"


def test_titles_and_descriptions_become_labels_and_hints() -> None:
    blocks = blocks_by_id(modal(Everything))

    assert blocks["reason"]["label"]["text"] == "Why?"
    assert blocks["reason"]["hint"]["text"] == "One line"
    assert blocks["announce_in"]["label"]["text"] == "Announce in"


def test_the_modal_carries_the_reference_and_a_short_title() -> None:
    view = modal(Everything, title="A very long step title that overflows")

    assert view["private_metadata"] == REF
    assert view["callback_id"] == action_ids.MODAL_CALLBACK_ID
    assert view["title"]["text"] == "A very long step title …"
    assert len(view["title"]["text"]) == 24
    assert view["submit"]["text"] == "Submit"


def test_a_decision_modal_asks_only_for_the_other_fields() -> None:
    view = modal(ApprovalWithReason, decision=False)

    assert list(blocks_by_id(view)) == ["reason"]
    assert view["callback_id"] == "signoff_respond:reject"
    assert view["submit"]["text"] == "Reject"
    assert "*rejecting*" in repr(view["blocks"])


def test_an_email_field_gets_an_email_input() -> None:
    # Building a model with EmailStr needs the optional email-validator package, so the
    # field is described on its own, the way describe_model does for each field.
    spec = describe_field("contact", FieldInfo.from_annotation(EmailStr))

    block = input_block(spec).to_dict()

    assert block["element"] == {"type": "email_text_input", "action_id": "contact"}


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_every_model_renders_a_modal_slack_accepts(model: type[BaseModel]) -> None:
    view = modal(model)

    assert view["type"] == "modal"


# -- refusing what cannot be rendered ------------------------------------------------------


class Address(BaseModel):
    street: str


class Nested(BaseModel):
    address: Address


class Mapping_(BaseModel):
    labels: dict[str, str]


class Ambiguous(BaseModel):
    value: int | str


class FreeList(BaseModel):
    items: list[str]


class TooMany(BaseModel):
    pick: Literal[tuple(f"option-{i}" for i in range(101))]  # type: ignore[valid-type]


@pytest.mark.parametrize(
    ("model", "field", "words"),
    [
        (Nested, "address", "nested model"),
        (Mapping_, "labels", "supported types"),
        (Ambiguous, "value", "union"),
        (FreeList, "items", "lists must hold"),
        (TooMany, "pick", "more than 100 options"),
    ],
)
def test_unrenderable_models_are_refused_naming_the_field(
    model: type[BaseModel], field: str, words: str
) -> None:
    with pytest.raises(UnsupportedResumeModel) as caught:
        check_renderable(model)

    assert caught.value.field == field
    assert f"{model.__name__}.{field}" in str(caught.value)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (Approval, Shape.APPROVAL),
        (ApprovalWithReason, Shape.APPROVAL),
        (Triage, Shape.CHOICE),
        (PickRegion, Shape.CHOICE),
        (Acknowledge, Shape.ACKNOWLEDGE),
        (Everything, Shape.FORM),
    ],
)
def test_supported_models_pass_the_check_and_get_their_shape(
    model: type[BaseModel], shape: Shape
) -> None:
    check_renderable(model)  # does not raise

    assert describe_model(model).shape is shape
